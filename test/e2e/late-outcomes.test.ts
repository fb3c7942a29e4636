/**
 * Issue 3, Done when #3: late outcomes, with real parts (aedes in-process, the virtual PIN pad
 * over mock://, a fresh SQLite file per test, the cloud core simulator):
 * - the cloud answers the online authorization AFTER the agent's timeout (ambiguous): the agent
 *   approves offline under the policy, forwards the same key, the cloud answers with its ORIGINAL
 *   approval — one charge;
 * - require_online + the same late answer: declined locally, a void record carries the key, the
 *   cloud voids its approval — no charge;
 * - the issuer declines a payment approved offline: the payment ends `reversed`, no charge.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startRig, type Rig } from './payment-rig.js';

describe('late outcomes', () => {
  let rig: Rig;
  beforeEach(async () => {
    rig = await startRig({ authorization: { timeoutMs: 500 } });
  });
  afterEach(async () => {
    await rig?.dispose();
  });

  it('an authorization answered after the timeout is stored offline and reconciled to the original approval, charged once', async () => {
    rig.cloud.setFaults({ authResponseDelayMs: 1500 });
    const { status, json } = await rig.pay('late-auth-0001', { amount: 1234, currency: 'EUR' });
    expect(status).toBe(201);
    expect(json).toMatchObject({ state: 'stored', approval: 'offline' });
    await rig.waitFor(() => rig.agent.store.queueStats().depth === 0);
    const payment = rig.agent.store.getPaymentByKey('late-auth-0001');
    expect(payment).toMatchObject({ state: 'approved', approval: 'offline' });
    // The record arrived as a duplicate of the authorization: the ORIGINAL outcome, once.
    expect(rig.cloud.records().get('late-auth-0001')).toMatchObject({
      outcome: 'approved',
      count: 2,
    });
    expect(rig.cloud.charges()).toEqual(['late-auth-0001']);
    expect(payment?.authCode).toBe(rig.cloud.records().get('late-auth-0001')?.authCode);
    expect(rig.agent.store.offlineExposure().count).toBe(0);
  });

  it('require_online with a late answer is declined locally and the cloud voids its approval: no charge', async () => {
    rig.cloud.setFaults({ authResponseDelayMs: 1500 });
    const { json } = await rig.pay('late-auth-0002', {
      amount: 2000,
      currency: 'USD',
      offline: 'require_online',
    });
    expect(json).toMatchObject({ state: 'declined', declineCode: 'authorization_timeout' });
    await rig.waitFor(() => rig.agent.store.queueStats().depth === 0);
    expect(rig.cloud.records().get('late-auth-0002')).toMatchObject({
      outcome: 'approved',
      voided: true,
    });
    expect(rig.cloud.charges()).toEqual([]);
    const payment = rig.agent.store.getPaymentByKey('late-auth-0002');
    expect(payment?.state).toBe('declined');
    // The difference is recorded as an event: the cloud had approved, the void undid it.
    const events = rig.agent.store.listEvents(payment?.id ?? '');
    expect(events.at(-1)).toMatchObject({
      type: 'confirmed',
      data: { record: 'void', cloudOutcome: 'approved' },
    });
  });

  it('a payment approved offline that the issuer declines ends reversed, with no charge', async () => {
    const prompts: { kind: string; idempotencyKey: string }[] = [];
    rig.agent.payments.on('prompt', (prompt) => prompts.push(prompt));
    await rig.broker.stop();
    await rig.waitFor(() => !rig.agent.worker.online);
    const { json } = await rig.pay('late-decl-0001', { amount: 1500, currency: 'EUR' }, 'declined');
    expect(json).toMatchObject({ state: 'stored', approval: 'offline' });
    expect(rig.agent.store.offlineExposure().byCurrency.EUR).toEqual({
      amountMinor: 1500,
      count: 1,
    });
    await rig.broker.start();
    await rig.waitFor(
      () => rig.agent.store.queueStats().depth === 0 && rig.agent.store.queueStats().acked === 1,
    );
    const payment = rig.agent.store.getPaymentByKey('late-decl-0001');
    expect(payment).toMatchObject({ state: 'reversed', approval: 'offline' });
    expect(payment?.reason).toContain('05');
    expect(rig.cloud.charges()).toEqual([]);
    expect(rig.agent.store.offlineExposure().count).toBe(0);
    expect(rig.agent.store.checkProjection()).toMatchObject({ ok: true });
    // Regression (issue 9): the acked listener reads back only the payments the cloud declined;
    // the late decline must still reach the terminal as a `reversed` prompt.
    expect(prompts.filter((p) => p.kind === 'reversed')).toEqual([
      expect.objectContaining({ idempotencyKey: 'late-decl-0001' }),
    ]);
  });
});
