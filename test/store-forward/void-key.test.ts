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
import { freshStore, newPayment, tokenFor } from './helpers.js';

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
});
