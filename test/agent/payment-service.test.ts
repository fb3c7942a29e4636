/**
 * PaymentService regressions found in review: what it sends to the PIN pad, and what a store
 * error in the middle of a payment leaves behind. A real agent on the simulator (payment-rig).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../common/agent-error.js';
import { padCardNotReadText, padResultText } from '../../agent/payment-service.js';
import type { CardReadFailure } from '../../drivers/boundary/card-token.js';
import { encodeMessage } from '../../drivers/pinpad/messages.js';
import { PAYMENT_STATES } from '../../store-forward/model.js';
import type { Payment } from '../../store-forward/payment-store.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

const CARD_READ_FAILURES: CardReadFailure[] = [
  'timeout',
  'canceled',
  'bad_read',
  'chip_required',
  'card_removed',
  'no_start_sentinel',
  'invalid_pan',
  'expired',
  'reader_disconnected',
];

/** Local decline codes (store-forward/model.ts) and cloud codes, some not ASCII (≤ 32 chars). */
const DECLINE_CODES = [
  undefined,
  'offline_amount_limit',
  'offline_total_limit',
  'offline_count_limit',
  'online_pin_required',
  'offline_not_allowed',
  'authorization_timeout',
  'authorization_interrupted',
  'pin_timeout',
  'pin_canceled',
  'pin_bypassed',
  '05',
  'refusé — émetteur',
  'x'.repeat(32),
];

describe('PaymentService → PIN pad text', () => {
  it('every result text it can send to the pad encodes as message 50 without POS122', () => {
    const texts: string[] = CARD_READ_FAILURES.map(padCardNotReadText);
    for (const state of PAYMENT_STATES) {
      for (const declineCode of DECLINE_CODES) {
        const payment = {
          state,
          ...(declineCode !== undefined ? { declineCode } : {}),
        } as Payment;
        texts.push(padResultText(payment));
      }
    }
    expect(texts).toContain('Approved offline - stored');
    for (const text of texts) {
      for (const outcome of ['approved', 'declined', 'stored'] as const) {
        expect(() => encodeMessage({ id: '50', outcome, text }), text).not.toThrow();
      }
    }
  });

  it('an offline approval is shown on the pad (it used to be refused for its em dash)', async () => {
    rig = await startRig();
    const prompts: string[] = [];
    rig.agent.payments.on('prompt', (p: { text: string }) => prompts.push(p.text));
    const answer = await rig.pay('pad-text-offline-0001', {
      amount: 1250,
      currency: 'EUR',
      offline: 'force_offline',
    });
    expect(answer.status).toBe(201);
    expect(answer.json).toMatchObject({ state: 'stored', approval: 'offline' });
    expect(rig.pad.lastResult).toEqual({ outcome: 'stored', text: 'Approved offline - stored' });
    // The SSE prompt keeps its typography; only the pad's wire needs ASCII.
    expect(prompts).toContain('Approved offline — payment stored');
  }, 30_000);
});

describe('PaymentService after a store error', () => {
  it('a store error after authorization_requested declines the payment with a void record instead of leaving it authorizing', async () => {
    rig = await startRig();
    const r = rig;
    const store = r.agent.store;
    // The store fails once when it records the cloud's answer (a disk error, SQLITE_IOERR).
    const recordOnlineOutcome = store.recordOnlineOutcome.bind(store);
    let failures = 0;
    store.recordOnlineOutcome = (...args) => {
      if (failures++ === 0) throw new Error('disk I/O error (injected)');
      return recordOnlineOutcome(...args);
    };
    const answer = await r.pay('store-error-auth-0001', { amount: 1800, currency: 'EUR' });
    expect(answer.status).toBe(500);
    expect(failures).toBe(1);

    const payment = store.getPaymentByKey('store-error-auth-0001');
    expect(payment).toMatchObject({ state: 'declined', declineCode: 'authorization_interrupted' });
    // The cloud had approved; the void record undoes it, so nothing is charged.
    await r.waitFor(() => store.queueStats().depth === 0);
    expect(r.cloud.records().get('store-error-auth-0001')).toMatchObject({
      outcome: 'approved',
      voided: true,
    });
    expect(r.cloud.charges()).toEqual([]);
    // The PIN pad is free for the next payment.
    const next = await r.pay('store-error-auth-0002', { amount: 900, currency: 'EUR' });
    expect(next.json).toMatchObject({ state: 'approved', approval: 'online' });
  }, 30_000);
});

describe('agent stop with a payment waiting for the card', () => {
  it('ends the card read so the POST answers and stop() returns (it waited up to cardReadTimeoutSeconds)', async () => {
    rig = await startRig();
    const r = rig;
    // No card is presented: the POST waits for one (60 s by default).
    const answer = r.request('POST', '/v1/payments', {
      body: { amount: 1000, currency: 'EUR' },
      headers: { 'idempotency-key': 'stop-during-read-0001' },
    });
    await r.waitFor(() => r.pad.received.some((m) => m.id === '20'));
    let failedBeforeClose: string | undefined;
    const close = r.agent.store.close.bind(r.agent.store);
    r.agent.store.close = () => {
      failedBeforeClose = r.agent.store.getPaymentByKey('stop-during-read-0001')?.state;
      close();
    };
    await r.agent.stop();
    const { status, json } = await answer;
    expect(status).toBe(422);
    expect(json.error).toMatchObject({ code: 'POS420', details: { reason: 'canceled' } });
    // The outcome was committed before the database closed.
    expect(failedBeforeClose).toBe('failed');
  }, 30_000);
});

describe('PaymentService when the authorization could not be sent (POS325)', () => {
  it('goes offline by policy without a void record, and declines require_online without one', async () => {
    rig = await startRig();
    const r = rig;
    const worker = r.agent.worker;
    const authorize = worker.authorize.bind(worker);
    let refusals = 0;
    // The link drops between the agent's online check and the publish: the worker answers POS325
    // ("not sent"), which is not ambiguous.
    worker.authorize = async (...args) => {
      if (refusals < 2) {
        refusals++;
        throw new AgentError('POS325', 'not connected: the authorization request was not sent');
      }
      return authorize(...args);
    };

    const offline = await r.pay('pos325-prefer-0001', { amount: 1500, currency: 'EUR' });
    expect(offline.json).toMatchObject({ state: 'stored', approval: 'offline' });
    const declined = await r.pay('pos325-require-0001', {
      amount: 1500,
      currency: 'EUR',
      offline: 'require_online',
    });
    expect(declined.json).toMatchObject({ state: 'declined', declineCode: 'offline_not_allowed' });
    expect(refusals).toBe(2);

    await r.waitFor(() => r.agent.store.queueStats().depth === 0);
    // Only the stored payment's own record reached the cloud: no void for either key.
    expect(r.cloud.records().get('pos325-prefer-0001')).toMatchObject({ status: 'accepted' });
    expect(r.cloud.records().get('pos325-prefer-0001')?.voided ?? false).toBe(false);
    expect(r.cloud.records().has('pos325-require-0001')).toBe(false);
  }, 30_000);
});

describe('cancel through the API while the PIN pad never confirms it (no 41)', () => {
  it('the POST waiting for the card answers (canceled) once the pad’s cancel times out, not after the card-read timeout', async () => {
    rig = await startRig();
    const r = rig;
    // The pad ignores 40: no 41 and no 29, its read would run for cardReadTimeoutSeconds (60 s).
    r.pad.override('40', () => []);
    const answer = r.request('POST', '/v1/payments', {
      body: { amount: 1000, currency: 'EUR' },
      headers: { 'idempotency-key': 'cancel-no-41-0001' },
    });
    await r.waitFor(() => r.pad.received.some((m) => m.id === '20'));
    const payment = r.agent.store.getPaymentByKey('cancel-no-41-0001');
    expect(payment).toBeDefined();
    const canceled = await r.request('POST', `/v1/payments/${payment?.id ?? ''}/cancel`);
    expect(canceled.status).toBe(200);
    expect(r.pad.received.some((m) => m.id === '40')).toBe(true);
    // The POST answers with the canceled payment (as for a cancel the pad confirms, api.test.ts).
    const { status, json } = await answer;
    expect(status).toBe(201);
    expect(json).toMatchObject({ id: payment?.id, state: 'canceled' });
  }, 30_000);
});
