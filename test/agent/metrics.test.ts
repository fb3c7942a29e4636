import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRig, type Rig } from '../e2e/payment-rig.js';
import { metricsTextToSweep, sweepForPans } from '../helpers/leak-sweep.js';

/** The value of one sample line `name{labels} value` in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig();
  }, 30_000);
  afterAll(async () => {
    await rig?.dispose();
  });

  it('reports the outbox, the link and the devices in Prometheus text, behind the bearer token', async () => {
    expect((await rig.request('GET', '/metrics', { token: null })).status).toBe(401);

    const paid = await rig.pay('metrics-key-0001', { amount: 1234, currency: 'EUR' });
    expect(paid.status).toBe(201);
    await rig.waitFor(() => rig.agent.store.queueStats().depth === 0);

    const { status, text } = await rig.request('GET', '/metrics');
    expect(status).toBe(200);
    expect(sample(text, 'pos_agent_link_online')).toBe(1);
    expect(sample(text, 'pos_agent_outbox_records{state="acked"}')).toBe(
      rig.agent.store.queueStats().acked,
    );
    expect(sample(text, 'pos_agent_outbox_records{state="pending"}')).toBe(0);
    expect(sample(text, 'pos_agent_outbox_oldest_age_seconds')).toBe(0);
    expect(text).toMatch(/pos_agent_device_connected\{device="pinPad",path="mock:\/\/[^"]+"\} 1/);
    expect(sample(text, 'pos_agent_sync_publishes_total')).toBeGreaterThanOrEqual(1);
    expect(sweepForPans(metricsTextToSweep('/metrics', text))).toEqual([]);
  });

  it('times each payment stage by path: the online payment above and an offline one', async () => {
    const paid = await rig.pay('metrics-key-0003', {
      amount: 700,
      currency: 'EUR',
      offline: 'force_offline',
    });
    expect(paid.status).toBe(201);
    // Stored, then forwarded at once (the link is up): drained before the next test counts.
    await rig.waitFor(() => rig.agent.store.queueStats().depth === 0);
    const { text } = await rig.request('GET', '/metrics');
    const count = (stage: string, path: string): number | undefined =>
      sample(text, `pos_agent_payment_stage_seconds_count{stage="${stage}",path="${path}"}`);
    const sum = (stage: string, path: string): number | undefined =>
      sample(text, `pos_agent_payment_stage_seconds_sum{stage="${stage}",path="${path}"}`);
    for (const stage of ['pad_display', 'card_read', 'authorization', 'store', 'total']) {
      expect(count(stage, 'online'), stage).toBe(1);
    }
    for (const stage of ['pad_display', 'card_read', 'store', 'total']) {
      expect(count(stage, 'offline'), stage).toBe(1);
      expect(sum(stage, 'offline'), stage).toBeGreaterThan(0);
    }
    // No authorization was sent for the offline one; no card needed a PIN.
    expect(count('authorization', 'offline')).toBeUndefined();
    expect(count('pin_entry', 'online')).toBeUndefined();
    // The stages are parts of the total.
    const parts = ['pad_display', 'card_read', 'store'].map((s) => sum(s, 'offline') ?? 0);
    expect(parts.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(sum('total', 'offline') ?? 0);
    expect(text).toContain('# TYPE pos_agent_payment_stage_seconds histogram');
  });

  it('counts the auth guard refusals by code', async () => {
    // Before: the unauthenticated request of the first test (missing token) counted once.
    const before = await rig.request('GET', '/metrics');
    const refused = (text: string, code: string): number | undefined =>
      sample(text, `pos_agent_api_auth_refused_total{code="${code}"}`);
    expect(refused(before.text, 'POS401')).toBe(1);
    expect((await rig.request('GET', '/v1/status', { token: 'wrong-token' })).status).toBe(401);
    const { text } = await rig.request('GET', '/metrics');
    expect(refused(text, 'POS401')).toBe(2);
    expect(refused(text, 'POS402')).toBe(0);
    expect(refused(text, 'POS403')).toBe(0);
  });

  it('shows the link down and the record waiting while the broker is stopped', async () => {
    await rig.broker.stop();
    await rig.waitFor(() => !rig.agent.worker.online);
    const paid = await rig.pay('metrics-key-0002', { amount: 2000, currency: 'USD' });
    expect(paid.status).toBe(201);
    const { text } = await rig.request('GET', '/metrics');
    expect(sample(text, 'pos_agent_link_online')).toBe(0);
    expect(sample(text, 'pos_agent_outbox_records{state="pending"}')).toBe(1);
    expect(sample(text, 'pos_agent_offline_exposure_minor{currency="USD"}')).toBe(2000);
    await rig.broker.start();
  });
});
