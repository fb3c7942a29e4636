/**
 * Regression (review): when `nextPending` met a pending record it could not build (POS221, a
 * payment without a card), it threw — on every call, so the whole queue stood still forever.
 * Now that one record goes to `dead` with its reason and the records after it flow.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { freshStore, newPayment, rawConnection } from './helpers.js';

let fx: ReturnType<typeof freshStore> | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

describe('nextPending with a record that cannot be built', () => {
  it('dead-letters it with the reason and returns the records after it', () => {
    fx = freshStore();
    const { store, path } = fx;
    // A payment that never got a card, with a pending record (as a damaged database can hold).
    const cardless = store.startPayment({
      idempotencyKey: 'cardless-1',
      amountMinor: 300,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    }).payment.id;
    // Written as it ends without a card (a payment in progress is a draft in memory).
    store.recordStep(cardless, 'failed', { reason: 'card not read: timeout' });
    const raw = rawConnection(path);
    try {
      const { seq } = raw
        .prepare("SELECT seq FROM events WHERE payment_id = ? AND type = 'payment_started'")
        .get(cardless) as {
        seq: number;
      };
      raw
        .prepare(
          `INSERT INTO outbox (key, seq, payment_id, event_seq, type, state, attempts, created_at, updated_at)
           VALUES ('cardless-1', 1, ?, ?, 'void', 'pending', 0, '2026-11-21T09:00:00.000Z', '2026-11-21T09:00:00.000Z')`,
        )
        .run(cardless, seq);
    } finally {
      raw.close();
    }
    store.createPayment(newPayment('good-1'));
    store.createPayment(newPayment('good-2'));

    expect(store.nextPending(1).map((r) => r.key)).toEqual(['good-1']);
    expect(store.nextPending(10).map((r) => r.key)).toEqual(['good-1', 'good-2']);
    expect(store.queueStats()).toMatchObject({ pending: 2, dead: 1, depth: 2 });
    const [dead] = store.deadRecords();
    expect(dead).toMatchObject({ key: 'cardless-1', paymentId: cardless, type: 'void' });
    expect(dead?.reason).toMatch(/cannot be built for the wire: .*has no card.*\(POS221\)/);
    expect(store.listEvents(cardless).map((e) => e.type)).toEqual([
      'payment_started',
      'failed',
      'dead_lettered',
    ]);
    expect(store.verifyChain().ok).toBe(true);
  });
});
