/**
 * Regression (issue 9, found by the HTTP-path bench): `POST /v1/payments` was answered only after
 * the PIN pad confirmed the result display with 51 ("result shown, card removed") — on a real pad
 * that is when the customer pulls the card, so the POS app waited on a human after the outcome
 * was already committed. The answer now follows the commit; the pad shows the result meanwhile
 * and the next payment's operations queue behind it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRig, type Rig } from './payment-rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

describe('the answer does not wait for the card to be removed', () => {
  it('answers an offline payment while the pad still holds its 51, and the next payment goes through after it', async () => {
    rig = await startRig();
    const r = rig;
    const held: (() => Promise<void>)[] = [];
    // The customer leaves the card in: the pad holds its 51 until the card is pulled.
    r.pad.override('50', (_message, pad) => {
      held.push(() => pad.sendRaw({ id: '51' }));
      return [];
    });
    const first = await r.pay('removed-late-1', {
      amount: 1200,
      currency: 'EUR',
      offline: 'force_offline',
    });
    expect(first.status).toBe(201);
    expect(first.json.state).toBe('stored');
    expect(held).toHaveLength(1);
    // Durable before the answer: the payment is in the store in its final state.
    expect(r.agent.store.getPaymentByKey('removed-late-1')?.state).toBe('stored');
    r.pad.override('50', undefined);
    for (const removeCard of held) await removeCard();
    const second = await r.pay('removed-late-2', { amount: 1300, currency: 'EUR' });
    expect(second.status).toBe(201);
    expect(second.json.state).toBe('approved');
  });
});
