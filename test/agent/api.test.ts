/**
 * The local API (architecture.md §6, issue 3 §5) through real HTTP on a real agent: aedes in-process, the
 * cloud core simulator, the virtual PIN pad over mock://, a fresh SQLite file per test. No answer
 * may hold a test PAN (leak sweep after every test).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findTestCard } from '../../simulator/test-cards.js';
import { sweepForPans } from '../helpers/leak-sweep.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';

let rig: Rig;
beforeEach(async () => {
  rig = await startRig({ authorization: { timeoutMs: 5000 } });
});
afterEach(async () => {
  const answers = rig.answers.map((text, i) => ({ source: `answer ${i}`, content: text }));
  await rig?.dispose();
  expect(sweepForPans(answers)).toEqual([]);
});

/** POST /v1/payments with the card presented on the virtual pad first (unless `card` is null). */
function pay(
  key: string,
  body: Record<string, unknown>,
  card: string | null = 'visa',
): ReturnType<Rig['request']> {
  if (card !== null) {
    const testCard = findTestCard(card);
    if (testCard === undefined) throw new Error(card);
    rig.pad.presentCard(testCard, { entryMode: 'C' });
  }
  return rig.request('POST', '/v1/payments', { body, headers: { 'idempotency-key': key } });
}

function errorOf(json: Record<string, unknown>): {
  code: string;
  message: string;
  details?: Record<string, unknown>;
} {
  return json.error as { code: string; message: string; details?: Record<string, unknown> };
}

describe('local API over HTTP', () => {
  it('answers 401 without a token and with a wrong one', async () => {
    const none = await rig.request('GET', '/v1/status', { token: null });
    expect(none.status).toBe(401);
    expect(errorOf(none.json).code).toBe('POS401');
    const wrong = await rig.request('GET', '/v1/payments', { token: 'not-the-token' });
    expect(wrong.status).toBe(401);
    expect(errorOf(wrong.json).code).toBe('POS401');
    const right = await rig.request('GET', '/v1/status');
    expect(right.status).toBe(200);
  });

  it('answers 400 listing every problem of a bad body, and for a non-JSON body', async () => {
    const bad = await rig.request('POST', '/v1/payments', {
      body: { amount: 12.5, currency: 'eur', tip: 1 },
      headers: { 'idempotency-key': 'bad-body-0001' },
    });
    expect(bad.status).toBe(400);
    const error = errorOf(bad.json);
    expect(error.code).toBe('POS400');
    const problems = error.details?.problems as string[];
    expect(problems).toHaveLength(3);
    expect(problems.find((p) => p.startsWith('amount:'))).toMatch(/integer count of minor units/);
    expect(problems.find((p) => p.startsWith('currency:'))).toMatch(/upper case/);
    expect(problems.find((p) => p.includes('tip'))).toBeDefined();

    const notJson = await rig.request('POST', '/v1/payments', {
      rawBody: '{"amount": 100, "currency": ',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'bad-body-0002' },
    });
    expect(notJson.status).toBe(400);
    expect(errorOf(notJson.json).code).toBe('POS400');
    // Nothing was started for either.
    expect(rig.agent.store.listPayments()).toEqual([]);
  });

  it('answers 404 POS405 for an unknown route', async () => {
    const answer = await rig.request('GET', '/v1/refunds?x=1');
    expect(answer.status).toBe(404);
    expect(errorOf(answer.json)).toMatchObject({ code: 'POS405' });
    expect(errorOf(answer.json).message).toContain('GET /v1/refunds');
    // Points the developer to the API's description, which the agent serves (issue 13).
    expect(errorOf(answer.json).message).toContain('GET /openapi.json');
  });

  it('Idempotency-Key: same parameters → 200 with the same payment; other parameters → 409 naming the field; a bad key → 400', async () => {
    const first = await pay('idem-key-0001', { amount: 1250, currency: 'EUR' });
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ state: 'approved', approval: 'online' });
    const again = await pay('idem-key-0001', { amount: 1250, currency: 'EUR' }, null);
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(first.json.id);
    const other = await pay('idem-key-0001', { amount: 1300, currency: 'EUR' }, null);
    expect(other.status).toBe(409);
    expect(errorOf(other.json).message).toContain('amount');
    expect(errorOf(other.json).details).toMatchObject({ fields: ['amount'] });
    const badKey = await pay('short', { amount: 100, currency: 'EUR' }, null);
    expect(badKey.status).toBe(400);
    expect(errorOf(badKey.json).message).toMatch(/Idempotency-Key must be 8–128/);
    // One charge for the key: the authorization and its record arrive under the same key.
    await rig.waitFor(() => rig.agent.store.queueStats().depth === 0);
    expect(rig.cloud.charges()).toEqual(['idem-key-0001']);
    expect(rig.cloud.records().get('idem-key-0001')).toMatchObject({ count: 2 });
  });

  it('a repeated Idempotency-Key while the payment is a draft in memory: found, answered once, refused with other parameters', async () => {
    // Issue 9 §2: before its decision the payment is written nowhere; the key is still taken.
    const first = pay('draft-key-0001', { amount: 640, currency: 'EUR' }, null);
    let id = '';
    await rig.waitFor(() => {
      const p = rig.agent.store.getPaymentByKey('draft-key-0001');
      id = p?.id ?? '';
      return p?.state === 'awaiting_card';
    });
    // Control: nothing of it is in the database yet.
    expect(rig.agent.store.checkProjection()).toMatchObject({ ok: true, payments: 0 });
    const byId = await rig.request('GET', `/v1/payments/${id}`);
    expect(byId.status).toBe(200);
    expect(byId.json).toMatchObject({ id, state: 'awaiting_card' });
    const byKey = await rig.request('GET', '/v1/payments?idempotencyKey=draft-key-0001');
    expect((byKey.json.payments as { id: string }[]).map((p) => p.id)).toEqual([id]);
    const listed = await rig.request('GET', '/v1/payments');
    expect((listed.json.payments as { id: string }[]).map((p) => p.id)).toEqual([id]);

    const other = await pay('draft-key-0001', { amount: 650, currency: 'EUR' }, null);
    expect(other.status).toBe(409);
    expect(errorOf(other.json).code).toBe('POS409');
    expect(errorOf(other.json).message).toContain('in progress');
    // The same request again waits for the first one's answer and gets the same payment.
    const same = pay('draft-key-0001', { amount: 640, currency: 'EUR' }, null);
    const card = findTestCard('visa');
    if (card === undefined) throw new Error('visa');
    rig.pad.presentCard(card, { entryMode: 'C' });
    const [answer, repeated] = await Promise.all([first, same]);
    expect(answer.status).toBe(201);
    expect(answer.json).toMatchObject({ id, state: 'approved', approval: 'online' });
    expect(repeated.status).toBe(200);
    expect(repeated.json).toMatchObject({ id, state: 'approved' });
    expect(rig.agent.store.checkProjection()).toMatchObject({ ok: true, payments: 1 });
    await rig.waitFor(() => rig.agent.store.queueStats().depth === 0);
    expect(rig.cloud.charges()).toEqual(['draft-key-0001']);
  });

  it('cancel before authorization → canceled, nothing reaches the cloud', async () => {
    const taking = pay('cancel-early-01', { amount: 500, currency: 'EUR' }, null);
    let id = '';
    await rig.waitFor(() => {
      const p = rig.agent.store.getPaymentByKey('cancel-early-01');
      id = p?.id ?? '';
      return p?.state === 'awaiting_card';
    });
    const canceled = await rig.request('POST', `/v1/payments/${id}/cancel`);
    expect(canceled.status).toBe(200);
    expect(canceled.json).toMatchObject({ state: 'canceled', voidForwarded: false });
    const answer = await taking;
    expect(answer.json).toMatchObject({ id, state: 'canceled' });
    expect(rig.agent.store.queueStats()).toMatchObject({ depth: 0, acked: 0 });
    expect(rig.cloud.records().size).toBe(0);
  });

  it('cancel after an offline approval → canceled and a <key>.void record that the cloud receives', async () => {
    const cloudKeys: string[] = [];
    rig.cloud.on('batch', (info) => cloudKeys.push(...info.results.map((r) => r.key)));
    await rig.broker.stop();
    await rig.waitFor(() => !rig.agent.worker.online);
    const stored = await pay('cancel-offline-1', { amount: 900, currency: 'EUR' });
    expect(stored.json).toMatchObject({ state: 'stored', approval: 'offline' });
    const canceled = await rig.request('POST', `/v1/payments/${String(stored.json.id)}/cancel`);
    expect(canceled.status).toBe(200);
    expect(canceled.json).toMatchObject({ state: 'canceled', voidForwarded: true });
    await rig.broker.start();
    await rig.waitFor(
      () => rig.agent.store.queueStats().depth === 0 && rig.agent.store.queueStats().acked === 2,
    );
    expect(cloudKeys).toContain('cancel-offline-1.void');
    expect(rig.agent.store.listEvents(String(stored.json.id)).at(-1)).toMatchObject({
      type: 'confirmed',
      data: { key: 'cancel-offline-1.void', record: 'void' },
    });
    expect(rig.cloud.records().get('cancel-offline-1')).toMatchObject({ voided: true });
    expect(rig.cloud.charges()).toEqual([]);
  });

  it('cancel during authorization → 409, and the payment goes on to its outcome', async () => {
    rig.cloud.setFaults({ authResponseDelayMs: 1500 });
    const taking = pay('cancel-auth-0001', { amount: 700, currency: 'EUR' });
    let id = '';
    await rig.waitFor(() => {
      const p = rig.agent.store.getPaymentByKey('cancel-auth-0001');
      id = p?.id ?? '';
      return p?.state === 'authorizing';
    });
    const refused = await rig.request('POST', `/v1/payments/${id}/cancel`);
    expect(refused.status).toBe(409);
    expect(errorOf(refused.json).code).toBe('POS212');
    expect((await taking).json).toMatchObject({ state: 'approved', approval: 'online' });
  });

  it('GET /v1/payments?state=… and ?idempotencyKey=…, GET /v1/payments/:id, 404 for an unknown id', async () => {
    const approved = await pay('list-key-000001', { amount: 100, currency: 'EUR' });
    expect(approved.json).toMatchObject({ state: 'approved', approval: 'online' });
    const declined = await pay('list-key-000002', { amount: 200, currency: 'EUR' }, 'declined');
    expect(declined.json).toMatchObject({ state: 'declined' });
    const byState = await rig.request('GET', '/v1/payments?state=approved');
    expect((byState.json.payments as { id: string }[]).map((p) => p.id)).toEqual([
      approved.json.id,
    ]);
    const byKey = await rig.request('GET', '/v1/payments?idempotencyKey=list-key-000002');
    expect(byKey.json.payments).toEqual([declined.json]);
    const none = await rig.request('GET', '/v1/payments?idempotencyKey=list-key-unknown');
    expect(none.json).toEqual({ payments: [] });
    const one = await rig.request('GET', `/v1/payments/${String(approved.json.id)}`);
    // updatedAt moves when the cloud acknowledges the record; everything else is the answer's.
    expect(one.json).toEqual({ ...approved.json, updatedAt: expect.any(String) as unknown });
    const missing = await rig.request('GET', '/v1/payments/pay_nope');
    expect(missing.status).toBe(404);
    const badState = await rig.request('GET', '/v1/payments?state=paid');
    expect(badState.status).toBe(400);
    // Regression: an unknown state used to reach the store and answer 500.
    expect(errorOf(badState.json)).toMatchObject({ code: 'POS400' });
    expect(errorOf(badState.json).message).toMatch(/state must be one of awaiting_card/);
  });

  it('GET /v1/events streams the prompts of a payment in order', async () => {
    const controller = new AbortController();
    const response = await fetch(`${rig.agent.apiUrl}/v1/events`, {
      headers: { authorization: `Bearer ${rig.agent.apiToken}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const readUntil = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    await readUntil(': pos-agent terminal prompts');
    const answer = await pay('sse-key-0000001', { amount: 1500, currency: 'EUR' });
    expect(answer.json).toMatchObject({ state: 'approved' });
    await readUntil('event: approved_online');
    controller.abort();
    rig.answers.push(text);
    const events = text
      .split('\n\n')
      .filter((block) => block.startsWith('event: '))
      .map((block) => {
        const [eventLine, dataLine] = block.split('\n');
        return {
          event: eventLine?.slice('event: '.length),
          data: JSON.parse(dataLine?.slice('data: '.length) ?? '{}') as Record<string, unknown>,
        };
      });
    // The cashier's words come from the one table (agent/texts.ts), the same as the API's message.
    expect(events.map((e) => [e.event, e.data.text])).toEqual([
      ['present_card', 'Insert, tap or swipe the card'],
      ['authorizing', 'Approving online…'],
      ['approved_online', 'Approved'],
    ]);
    expect(answer.json.message).toBe('Approved');
    for (const e of events) {
      expect(e.data).toMatchObject({
        idempotencyKey: 'sse-key-0000001',
        paymentId: answer.json.id,
        amountMinor: 1500,
        currency: 'EUR',
        amount: 'EUR 15.00',
      });
    }
  });
});

describe('local API: HTTP status of store and PIN pad errors (review B13)', () => {
  it('a reference holding a Luhn-valid 16-digit run is 400 POS214 and nothing is stored', async () => {
    const answer = await pay(
      'b13-pan-ref-0001',
      { amount: 1000, currency: 'EUR', reference: 'order 4111111111111111' },
      null,
    );
    expect(answer.status).toBe(400);
    expect(errorOf(answer.json).code).toBe('POS214');
    expect(rig.agent.store.getPaymentByKey('b13-pan-ref-0001')).toBeUndefined();
    expect(rig.agent.store.listPayments({ limit: 10 })).toEqual([]);
  });

  it('a PIN pad that does not answer is 504 POS120', async () => {
    // Online PIN with the shortest PIN time (5 s); the pad never answers message 30, so the
    // agent gives up after that plus its response timeout (5 s).
    await rig.dispose();
    rig = await startRig({
      authorization: { onlinePinEntryModes: ['chip'], pinTimeoutSeconds: 5 },
    });
    rig.pad.override('30', () => []);
    const answer = await pay('b13-pad-timeout-0001', { amount: 1000, currency: 'EUR' });
    expect(answer.status).toBe(504);
    expect(errorOf(answer.json).code).toBe('POS120');
    expect(rig.agent.store.getPaymentByKey('b13-pad-timeout-0001')?.state).toBe('failed');
  }, 30_000);

  it('a PIN pad unplugged while it waits for the card is 503 POS102', async () => {
    const answer = pay('b13-pad-unplug-0001', { amount: 1000, currency: 'EUR' }, null);
    await rig.waitFor(() => rig.pad.received.some((m) => m.id === '20'));
    rig.pad.injectFault({ kind: 'unplug' });
    const { status, json } = await answer;
    expect(status).toBe(503);
    expect(errorOf(json).code).toBe('POS102');
    expect(rig.agent.store.getPaymentByKey('b13-pad-unplug-0001')?.state).toBe('failed');
  });
});
