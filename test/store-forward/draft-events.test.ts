/**
 * A draft's events reach the chain as the drafts encoded them (payment-drafts.ts keeps each
 * event's canonical text; `StoreKernel.recordNew` writes that text instead of encoding the data
 * again): every stored `data` is canonical JSON, every hash is the hash of the stored row, and
 * the projection folded from the stored events is the payment row, for offline and online
 * payments with and without their optional fields.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson, eventHash } from '../../store-forward/hash-chain.js';
import { ROOMY_POLICY, freshStore, newPayment, rawConnection, sealedBlob } from './helpers.js';

let fx: ReturnType<typeof freshStore> | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

interface EventRow {
  seq: number;
  payment_id: string;
  type: string;
  at: string;
  data: string;
  prev_hash: Buffer;
  hash: Buffer;
}

describe('events of a drafted payment', () => {
  it('are stored canonical and hash-chained, and fold into the payment row', () => {
    fx = freshStore();
    const { store } = fx;
    const start = (
      key: string,
      offlineMode: 'force_offline' | 'prefer_online',
      reference?: string,
    ) =>
      store.startPayment({
        idempotencyKey: key,
        amountMinor: 1500,
        currency: 'EUR',
        offlineMode,
        reference,
      }).payment.id;

    // Offline with a reference and a cardholder name; offline without either.
    const a = start('draft-a', 'force_offline', 'order 17');
    store.recordCardRead(a, newPayment('draft-a').card, { sealed: sealedBlob(1) });
    store.storeOffline(a, ROOMY_POLICY, { ambiguous: false });
    const bare = newPayment('draft-b').card;
    const b = start('draft-b', 'force_offline');
    store.recordCardRead(b, { ...bare, cardholderName: undefined }, { sealed: sealedBlob(2) });
    store.storeOffline(b, ROOMY_POLICY, { ambiguous: false });
    // Online: the draft is written with authorization_requested, the outcome after it.
    const c = start('draft-c', 'prefer_online', 'order 18');
    store.recordCardRead(c, newPayment('draft-c').card, { sealed: sealedBlob(3) });
    store.recordStep(c, 'authorization_requested');
    store.recordOnlineOutcome(c, { outcome: 'approved', authCode: 'A1B2' });

    const raw = rawConnection(fx.path);
    try {
      const rows = raw.prepare('SELECT * FROM events ORDER BY seq').all() as EventRow[];
      expect(rows.map((r) => [r.payment_id, r.type])).toEqual([
        [a, 'payment_started'],
        [a, 'card_read'],
        [a, 'payment_stored'],
        [b, 'payment_started'],
        [b, 'card_read'],
        [b, 'payment_stored'],
        [c, 'payment_started'],
        [c, 'card_read'],
        [c, 'authorization_requested'],
        [c, 'approved'],
      ]);
      for (const row of rows) {
        expect(canonicalJson(JSON.parse(row.data))).toBe(row.data);
        const { seq, type, at, data } = row;
        expect(
          eventHash(row.prev_hash, { seq, paymentId: row.payment_id, type, at, data }),
        ).toEqual(row.hash);
      }
      // What the drafts held: the reference and the optional name only where they were given.
      const started = JSON.parse(rows[0]?.data ?? '{}') as Record<string, unknown>;
      expect(started).toMatchObject({ reference: 'order 17' });
      expect(JSON.parse(rows[3]?.data ?? '{}')).not.toHaveProperty('reference');
      expect(JSON.parse(rows[4]?.data ?? '{}')).not.toHaveProperty('cardholderName');
    } finally {
      raw.close();
    }
    expect(store.verifyChain()).toEqual({ ok: true, events: 10 });
    expect(store.checkProjection()).toEqual({ ok: true, payments: 3 });
    expect([a, b, c].map((id) => store.getPayment(id)?.state)).toEqual([
      'stored',
      'stored',
      'approved',
    ]);
  });
});
