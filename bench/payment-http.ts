/**
 * architecture.md §9 / issue 9 — a payment through the whole local API path, as the POS app sees it:
 * `POST /v1/payments` over HTTP on loopback → PaymentService → the virtual PIN pad (reference
 * message set over the framed link, on `tcp://` through the agent's TCP transport) → card
 * boundary → store (and, online, the MQTT round trip to the cloud core simulator through a real
 * broker) → the answer.
 *
 * - offline (`force_offline`): p50 against a bare better-sqlite3 FULL commit on the same disk,
 *   measured interleaved in the same run (target ≤ 2×);
 * - online through Mosquitto when installed (aedes otherwise) on loopback: p50 ≤ 10 ms (an
 *   absolute target of architecture.md §9, printed with the bare commit beside it).
 *
 * The POS app posts and the virtual PIN pad answers from a worker thread
 * (bench/payment-http-client.ts): on a terminal they are another process and a device, and
 * their work must not run on the agent's event loop. The cloud core
 * simulator runs in a child process (bench/cloud-child.ts), as it is another machine.
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1).
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { v7 as uuidv7 } from 'uuid';
import { startAgent } from '../agent/agent.js';
import { parseConfig } from '../agent/config.js';
import { generateDevelopmentKeys } from '../agent/keys.js';
import { createLogger } from '../agent/logger.js';
import { startCloudChild } from './drain.js';
import { type BareBaseline, openBareBaseline } from './fixtures.js';
import type { PaymentPath, PaymentStage, StageTotal } from '../agent/payment-timings.js';
import type { ClientAnswer, ClientRequest } from './payment-http-client.js';
import { fmt, type Summary, summarize } from './stats.js';

/** Result of {@link benchPaymentHttp}, milliseconds. */
export interface PaymentHttpResult {
  iterations: number;
  offline: Summary;
  online: Summary;
  bareInsert: Summary;
  brokerName: string;
  /**
   * Mean ms per payment of each stage inside the agent over the measured rounds, by path, from
   * the agent's own `pos_agent_payment_stage_seconds` (agent/payment-timings.ts): where the
   * POST's time goes. `total` is the whole flow; the rest of a POST is HTTP and the POS app.
   */
  stages: Record<PaymentPath, Partial<Record<PaymentStage, number>>>;
}

/**
 * Mean ms per payment of each (path, stage) between two readings of the stage histogram; a
 * stage timed in only some payments (a PIN) is averaged over the payments of its path.
 */
export function stageMeans(
  before: readonly StageTotal[],
  after: readonly StageTotal[],
): PaymentHttpResult['stages'] {
  const key = (t: StageTotal): string => `${t.stage}/${t.path}`;
  const earlier = new Map(before.map((t) => [key(t), t]));
  const means: PaymentHttpResult['stages'] = { online: {}, offline: {} };
  const payments = (path: PaymentPath): number => {
    const total = after.find((t) => t.stage === 'total' && t.path === path);
    return (total?.count ?? 0) - (earlier.get(`total/${path}`)?.count ?? 0);
  };
  for (const t of after) {
    const n = payments(t.path);
    if (n <= 0) continue;
    const sum = t.sumSeconds - (earlier.get(key(t))?.sumSeconds ?? 0);
    means[t.path][t.stage] = (sum * 1000) / n;
  }
  return means;
}

/**
 * One line of where a POST's mean time goes, from the agent's stage histogram: each stage inside
 * the agent, the rest of its flow, and what is outside it (HTTP and the POS app), with the bare
 * commit's mean for scale. Milliseconds.
 */
export function stageBreakdown(
  stages: Partial<Record<PaymentStage, number>>,
  postMeanMs: number,
  bareMeanMs: number,
): string {
  const names: [PaymentStage, string][] = [
    ['pad_display', 'pad display'],
    ['card_read', 'card read'],
    ['pin_entry', 'PIN entry'],
    ['authorization', 'authorization'],
    ['store', 'store'],
  ];
  const flow = stages.total ?? 0;
  const parts = names
    .filter(([stage]) => stages[stage] !== undefined)
    .map(([stage, label]) => `${label} ${fmt(stages[stage] ?? 0, 2)}`);
  const inStages = names.reduce((sum, [stage]) => sum + (stages[stage] ?? 0), 0);
  return (
    `mean ${fmt(postMeanMs, 2)} ms = ${parts.join(' + ')} + rest of the flow ${fmt(flow - inStages, 2)}` +
    ` + outside the flow (HTTP, POS app) ${fmt(postMeanMs - flow, 2)};` +
    ` store = ${fmt((stages.store ?? 0) / bareMeanMs, 1)}× the bare commit's mean ${fmt(bareMeanMs, 2)}`
  );
}

/**
 * Runs `warmup + iterations` rounds of (offline payment, online payment, bare commit) in rotating
 * order against one agent started by `startAgent` in `dir`.
 *
 * @throws Error when a payment is not answered 201 with the expected state.
 */
export async function benchPaymentHttp(options: {
  dir: string;
  brokerUrl: string;
  brokerName: string;
  iterations: number;
  warmup: number;
}): Promise<PaymentHttpResult> {
  const { dir } = options;
  const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
  const deviceId = `bench-http-${process.pid}`;
  // The cloud core in its own process, as it is another machine (bench/cloud-child.ts).
  const cloud = await startCloudChild({
    brokerUrl: options.brokerUrl,
    clientId: `bench-http-cloud-${process.pid}`,
    deviceId,
    keys: {
      devicePublicKey: terminal.devicePublicKey,
      cloudSecretKey: cloudKeys.cloudSecretKey,
      vaultSecretKey: cloudKeys.vaultSecretKey,
    },
    openSealed: true,
  });
  // The POS app and the PIN pad: another thread, as they are another process and a device.
  const client = new Worker(new URL('./payment-http-client.js', import.meta.url));
  // One request at a time: the next answer is this request's.
  let pending: { resolve: (a: ClientAnswer) => void; reject: (e: Error) => void } | undefined;
  client.on('message', (answer: ClientAnswer) => pending?.resolve(answer));
  client.on('error', (error: Error) => pending?.reject(error));
  const ask = (request: ClientRequest): Promise<ClientAnswer> =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
      client.postMessage(request);
    });
  const padAnswer = await ask({ kind: 'start-pad' });
  if (padAnswer.kind !== 'pad') throw new Error('the PIN pad worker did not start its pad');
  const config = parseConfig({
    deviceId,
    dataDir: path.join(dir, 'data'),
    keysDir: path.join(dir, 'keys'),
    pinPad: { path: padAnswer.url },
    broker: { url: options.brokerUrl, reconnectPeriodMs: 100, development: true },
    api: { port: 0 },
    offline: {
      perTransactionLimitMinor: { EUR: 1_000_000 },
      totalLimitMinor: { EUR: 1_000_000_000 },
      maxCount: 100_000,
    },
    log: { level: 'silent' },
  });
  const agent = await startAgent({
    config,
    keys: terminal,
    logger: createLogger({ level: 'silent' }),
  });
  let bare: BareBaseline | undefined;
  try {
    bare = openBareBaseline(path.join(dir, 'bare.db'));
    const baseline = bare;
    const start = Date.now();
    while (!agent.worker.online) {
      if (Date.now() - start > 20_000) throw new Error('agent not online in 20 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await ask({ kind: 'api', apiUrl: agent.apiUrl, apiToken: agent.apiToken });
    const pay = async (
      offline: 'force_offline' | 'prefer_online',
      expected: string,
    ): Promise<number> => {
      const answer = await ask({
        kind: 'pay',
        idempotencyKey: uuidv7(),
        body: { amount: 1000, currency: 'EUR', offline },
      });
      if (answer.kind !== 'paid') throw new Error(`the POS app worker answered ${answer.kind}`);
      if (answer.status !== 201 || answer.state !== expected) {
        throw new Error(`payment answered ${answer.status} ${answer.text.slice(0, 200)}`);
      }
      return answer.ms;
    };
    const offline: number[] = [];
    const online: number[] = [];
    const inserted: number[] = [];
    const steps = [
      async () => void offline.push(await pay('force_offline', 'stored')),
      async () => void online.push(await pay('prefer_online', 'approved')),
      async () => {
        const t0 = performance.now();
        baseline.insert();
        inserted.push(performance.now() - t0);
      },
    ];
    const total = options.warmup + options.iterations;
    let stagesBefore: StageTotal[] = [];
    for (let i = 0; i < total; i++) {
      if (i === options.warmup) stagesBefore = await agent.payments.stageTimings.totals();
      for (let k = 0; k < steps.length; k++)
        await (steps[(i + k) % steps.length] as () => Promise<void>)();
      if (i < options.warmup) {
        offline.pop();
        online.pop();
        inserted.pop();
      }
    }
    return {
      iterations: options.iterations,
      offline: summarize(offline),
      online: summarize(online),
      bareInsert: summarize(inserted),
      brokerName: options.brokerName,
      stages: stageMeans(stagesBefore, await agent.payments.stageTimings.totals()),
    };
  } finally {
    bare?.close();
    await agent.stop();
    await ask({ kind: 'stop' });
    await client.terminate();
    await cloud.stop();
  }
}
