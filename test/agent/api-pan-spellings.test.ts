/**
 * Regression, issue 11 item 2: a PAN in `reference` spelled with separators or full-width digits
 * was accepted, stored and published. Through real HTTP on a real agent (aedes, cloud core
 * simulator, virtual PIN pad over mock://, a fresh SQLite file).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepForPans } from '../helpers/leak-sweep.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig();
});
afterAll(async () => {
  const answers = rig.answers.map((text, i) => ({ source: `answer ${i}`, content: text }));
  await rig?.dispose();
  expect(sweepForPans(answers)).toEqual([]);
});

describe('POST /v1/payments refuses a PAN in reference whatever its spelling', () => {
  it.each([
    ['hyphens', '4111-1111-1111-1111'],
    ['spaces', 'card 4111 1111 1111 1111'],
    ['dots', '4111.1111.1111.1111'],
    ['full-width digits', '４１１１１１１１１１１１１１１１'],
  ])('%s: 400 POS214, nothing stored, the digits not echoed', async (name, reference) => {
    const key = `pan-spelling-${name.replace(/\W/g, '-')}`;
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 1000, currency: 'EUR', reference },
      headers: { 'idempotency-key': key },
    });
    expect(answer.status).toBe(400);
    expect((answer.json.error as { code: string }).code).toBe('POS214');
    expect(answer.text).not.toContain('1111');
    expect(rig.agent.store.getPaymentByKey(key)).toBeUndefined();
  });
});
