/**
 * Regression (review): `forwardingDeadlineHours` had two sources — `createPayment` used the
 * store's option, `storeOffline` the policy's field — so the same agent wrote different deadlines
 * for stored payments depending on the path. The store's option is now the one source.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';
import { freshStore, newPayment, tokenFor } from './helpers.js';

let fx: ReturnType<typeof freshStore> | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

const policy: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 10_000 },
  totalLimitMinor: { EUR: 500_000 },
  maxCount: 500,
  // Deliberately different from the store's option: it must not be used.
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

const HOUR = 3_600_000;

describe('forwarding deadline', () => {
  it('createPayment and storeOffline both take it from the store option', () => {
    fx = freshStore({ forwardingDeadlineHours: 24 });
    const { store } = fx;
    const legacy = store.createPayment(newPayment('deadline-legacy')).payment;
    expect(Date.parse(legacy.forwardingDeadlineAt ?? '') - Date.parse(legacy.updatedAt)).toBe(
      24 * HOUR,
    );
    const id = store.startPayment({
      idempotencyKey: 'deadline-offline',
      amountMinor: 500,
      currency: 'EUR',
      offlineMode: 'force_offline',
    }).payment.id;
    store.recordCardRead(id, { ...newPayment('x').card, token: tokenFor(2) });
    const { payment, decision } = store.storeOffline(id, policy, { ambiguous: false });
    expect(decision.ok).toBe(true);
    expect(payment).toMatchObject({ state: 'stored', approval: 'offline' });
    expect(Date.parse(payment.forwardingDeadlineAt ?? '') - Date.parse(payment.updatedAt)).toBe(
      24 * HOUR,
    );
    expect(store.checkProjection().ok).toBe(true);
  });
});
