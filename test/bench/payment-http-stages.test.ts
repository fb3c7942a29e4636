/**
 * bench/payment-http.ts: the stage means the bench prints beside the POST rows are the
 * difference of two readings of the agent's stage histogram, per payment of each path, and the
 * printed line adds up to the POST's mean.
 */
import { describe, expect, it } from 'vitest';
import type { StageTotal } from '../../agent/payment-timings.js';
import { stageBreakdown, stageMeans } from '../../bench/payment-http.js';

const t = (
  stage: StageTotal['stage'],
  path: StageTotal['path'],
  count: number,
  sumSeconds: number,
): StageTotal => ({ stage, path, count, sumSeconds });

describe('stageMeans', () => {
  it('averages only what the measured rounds added, over the payments of each path', () => {
    const warmup = [t('total', 'offline', 10, 0.05), t('store', 'offline', 10, 0.01)];
    const end = [
      t('total', 'offline', 30, 0.11),
      t('store', 'offline', 30, 0.03),
      t('total', 'online', 20, 0.2),
      t('authorization', 'online', 20, 0.1),
      // A PIN in 5 of the 20 online payments: 2 ms each, 0.5 ms per payment.
      t('pin_entry', 'online', 5, 0.01),
    ];
    const means = stageMeans(warmup, end);
    expect(means.offline.total).toBeCloseTo(3, 9);
    expect(means.offline.store).toBeCloseTo(1, 9);
    expect(means.online.authorization).toBeCloseTo(5, 9);
    expect(means.online.pin_entry).toBeCloseTo(0.5, 9);
    expect(means.offline.authorization).toBeUndefined();
  });

  it('leaves a path with no measured payment empty instead of dividing by zero', () => {
    const same = [t('total', 'offline', 4, 0.01), t('store', 'offline', 4, 0.004)];
    expect(stageMeans(same, same)).toEqual({ online: {}, offline: {} });
  });
});

describe('stageBreakdown', () => {
  it('names each stage, the rest of the flow and what lies outside it, and scales the store to the bare commit', () => {
    const text = stageBreakdown({ pad_display: 0.3, card_read: 0.7, store: 1, total: 2.5 }, 4, 0.5);
    expect(text).toBe(
      'mean 4.00 ms = pad display 0.30 + card read 0.70 + store 1.00 + rest of the flow 0.50' +
        ' + outside the flow (HTTP, POS app) 1.50;' +
        " store = 2.0× the bare commit's mean 0.50",
    );
  });
});
