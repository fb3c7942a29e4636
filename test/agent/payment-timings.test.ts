/**
 * agent/payment-timings.ts: the stage clock adds what it times (also when the stage throws), picks
 * the path by whether an authorization was sent, and the histogram reaches `GET /metrics` through
 * createMetrics with the buckets and labels the file comment promises.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import {
  PAYMENT_STAGE_BUCKETS,
  PAYMENT_STAGE_METRIC,
  PaymentStageTimings,
} from '../../agent/payment-timings.js';

/** A monotonic clock the test moves by hand, ms. */
function handClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const byKey = (totals: Awaited<ReturnType<PaymentStageTimings['totals']>>) =>
  Object.fromEntries(totals.map((t) => [`${t.stage}/${t.path}`, t]));

describe('PaymentStageTimings', () => {
  it('observes an offline flow: each timed stage once, store summed over its writes, total from the start', async () => {
    const timings = new PaymentStageTimings();
    const hand = handClock();
    const clock = timings.start(hand.now);
    hand.advance(1); // startPayment, not a stage of its own
    await clock.time('pad_display', async () => hand.advance(2));
    await clock.time('card_read', async () => hand.advance(300));
    clock.timeSync('store', () => hand.advance(4));
    clock.timeSync('store', () => hand.advance(3));
    clock.finish(timings);

    const t = byKey(await timings.totals());
    expect(t['pad_display/offline']).toMatchObject({ count: 1, sumSeconds: 0.002 });
    expect(t['card_read/offline']).toMatchObject({ count: 1, sumSeconds: 0.3 });
    expect(t['store/offline']).toMatchObject({ count: 1, sumSeconds: 0.007 });
    expect(t['total/offline']?.count).toBe(1);
    expect(t['total/offline']?.sumSeconds).toBeCloseTo(0.31, 9);
    expect(Object.keys(t).filter((k) => k.endsWith('/online'))).toEqual([]);
    expect(t['authorization/offline']).toBeUndefined();
  });

  it('a flow that sent an authorization is online, and a stage that throws is still timed', async () => {
    const timings = new PaymentStageTimings();
    const hand = handClock();
    const clock = timings.start(hand.now);
    await expect(
      clock.time('authorization', async () => {
        hand.advance(5_000);
        throw new Error('no answer');
      }),
    ).rejects.toThrow('no answer');
    expect(() =>
      clock.timeSync('store', () => {
        hand.advance(2);
        throw new Error('disk');
      }),
    ).toThrow('disk');
    clock.finish(timings);
    const t = byKey(await timings.totals());
    expect(t['authorization/online']).toMatchObject({ count: 1, sumSeconds: 5 });
    expect(t['store/online']).toMatchObject({ count: 1, sumSeconds: 0.002 });
    expect(t['total/online']).toMatchObject({ count: 1, sumSeconds: 5.002 });
  });

  it('drops a negative or non-finite duration instead of observing it', async () => {
    const timings = new PaymentStageTimings();
    timings.observe('store', 'offline', -0.001);
    timings.observe('store', 'offline', Number.NaN);
    timings.observe('store', 'offline', Number.POSITIVE_INFINITY);
    expect(await timings.totals()).toEqual([]);
    timings.observe('store', 'offline', 0);
    expect(await timings.totals()).toEqual([
      { stage: 'store', path: 'offline', count: 1, sumSeconds: 0 },
    ]);
  });

  it('renders as a Prometheus histogram with its buckets; each agent owns its own', async () => {
    const a = new PaymentStageTimings();
    const b = new PaymentStageTimings();
    a.observe('store', 'offline', 0.0007);
    b.observe('store', 'offline', 0.0007);
    b.observe('store', 'offline', 0.0007);
    // agent/metrics.ts registers the histogram as it is into the agent's registry (the wiring
    // through GET /metrics is test/agent/metrics.test.ts).
    const render = async (timings: PaymentStageTimings): Promise<string[]> => {
      const registry = new Registry();
      registry.registerMetric(timings.histogram);
      return (await registry.metrics()).split('\n');
    };
    const lines = await render(a);
    const series = '{stage="store",path="offline"}';
    const bucket = (le: string): string =>
      `${PAYMENT_STAGE_METRIC}_bucket{le="${le}",stage="store",path="offline"}`;
    expect(lines).toContain(`# TYPE ${PAYMENT_STAGE_METRIC} histogram`);
    expect(lines).toContain(`${bucket('0.0005')} 0`);
    expect(lines).toContain(`${bucket('0.001')} 1`);
    expect(lines).toContain(`${bucket('+Inf')} 1`);
    expect(lines).toContain(`${PAYMENT_STAGE_METRIC}_count${series} 1`);
    expect(lines.filter((l) => l.startsWith(`${PAYMENT_STAGE_METRIC}_bucket{`))).toHaveLength(
      PAYMENT_STAGE_BUCKETS.length + 1,
    );
    expect(await render(b)).toContain(`${PAYMENT_STAGE_METRIC}_count${series} 2`);
  });
});
