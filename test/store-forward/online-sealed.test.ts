/**
 * The sealed card data of a payment authorized online stays in memory (issue 9): the online
 * payment's two commits no longer write a `sealed_cards` row and delete it again (two b-trees
 * each, and the sealed data in the WAL). It reaches the disk only when the payment falls back to
 * offline after an ambiguous attempt, with its stored record, which the cloud needs it for.
 */
import { describe, expect, it } from 'vitest';
import { PaymentStore } from '../../store-forward/payment-store.js';
import {
  ROOMY_POLICY,
  freshStore,
  newPayment,
  rawConnection,
  sealedBlob,
  storeClock,
} from './helpers.js';

/** A payment with a sealed card, up to its authorization request (one commit). */
function authorizing(store: PaymentStore, key: string, seed: number): string {
  const { payment } = store.startPayment({
    idempotencyKey: key,
    amountMinor: 1500,
    currency: 'EUR',
    offlineMode: 'prefer_online',
  });
  store.recordCardRead(payment.id, newPayment(key).card, { sealed: sealedBlob(seed) });
  expect(store.recordStep(payment.id, 'authorization_requested').state).toBe('authorizing');
  return payment.id;
}

describe('sealed card data of an online authorization', () => {
  it('is never written for a payment the issuer answered', () => {
    const fx = freshStore();
    const raw = rawConnection(fx.path);
    const sealedRows = () =>
      (raw.prepare('SELECT count(*) AS n FROM sealed_cards').get() as { n: number }).n;
    try {
      const approved = authorizing(fx.store, 'online-approved', 1);
      const declined = authorizing(fx.store, 'online-declined', 2);
      expect(sealedRows()).toBe(0);
      fx.store.recordOnlineOutcome(approved, { outcome: 'approved', authCode: 'A1' });
      fx.store.recordOnlineOutcome(declined, { outcome: 'declined', declineCode: '05' });
      expect(sealedRows()).toBe(0);
      // Control: an offline payment's sealed data is written with its stored record.
      const { payment } = fx.store.startPayment({
        idempotencyKey: 'offline-control',
        amountMinor: 1500,
        currency: 'EUR',
        offlineMode: 'force_offline',
      });
      fx.store.recordCardRead(payment.id, newPayment('offline-control').card, {
        sealed: sealedBlob(3),
      });
      fx.store.storeOffline(payment.id, ROOMY_POLICY, { ambiguous: false });
      expect(sealedRows()).toBe(1);
      expect(fx.store.checkProjection().ok).toBe(true);
    } finally {
      raw.close();
      fx.close();
    }
  });

  it('goes to the disk with the stored record when the payment falls back to offline', () => {
    const fx = freshStore();
    try {
      const id = authorizing(fx.store, 'online-timeout', 4);
      const { payment } = fx.store.storeOffline(id, ROOMY_POLICY, { ambiguous: true });
      expect(payment.state).toBe('stored');
      const [record] = fx.store.nextPending(10);
      expect(record?.key).toBe('online-timeout');
      expect(record && 'sealed' in record ? record.sealed : undefined).toBe(sealedBlob(4));
    } finally {
      fx.close();
    }
  });

  it('is gone after a crash: recovery voids the authorizing payment without it', () => {
    const fx = freshStore();
    try {
      const id = authorizing(fx.store, 'online-crash', 5);
      fx.store.close(); // the crash: the held sealed data goes with the process
      const reopened = PaymentStore.open({ path: fx.path, clock: storeClock() });
      try {
        const report = reopened.recoverInterrupted();
        expect(report.recovered.map((p) => [p.id, p.state])).toEqual([[id, 'declined']]);
        const [record] = reopened.nextPending(10);
        expect(record).toMatchObject({ key: 'online-crash', type: 'void' });
        expect(record && 'sealed' in record ? record.sealed : undefined).toBeUndefined();
        expect(reopened.checkProjection().ok).toBe(true);
      } finally {
        reopened.close();
      }
    } finally {
      fx.close();
    }
  });
});
