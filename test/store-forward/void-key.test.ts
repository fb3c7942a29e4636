/**
 * Regression (review B1): a void record's outbox key is `<idempotency key>.void`, and a client
 * could send exactly `order-1234.void` as a NEW Idempotency-Key. Its approval then failed with
 * `UNIQUE constraint failed: outbox.key` (the cloud approved, the payment stayed `authorizing`),
 * and on restart `recoverInterrupted()` hit the same constraint and threw, so the agent could not
 * start. Now such keys are refused, and recovery isolates a row it cannot recover.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { checkIdempotencyKey } from '../../store-forward/validate.js';
import { freshStore, newPayment, rawConnection, tokenFor } from './helpers.js';

type Fixture = ReturnType<typeof freshStore>;
let fx: Fixture | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

function errorOf(fn: () => unknown): { code: string; message: string } | undefined {
  try {
    fn();
  } catch (error) {
    if (isAgentError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  return undefined;
}

const card = (seed: number) => ({ ...newPayment('x').card, token: tokenFor(seed) });

describe('void-record keys are the agent’s namespace', () => {
  it('refuses a client idempotency key ending in ".void" (POS213) in every entry point', () => {
    fx = freshStore();
    const { store } = fx;
    // The original payment: approved online, then canceled → void record `order-1234.void`.
    const original = store.startPayment({
      idempotencyKey: 'order-1234',
      amountMinor: 500,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    }).payment.id;
    store.recordCardRead(original, card(1));
    store.recordStep(original, 'authorization_requested');
    store.recordOnlineOutcome(original, { outcome: 'approved', authCode: 'A1' });
    expect(store.cancelPayment(original, 'customer changed mind').voided).toBe(true);
    expect(store.nextPending(10).map((r) => r.key)).toContain('order-1234.void');

    const start = errorOf(() =>
      store.startPayment({
        idempotencyKey: 'order-1234.void',
        amountMinor: 700,
        currency: 'EUR',
        offlineMode: 'prefer_online',
      }),
    );
    expect(start?.code).toBe('POS213');
    expect(start?.message).toMatch(/ends in "\.void", which the agent reserves/);
    expect(start?.message).toMatch(/fix: send a key that does not end in "\.void"/);
    expect(errorOf(() => store.createPayment(newPayment('lane-7.void')))?.code).toBe('POS213');
    expect(errorOf(() => checkIdempotencyKey('x.void'))?.code).toBe('POS213');
    // Nothing was written for the refused keys.
    expect(store.getPaymentByKey('order-1234.void')).toBeUndefined();
    expect(store.getPaymentByKey('lane-7.void')).toBeUndefined();
    // Keys that merely contain "void" stay valid.
    expect(checkIdempotencyKey('order.void-1')).toBe('order.void-1');
    expect(checkIdempotencyKey('voided')).toBe('voided');
    expect(store.checkProjection().ok).toBe(true);
  });

  it('recoverInterrupted: one unrecoverable payment is rolled back and reported, the others recover', () => {
    fx = freshStore();
    const { store, path } = fx;
    const start = (key: string) =>
      store.startPayment({
        idempotencyKey: key,
        amountMinor: 1000,
        currency: 'EUR',
        offlineMode: 'prefer_online',
      }).payment.id;
    // What a database written before `.void` keys were reserved can hold: another payment's void
    // record already under the key the interrupted authorization's void record needs.
    const other = start('lane-other');
    store.recordCardRead(other, card(1));
    store.declineLocally(other, 'offline_not_allowed', 'test', { voidRecord: false });
    const blocked = start('crash-blocked');
    store.recordCardRead(blocked, card(2));
    store.recordStep(blocked, 'authorization_requested');
    const authorizing = start('crash-authorizing');
    store.recordCardRead(authorizing, card(3));
    store.recordStep(authorizing, 'authorization_requested');
    const awaitingCard = start('crash-awaiting-card');
    const raw = rawConnection(path);
    try {
      const declinedEvent = (
        raw
          .prepare("SELECT seq FROM events WHERE payment_id = ? AND type = 'declined'")
          .get(other) as { seq: number }
      ).seq;
      raw
        .prepare(
          `INSERT INTO outbox (key, seq, payment_id, event_seq, type, state, attempts, created_at, updated_at)
           VALUES ('crash-blocked', 1, ?, ?, 'void', 'pending', 0, '2026-11-21T09:00:00.000Z', '2026-11-21T09:00:00.000Z')`,
        )
        .run(other, declinedEvent);
    } finally {
      raw.close();
    }

    const report = store.recoverInterrupted();
    expect(report.recovered.map((p) => [p.id, p.state])).toEqual([[authorizing, 'declined']]);
    // A payment still awaiting its card is a draft in memory (issue 9 §2): nothing to recover.
    expect(store.getPayment(awaitingCard)?.state).toBe('awaiting_card');
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]).toMatchObject({
      paymentId: blocked,
      idempotencyKey: 'crash-blocked',
      state: 'authorizing',
    });
    expect(report.failed[0]?.error.code).toBe('POS213');
    expect(report.failed[0]?.error.message).toMatch(/UNIQUE constraint failed: outbox\.key/);
    // The failed payment's own change was rolled back completely: no half-written decline.
    expect(store.getPayment(blocked)?.state).toBe('authorizing');
    expect(store.listEvents(blocked).map((e) => e.type)).toEqual([
      'payment_started',
      'card_read',
      'authorization_requested',
    ]);
    expect(store.verifyChain().ok).toBe(true);
    expect(store.checkProjection().ok).toBe(true);
    // Running it again changes nothing that recovered, and reports the same row again.
    const again = store.recoverInterrupted();
    expect(again.recovered).toEqual([]);
    expect(again.failed.map((f) => f.paymentId)).toEqual([blocked]);
  });
});
