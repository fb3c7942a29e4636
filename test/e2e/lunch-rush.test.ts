/**
 * Issue 3, Done when #2: "lunch rush". 300 payments in EUR, USD and JPY through the local API;
 * the broker is down for payments 101–200, and the offline caps are reached on purpose (an
 * amount over the per-payment cap every 10th payment, the JPY total cap, and the count cap).
 * Every payment gets exactly the outcome and reason a model of the policy predicts; after the
 * broker returns every stored payment is forwarded and acknowledged, the cloud core holds each
 * key once and charges exactly the approved payments, and the offline exposure is back to zero.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRig, type Rig } from './payment-rig.js';

const TOTAL = 300;
const DOWN_FROM = 101;
const DOWN_UNTIL = 200;
const CURRENCIES = ['EUR', 'USD', 'JPY'] as const;
const PER_TX = { EUR: 5000, USD: 5000, JPY: 5000 };
const TOTAL_CAP = { EUR: 1_000_000, USD: 1_000_000, JPY: 15_000 };
const MAX_COUNT = 60;

describe('lunch rush: 300 payments, broker down for a third, caps reached on purpose', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({
      offline: {
        perTransactionLimitMinor: PER_TX,
        totalLimitMinor: TOTAL_CAP,
        maxCount: MAX_COUNT,
      },
      authorization: { timeoutMs: 5000 },
    });
  }, 30_000);
  afterAll(async () => {
    await rig?.dispose();
  });

  it('gives every payment its expected outcome and drains to zero exposure, one charge per key', async () => {
    const expected = new Map<string, { state: string; code?: string }>();
    const exposure = { count: 0, EUR: 0, USD: 0, JPY: 0 };
    for (let n = 1; n <= TOTAL; n++) {
      if (n === DOWN_FROM) {
        await rig.broker.stop();
        await rig.waitFor(() => !rig.agent.worker.online);
      }
      if (n === DOWN_UNTIL + 1) {
        await rig.broker.start();
        await rig.waitFor(() => rig.agent.worker.online);
      }
      const currency = CURRENCIES[n % 3] as (typeof CURRENCIES)[number];
      const amount = n % 10 === 0 ? 9000 : 1000 + n; // never ends in 51 below: see the filter
      const card = n % 17 === 0 ? 'declined' : 'visa';
      const key = `rush-${String(n).padStart(4, '0')}`;
      const offline = n >= DOWN_FROM && n <= DOWN_UNTIL;
      const issuerDeclines = card === 'declined' || amount % 100 === 51;
      // The model of the policy (store-forward/offline-policy.ts, checked in this order).
      let outcome: { state: string; code?: string };
      if (!offline) {
        outcome = issuerDeclines
          ? { state: 'declined', code: card === 'declined' ? '05' : '51' }
          : { state: 'approved' };
      } else if (amount > PER_TX[currency]) {
        outcome = { state: 'declined', code: 'offline_amount_limit' };
      } else if (exposure[currency] + amount > TOTAL_CAP[currency]) {
        outcome = { state: 'declined', code: 'offline_total_limit' };
      } else if (exposure.count + 1 > MAX_COUNT) {
        outcome = { state: 'declined', code: 'offline_count_limit' };
      } else {
        exposure.count += 1;
        exposure[currency] += amount;
        outcome = { state: 'stored' };
      }
      const { status, json } = await rig.pay(key, { amount, currency }, card);
      expect(status, JSON.stringify(json)).toBe(201);
      expect(json.state, key).toBe(outcome.state);
      if (outcome.code !== undefined) expect(json.declineCode, key).toBe(outcome.code);
      expect(json.approval, key).toBe(
        outcome.state === 'approved' ? 'online' : outcome.state === 'stored' ? 'offline' : null,
      );
      // After forwarding, a stored payment ends approved, or reversed if the issuer declines it.
      expected.set(
        key,
        outcome.state === 'stored' ? { state: issuerDeclines ? 'reversed' : 'approved' } : outcome,
      );
    }
    // The caps were really reached, each of them.
    const codes = [...expected.values()].map((e) => e.code);
    for (const code of ['offline_amount_limit', 'offline_total_limit', 'offline_count_limit']) {
      expect(codes, code).toContain(code);
    }
    expect([...expected.values()].some((e) => e.state === 'reversed')).toBe(true);

    await rig.waitFor(
      () =>
        rig.agent.store.queueStats().depth === 0 && rig.agent.store.offlineExposure().count === 0,
      60_000,
    );
    for (const [key, outcome] of expected) {
      const payment = rig.agent.store.getPaymentByKey(key);
      expect(payment?.state, key).toBe(outcome.state);
      if (outcome.state === 'declined') expect(payment?.declineCode, key).toBe(outcome.code);
    }
    const stats = rig.agent.store.queueStats();
    expect(stats).toMatchObject({ depth: 0, dead: 0 });
    // Every payment the cloud had to learn about is there, once (a Map by key); local declines
    // never left the store.
    const cloudKeys = new Set(rig.cloud.keys());
    for (const [key, outcome] of expected) {
      const local = outcome.code?.startsWith('offline_') === true;
      expect(cloudKeys.has(key), key).toBe(!local);
    }
    const approved = [...expected].filter(([, o]) => o.state === 'approved').map(([k]) => k);
    expect(rig.cloud.charges().sort()).toEqual(approved.sort());
    expect(rig.agent.store.offlineExposure()).toEqual({
      count: 0,
      byCurrency: {},
      earliestDeadlineAt: null,
    });
    expect(rig.agent.store.verifyChain()).toMatchObject({ ok: true });
    expect(rig.agent.store.checkProjection()).toMatchObject({ ok: true });
  }, 180_000);
});
