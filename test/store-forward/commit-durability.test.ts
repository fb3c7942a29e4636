/**
 * How many commits wait for the disk (issue 9 §2): the steps of a payment nobody has been told
 * about (started, card read, PIN requested) commit without fsync; the decision (stored offline,
 * authorization requested, outcome, failed) commits with synchronous=FULL, and its fsync makes the
 * earlier steps durable too. Observed on better-sqlite3's own `pragma` calls of the connection.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';
import { freshStore, newPayment } from './helpers.js';

let fx: ReturnType<typeof freshStore> | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  fx?.close();
  fx = undefined;
});

const policy: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 10_000 },
  totalLimitMinor: { EUR: 500_000 },
  maxCount: 500,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

/** The synchronous levels the store set, in order, while `fn` ran. */
function syncLevels(fn: () => void): string[] {
  const seen: string[] = [];
  let db: Database.Database | undefined;
  const original = Database.prototype.pragma;
  const spy = vi.spyOn(Database.prototype, 'pragma').mockImplementation(function (
    this: Database.Database,
    source: string,
    options?: Database.PragmaOptions,
  ) {
    if (source.startsWith('synchronous')) {
      seen.push(source.replace(/\s+/g, ''));
      db = this as Database.Database;
    }
    return original.call(this, source, options);
  });
  try {
    fn();
  } finally {
    spy.mockRestore();
  }
  // Whatever happened, the connection is back at FULL (2) for the next decision.
  if (db !== undefined) expect(db.pragma('synchronous', { simple: true })).toBe(2);
  return seen;
}

describe('commits that wait for the disk', () => {
  it('an offline payment: start and card read commit light, the offline approval commits FULL', () => {
    fx = freshStore();
    const { store } = fx;
    const card = newPayment('k').card;
    let id = '';
    expect(
      syncLevels(() => {
        id = store.startPayment({
          idempotencyKey: 'offline-1',
          amountMinor: 1000,
          currency: 'EUR',
          offlineMode: 'force_offline',
        }).payment.id;
      }),
    ).toEqual(['synchronous=NORMAL', 'synchronous=FULL']);
    expect(syncLevels(() => store.recordCardRead(id, card))).toEqual([
      'synchronous=NORMAL',
      'synchronous=FULL',
    ]);
    // The decision: no switch, the connection's FULL level.
    expect(syncLevels(() => store.storeOffline(id, policy, { ambiguous: false }))).toEqual([]);
    expect(store.getPayment(id)?.state).toBe('stored');
  });

  it('an online payment: PIN requested is light; authorization requested and the outcome are FULL', () => {
    fx = freshStore();
    const { store } = fx;
    const { payment } = store.startPayment({
      idempotencyKey: 'online-1',
      amountMinor: 1000,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    });
    store.recordCardRead(payment.id, newPayment('k').card);
    expect(syncLevels(() => store.recordStep(payment.id, 'pin_requested'))).toEqual([
      'synchronous=NORMAL',
      'synchronous=FULL',
    ]);
    expect(syncLevels(() => store.recordStep(payment.id, 'authorization_requested'))).toEqual([]);
    expect(
      syncLevels(() =>
        store.recordOnlineOutcome(payment.id, { outcome: 'approved', authCode: 'A1' }),
      ),
    ).toEqual([]);
  });

  it('a light step that is refused still leaves the connection at FULL', () => {
    fx = freshStore();
    const { store } = fx;
    const start = {
      idempotencyKey: 'k1',
      amountMinor: 1000,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    } as const;
    store.startPayment(start);
    const levels = syncLevels(() => {
      expect(() => store.startPayment({ ...start, amountMinor: 2000 })).toThrow(/POS210/);
    });
    expect(levels).toEqual(['synchronous=NORMAL', 'synchronous=FULL']);
    // The next decision commits FULL: nothing switched it.
    expect(syncLevels(() => store.createPayment(newPayment('k2')))).toEqual([]);
  });
});
