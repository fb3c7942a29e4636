/**
 * architecture.md §9 target 2 — draining a backlog: stored payments go store → SyncWorker → broker →
 * cloud core simulator (verifies, opens the sealed card, decides, signs the ack) → ack →
 * marked acked in the store, measured in payments per second; against bare MQTT.js QoS 1
 * publishes with a window of 100 in flight on the same broker, each message as many bytes as
 * one signed record (an `up/records` envelope holding one real record), counted at PUBACK.
 *
 * The clock of the agent run starts when the worker goes online (after CONNECT, like the
 * baseline, which starts after its CONNACK) and stops when the last record is marked acked.
 * Broker and agent share this process, as the baseline shares it with the broker; the cloud core
 * simulator runs in a child process (bench/cloud-child.ts) because a real cloud core is another
 * machine: opening the sealed card data (tweetnacl X25519, about a millisecond per record) in
 * this process would be charged to the agent.
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1); it imports `mqtt`
 * directly for the baseline.
 */
import { fork } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { v7 as uuidv7 } from 'uuid';
import { keyId, signEnvelope } from '../cloud-sync/envelope.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import { RecordsBatchSchema } from '../cloud-sync/schemas.js';
import { SyncWorker } from '../cloud-sync/sync-worker.js';
import type { CloudCoreCounters } from '../simulator/cloud-core.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import type { CloudChildMessage } from './cloud-child.js';
import type { BenchKeys } from './fixtures.js';

/** The cloud core simulator in a child process (bench/cloud-child.ts). */
interface CloudChild {
  counters(): Promise<CloudCoreCounters>;
  stop(): Promise<void>;
}

async function startCloudChild(options: {
  brokerUrl: string;
  clientId: string;
  deviceId: string;
  keys: BenchKeys;
  openSealed: boolean;
}): Promise<CloudChild> {
  const child = fork(new URL('./cloud-child.js', import.meta.url), [], { stdio: 'inherit' });
  const b64 = (key: Uint8Array): string => Buffer.from(key).toString('base64');
  const next = (): Promise<CloudChildMessage> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null): void =>
        reject(new Error(`cloud core child exited with code ${code}`));
      child.once('exit', onExit);
      child.once('message', (message: CloudChildMessage) => {
        child.off('exit', onExit);
        if ('error' in message) reject(new Error(`cloud core child: ${message.error}`));
        else resolve(message);
      });
    });
  const started = next();
  child.send({
    start: {
      brokerUrl: options.brokerUrl,
      clientId: options.clientId,
      deviceId: options.deviceId,
      devicePublicKey: b64(options.keys.device.publicKey),
      cloudSecretKey: b64(options.keys.cloud.secretKey),
      vaultSecretKey: b64(options.keys.vault.secretKey),
      openSealed: options.openSealed,
    },
  } satisfies CloudChildMessage);
  await started;
  return {
    async counters() {
      const answer = next();
      child.send({ counters: true } satisfies CloudChildMessage);
      const message = await answer;
      if (!('counters' in message) || message.counters === true)
        throw new Error('cloud core child answered something else than counters');
      return message.counters;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ stop: true } satisfies CloudChildMessage);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Bytes of one signed `up/records` envelope holding the first pending record of `dbPath`. */
export function signedRecordBytes(dbPath: string, keys: BenchKeys): number {
  const store = PaymentStore.open({ path: dbPath });
  try {
    const [record] = store.nextPending(1);
    if (record === undefined) throw new Error(`${dbPath} holds no pending record`);
    const envelope = signEnvelope(
      { batch: uuidv7(), records: [record] },
      { secretKey: keys.device.secretKey },
      RecordsBatchSchema,
    );
    return envelope.length;
  } finally {
    store.close();
  }
}

/** One baseline run. */
export interface BaselineRun {
  messages: number;
  bytes: number;
  window: number;
  ms: number;
  perSecond: number;
}

/**
 * Publishes `messages` QoS 1 messages of `bytes` bytes with at most `window` awaiting PUBACK.
 *
 * @throws Error when the broker refuses the connection or a publish fails.
 */
export async function bareMqttBaseline(options: {
  url: string;
  messages: number;
  bytes: number;
  window: number;
}): Promise<BaselineRun> {
  const { url, messages, bytes, window } = options;
  const client = await mqtt.connectAsync(url, {
    clientId: `bench-bare-${process.pid}-${uuidv7()}`.slice(0, 60),
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const payload = Buffer.alloc(bytes, 0x61);
  const topic = 'pos/v1/bench-bare/up/records';
  try {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      let sent = 0;
      let done = 0;
      let failed = false;
      const next = (): void => {
        while (!failed && sent < messages && sent - done < window) {
          sent++;
          client.publish(topic, payload, { qos: 1 }, (error) => {
            if (error) {
              failed = true;
              reject(error);
              return;
            }
            done++;
            if (done === messages) resolve();
            else next();
          });
        }
      };
      next();
    });
    const ms = performance.now() - t0;
    return { messages, bytes, window, ms, perSecond: (messages / ms) * 1000 };
  } finally {
    await client.endAsync();
  }
}

/** One agent drain run. */
export interface AgentRun {
  payments: number;
  ms: number;
  perSecond: number;
  batches: number;
  publishes: number;
  resends: number;
  /** Mean records per batch. */
  recordsPerBatch: number;
}

/**
 * Copies the seeded `templatePath` (holding `payments` pending records) into `dir`, then drains
 * it through a real SyncWorker with default sync settings (128 KiB batches, 16 in flight) to a
 * fresh cloud core simulator, and checks every record ended acked, once.
 *
 * @throws Error when the drain does not complete within `timeoutMs` or a record is not acked.
 */
export async function agentDrain(options: {
  url: string;
  templatePath: string;
  payments: number;
  dir: string;
  keys: BenchKeys;
  run: number;
  timeoutMs: number;
  /** Whether the cloud core opens the sealed card data (false: a diagnostic of the agent side). */
  openSealed: boolean;
  /**
   * The sync limits the agent would run with (agent/config.ts `syncLimits`, e.g. the
   * aws-iot-core preset); default: the agent's defaults.
   */
  limits?: { maxMessageBytes: number; maxInFlightBatches: number; maxPublishesPerSecond?: number };
}): Promise<AgentRun> {
  const { url, payments, keys } = options;
  const dbPath = path.join(options.dir, `drain-${options.run}.db`);
  copyFileSync(options.templatePath, dbPath);
  const deviceId = `bench-lane-${process.pid}-${options.run}`;
  const cloud = await startCloudChild({
    brokerUrl: url,
    clientId: `bench-cloud-${process.pid}-${options.run}`,
    deviceId,
    keys,
    openSealed: options.openSealed,
  });
  const store = PaymentStore.open({ path: dbPath });
  const session = new MqttSession({ url, clientId: deviceId, reconnectPeriodMs: 1000 });
  const worker = new SyncWorker({
    session,
    source: store.outbox,
    deviceId,
    signer: { secretKey: keys.device.secretKey },
    cloudPublicKeys: new Map([[keyId(keys.cloud.publicKey), keys.cloud.publicKey]]),
    version: 'bench',
    ...(options.limits ?? {}),
  });
  try {
    let t0 = 0;
    let acked = 0;
    const done = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `drain of ${payments} did not finish in ${options.timeoutMs} ms (${acked} acked)`,
            ),
          ),
        options.timeoutMs,
      );
      worker.on('state', (state) => {
        if (state === 'online' && t0 === 0) t0 = performance.now();
      });
      worker.on('acked', (results) => {
        acked += results.length;
        if (acked >= payments) {
          clearTimeout(timer);
          resolve(performance.now());
        }
      });
    });
    worker.start();
    session.connect();
    const t1 = await done;
    const ms = t1 - t0;
    const stats = store.queueStats();
    if (stats.acked !== payments || stats.depth !== 0 || stats.dead !== 0)
      throw new Error(`after the drain: ${JSON.stringify(stats)}, expected ${payments} acked`);
    const counters = await cloud.counters();
    if (counters.accepted !== payments)
      throw new Error(`cloud accepted ${counters.accepted}, expected ${payments}`);
    const w = worker.stats();
    return {
      payments,
      ms,
      perSecond: (payments / ms) * 1000,
      batches: w.batches,
      publishes: w.publishes,
      resends: w.resends,
      recordsPerBatch: payments / Math.max(1, w.batches),
    };
  } finally {
    await worker.stop({ drainTimeoutMs: 0 });
    await session.end();
    await cloud.stop();
    store.close();
  }
}
