/**
 * What the POS app and the cashier get from the local API (issue 13), on a real agent over HTTP
 * (aedes, cloud core simulator, virtual PIN pad over mock://, fresh SQLite):
 * - `Idempotency-Key` is required: without it 400 POS406 naming the fix, and nothing is started
 *   (it used to be optional, and a retry without it charged twice);
 * - a decline reads in words with money as money, the same in the answer's `message` and in the
 *   event stream's `text`, with the code beside it ("7500 USD is over the offline limit of
 *   5000" and "declined: 05" were the old texts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PosAgentApiError, PosAgentClient, PosAgentContractError } from '../../agent/client.js';
import { findTestCard } from '../../simulator/test-cards.js';
import { sweepForPans } from '../helpers/leak-sweep.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';
import { newPayment } from '../store-forward/helpers.js';

let rig: Rig;
beforeEach(async () => {
  rig = await startRig({
    authorization: { timeoutMs: 5000 },
    offline: { perTransactionLimitMinor: { USD: 5000 }, totalLimitMinor: { USD: 20_000 } },
  });
});
afterEach(async () => {
  const answers = rig.answers.map((text, i) => ({ source: `answer ${i}`, content: text }));
  await rig?.dispose();
  expect(sweepForPans(answers)).toEqual([]);
});

describe('Idempotency-Key is required on POST /v1/payments', () => {
  it('answers 400 POS406 naming the header and the fix, and starts nothing', async () => {
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 1250, currency: 'EUR' },
    });
    expect(answer.status).toBe(400);
    const error = answer.json.error as { code: string; message: string };
    expect(error.code).toBe('POS406');
    expect(error.message).toContain('Idempotency-Key header is missing');
    expect(error.message).toMatch(/same one on every retry/);
    expect(rig.agent.store.listPayments()).toEqual([]);
    // A PIN pad that was never asked for a card.
    expect(rig.pad.received.some((m) => m.id === '20')).toBe(false);
  });

  it('an empty key is a bad key (POS400 with the rule), not a missing one', async () => {
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 1250, currency: 'EUR' },
      headers: { 'idempotency-key': '' },
    });
    expect(answer.status).toBe(400);
    expect((answer.json.error as { code: string; message: string }).message).toMatch(
      /Idempotency-Key must be 8–128/,
    );
  });
});

describe('declines in words, money as money, the same in the API and the events', () => {
  async function withEvents(run: () => Promise<void>): Promise<Array<Record<string, unknown>>> {
    const controller = new AbortController();
    const response = await fetch(`${rig.agent.apiUrl}/v1/events`, {
      headers: { authorization: `Bearer ${rig.agent.apiToken}` },
      signal: controller.signal,
    });
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
    await run();
    await readUntil('event: declined');
    await readUntil('\n\n');
    controller.abort();
    rig.answers.push(text);
    return text
      .split('\n\n')
      .filter((block) => block.startsWith('event: '))
      .map(
        (block) => JSON.parse(block.split('\n')[1]?.slice(6) ?? '{}') as Record<string, unknown>,
      );
  }

  it('over the offline limit: "USD 75.00 is over the offline limit of USD 50.00"', async () => {
    let answer: Awaited<ReturnType<Rig['pay']>> | undefined;
    const events = await withEvents(async () => {
      answer = await rig.pay('over-cap-usd-0001', {
        amount: 7500,
        currency: 'USD',
        offline: 'force_offline',
      });
    });
    const sentence = 'Declined — USD 75.00 is over the offline limit of USD 50.00 per payment';
    expect(answer?.status).toBe(201);
    expect(answer?.json).toMatchObject({
      state: 'declined',
      declineCode: 'offline_amount_limit',
      message: sentence,
    });
    expect(events.at(-1)).toMatchObject({
      kind: 'declined',
      code: 'offline_amount_limit',
      text: sentence,
      amount: 'USD 75.00',
    });
  });

  it('by the issuer: "Declined by the card issuer (do not honour, code 05)"', async () => {
    let answer: Awaited<ReturnType<Rig['pay']>> | undefined;
    const events = await withEvents(async () => {
      answer = await rig.pay('issuer-05-0001', { amount: 1250, currency: 'EUR' }, 'declined');
    });
    const sentence = 'Declined by the card issuer (do not honour, code 05)';
    expect(answer?.json).toMatchObject({ state: 'declined', declineCode: '05', message: sentence });
    expect(events.at(-1)).toMatchObject({ kind: 'declined', code: '05', text: sentence });
    // GET answers the same sentence as the POST did.
    const again = await rig.request('GET', `/v1/payments/${String(answer?.json.id)}`);
    expect(again.json.message).toBe(sentence);
  });
});

describe('the typed client (agent/client.ts) against the real API', () => {
  it('takes a payment, answers a retry with the original, and throws the coded refusal', async () => {
    const client = new PosAgentClient({ baseUrl: rig.agent.apiUrl, token: rig.agent.apiToken });
    const card = findTestCard('visa');
    if (card === undefined) throw new Error('visa');
    rig.pad.presentCard(card, { entryMode: 'C' });
    const first = await client.createPayment({ amount: 1250, currency: 'EUR' }, 'client-0000001');
    expect(first.created).toBe(true);
    expect(first.payment).toMatchObject({ state: 'approved', message: 'Approved' });
    const retry = await client.createPayment({ amount: 1250, currency: 'EUR' }, 'client-0000001');
    expect(retry).toMatchObject({ created: false, payment: { id: first.payment.id } });
    const conflict = await client
      .createPayment({ amount: 1300, currency: 'EUR' }, 'client-0000001')
      .catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(PosAgentApiError);
    expect(conflict).toMatchObject({
      status: 409,
      code: 'POS409',
      cashierMessage: 'This payment was already taken with other details — start a new payment',
    });
    // updatedAt moves when the cloud's acknowledgement lands; the payment is the same.
    expect(await client.getPayment(first.payment.id)).toMatchObject({
      id: first.payment.id,
      idempotencyKey: 'client-0000001',
      amount: 1250,
      message: 'Approved',
    });
    expect((await client.listPayments({ idempotencyKey: 'client-0000001' })).length).toBe(1);
    expect((await client.status()).link.state).toBe('online');
    // A body the agent would refuse is refused before anything is sent.
    await expect(
      client.createPayment({ amount: 12.5, currency: 'EUR' }, 'client-0000002'),
    ).rejects.toThrow(/integer count of minor units/);
    expect(rig.agent.store.getPaymentByKey('client-0000002')).toBeUndefined();
  });

  it('an answer off the contract is a PosAgentContractError, not silently passed on', async () => {
    const client = new PosAgentClient({
      baseUrl: 'http://agent.invalid',
      token: 't',
      fetch: async () => new Response(JSON.stringify({ id: 'pay_1' }), { status: 200 }),
    });
    await expect(client.getPayment('pay_1')).rejects.toBeInstanceOf(PosAgentContractError);
  });
});

describe('refusals have a sentence for the cashier beside the code', () => {
  it('a card that cannot be read: 422 POS420 with the reason in words', async () => {
    rig.pad.injectFault({ kind: 'card-error', reason: 'chip_required' });
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 1250, currency: 'EUR' },
      headers: { 'idempotency-key': 'refusal-chip-0001' },
    });
    expect(answer.status).toBe(422);
    expect(answer.json.error).toMatchObject({
      code: 'POS420',
      cashierMessage: 'This is a chip card — insert it instead of swiping',
    });
  });

  it("the POS app's own mistakes carry no cashier sentence (they are for its developer)", async () => {
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 1250, currency: 'EUR' },
    });
    expect(answer.json.error).toMatchObject({ code: 'POS406' });
    expect((answer.json.error as Record<string, unknown>).cashierMessage).toBeUndefined();
  });
});

describe('GET /v1/payments pages by keyset cursor (issue 9)', () => {
  it('walks every payment once, newest first, by `next`; a bad cursor is 400 POS213', async () => {
    for (let i = 0; i < 5; i++) rig.agent.store.createPayment(newPayment(`page-key-${i}`));
    const client = new PosAgentClient({ baseUrl: rig.agent.apiUrl, token: rig.agent.apiToken });
    const seen: string[] = [];
    let before: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await client.listPaymentPage({ limit: 2, ...(before ? { before } : {}) });
      pages += 1;
      seen.push(...page.payments.map((p) => p.idempotencyKey));
      if (page.next === null) break;
      before = page.next;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual([4, 3, 2, 1, 0].map((i) => `page-key-${i}`));
    const bad = await rig.request('GET', '/v1/payments?before=yesterday');
    expect(bad.status).toBe(400);
    expect((bad.json.error as { code: string }).code).toBe('POS213');
  });
});
