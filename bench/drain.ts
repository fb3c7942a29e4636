/**
 * architecture.md §9 target 2 — draining a backlog through the running agent: a whole agent
 * (`startAgent`, as `pos-agent run` starts it) on a store that holds a backlog (seeded while no
 * broker was reachable), its sync worker → broker → cloud core simulator (verifies, opens the
 * sealed card, decides, signs the ack) → ack → marked acked in the store, measured in payments
 * per second; against bare MQTT.js QoS 1 publishes with a window of 100 in flight on the same
 * broker, each message as many bytes as one signed record (an `up/records` envelope holding one
 * real record), counted at PUBACK.
 *
 * The clock of the agent run starts when the agent's worker goes online (after its CONNACK, like
 * the baseline, which starts after its CONNACK; the cloud core is subscribed before the agent
 * starts) and stops when the last record is marked acked. Broker and agent share this process,
 * as the baseline shares it with the broker; the cloud core simulator runs in a child process
 * (bench/cloud-child.ts) because a real cloud core is another machine: opening the sealed card
 * data (tweetnacl X25519, about a millisecond per record) in this process would be charged to
 * the agent. The child's CPU time is reported apart.
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1); it imports `mqtt`
 * directly for the baseline.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { destination as pinoDestination, pino } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { startAgent } from '../agent/agent.js';
import { parseConfig } from '../agent/config.js';
import { signEnvelope } from '../cloud-sync/envelope.js';
import { RecordsBatchSchema } from '../cloud-sync/schemas.js';
import type { CloudCoreCounters } from '../simulator/cloud-core.js';
import { freePort } from '../simulator/free-port.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import type { CloudChildFinal, CloudChildMessage } from './cloud-child.js';
import { copyDurably, type BenchKeys } from './fixtures.js';

/** An event loop's busy (`active`) and `idle` time, ms, as `eventLoopUtilization()` counts them. */
export interface LoopTime {
  active: number;
  idle: number;
}

/** Busy share (0–1) of an event loop between two readings. */
export function busyShare(from: LoopTime, to: LoopTime): number {
  const active = to.active - from.active;
  const idle = to.idle - from.idle;
  return active + idle > 0 ? active / (active + idle) : 0;
}

/** The cloud core simulator in a child process (bench/cloud-child.ts). */
export interface CloudChild {
  /**
   * The core's counters, the child's CPU time (user + system) since it started, ms, and its
   * event loop's busy and idle time since it started, ms (`performance.eventLoopUtilization`).
   */
  counters(): Promise<{ counters: CloudCoreCounters; cpuMs: number; loop: LoopTime }>;
  /**
   * Stops the core and the child (SIGKILL after 15 s); resolves with the final counters, read
   * after the core stopped, or undefined when the child had already exited.
   */
  stop(): Promise<CloudChildFinal | undefined>;
}

/**
 * Starts the cloud core simulator in a child process (bench/cloud-child.ts), connected to
 * `brokerUrl` and subscribed, with `deviceId` registered: the drain rows and the HTTP bench's
 * online payments run against it, so its CPU is not charged to the agent's process. With
 * `BENCH_CHILD_PROF=DIR` in the environment the child writes a V8 CPU profile into DIR.
 *
 * @throws Error when the child fails to start or exits.
 */
export async function startCloudChild(options: {
  brokerUrl: string;
  clientId: string;
  deviceId: string;
  /** The device's Ed25519 public key, the cloud's Ed25519 secret key, the vault's X25519 one. */
  keys: { devicePublicKey: Uint8Array; cloudSecretKey: Uint8Array; vaultSecretKey: Uint8Array };
  openSealed: boolean;
  /** More devices to register, with their Ed25519 public keys (the fleet bench). */
  devices?: ReadonlyMap<string, Uint8Array>;
  /** The broker cluster's MQTT nodes. */
  brokerUrls?: readonly string[];
  /** AMQP mode: one of the competing consumers of `queue` (CloudCoreOptions.amqp). */
  amqp?: { url: string; urls: readonly string[]; queue: string; prefetch: number };
  /** The ledger file the instances share. */
  ledgerFile?: string;
}): Promise<CloudChild> {
  // BENCH_CHILD_PROF=DIR: the child also writes a V8 CPU profile (`--cpu-prof`) into DIR, where
  // the cloud core's time per record goes.
  const profileDir = process.env.BENCH_CHILD_PROF;
  const child = fork(new URL('./cloud-child.js', import.meta.url), [], {
    stdio: 'inherit',
    execArgv:
      profileDir === undefined || profileDir === ''
        ? []
        : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
  });
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
  const started = next().catch((error: unknown) => {
    // Not started: do not leave the child running.
    child.kill('SIGKILL');
    throw error;
  });
  child.send({
    start: {
      brokerUrl: options.brokerUrl,
      clientId: options.clientId,
      deviceId: options.deviceId,
      devicePublicKey: b64(options.keys.devicePublicKey),
      cloudSecretKey: b64(options.keys.cloudSecretKey),
      vaultSecretKey: b64(options.keys.vaultSecretKey),
      openSealed: options.openSealed,
      ...(options.devices === undefined
        ? {}
        : { devices: [...options.devices].map(([id, key]): [string, string] => [id, b64(key)]) }),
      ...(options.brokerUrls === undefined ? {} : { brokerUrls: [...options.brokerUrls] }),
      ...(options.amqp === undefined
        ? {}
        : { amqp: { ...options.amqp, urls: [...options.amqp.urls] } }),
      ...(options.ledgerFile === undefined ? {} : { ledgerFile: options.ledgerFile }),
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
      return { counters: message.counters, cpuMs: message.cpuMs, loop: message.loop };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected)
        return undefined;
      let last: CloudChildFinal | undefined;
      child.on('message', (message: CloudChildMessage) => {
        if ('counters' in message && message.counters !== true)
          last = {
            counters: message.counters,
            cpuMs: message.cpuMs,
            amqp: message.amqp,
            unsettled: message.unsettled,
          };
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ stop: true } satisfies CloudChildMessage);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      return last;
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
  /** Commits of acks (`applyAcks` calls): fewer than batches when acks share a commit. */
  ackCommits: number;
  /** Mean records per batch. */
  recordsPerBatch: number;
  /** Wall time of `startAgent` on the seeded store (before the clock of the drain starts), ms. */
  startMs: number;
  /**
   * CPU time (user + system) of this process during the drain, ms: the agent, and on aedes the
   * broker too (it shares the process); Mosquitto's and the cloud core's are not in it.
   */
  processCpuMs: number;
  /** The system (kernel) part of {@link processCpuMs}: socket and file writes, fsync, ms. */
  processSystemMs: number;
  /** CPU time (user + system) of the cloud core simulator's child process during the run, ms. */
  cloudCpuMs: number;
  /**
   * Share of the drain's wall time the agent's event loop was busy running code (0–1, Node's
   * `performance.eventLoopUtilization`): near 1, the drain is bound by the agent's own work
   * (CPU, or fsync inside a commit); well below 1, the agent waits on the broker or the cloud.
   */
  agentBusy: number;
  /** The same for the cloud core's child process (0–1). */
  cloudBusy: number;
}

/**
 * Copies the seeded `templatePath` (holding `payments` pending records) into a fresh data
 * directory under `dir` — the backlog a terminal stores while its link is down — and starts a
 * whole agent on it with `startAgent` (agent/agent.ts: the start-up checks, MQTT session, sync
 * worker, PIN pad attempt and local API the agent runs), its broker link pointed at `url`, where
 * the cloud core simulator (a child process) already listens, after a first broker node that is
 * unreachable. The clock runs from the moment the agent's sync worker is online — the first
 * moment the cloud can answer it — until the last record is acked; then every record must be
 * acked once and the outbox empty.
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
   * The agent's `sync` config section (agent/config-sync.ts), e.g. `{ brokerLimits:
   * 'aws-iot-core' }`; default: the agent's defaults (128 KiB batches, 16 in flight).
   */
  sync?: Record<string, unknown>;
  /** More of the agent's `broker` config section, e.g. `{ keepaliveSeconds: 600 }` under valgrind. */
  broker?: Record<string, unknown>;
}): Promise<AgentRun> {
  const dataDir = path.join(options.dir, `drain-${options.run}`);
  mkdirSync(dataDir, { recursive: true });
  copyDurably(options.templatePath, path.join(dataDir, 'agent.db'));
  const deviceId = `bench-lane-${process.pid}-${options.run}`;
  const cloud = await startCloudChild({
    brokerUrl: options.url,
    clientId: `bench-cloud-${process.pid}-${options.run}`,
    deviceId,
    keys: {
      devicePublicKey: options.keys.device.publicKey,
      cloudSecretKey: options.keys.cloud.secretKey,
      vaultSecretKey: options.keys.vault.secretKey,
    },
    openSealed: options.openSealed,
  });
  try {
    return await drainThroughAgent(options, deviceId, dataDir, cloud);
  } finally {
    await cloud.stop();
  }
}

async function drainThroughAgent(
  options: Parameters<typeof agentDrain>[0],
  deviceId: string,
  dataDir: string,
  cloud: CloudChild,
): Promise<AgentRun> {
  const { url, payments, keys } = options;
  // The agent logs at info, as it runs by default (one line per acknowledged record), to a sink
  // that costs what a file costs: a synchronous write(2) per line.
  const logger = pino({ level: 'info' }, pinoDestination({ dest: '/dev/null', sync: true }));
  const config = parseConfig({
    deviceId,
    dataDir,
    keysDir: path.join(dataDir, 'keys'),
    pinPad: { path: `tcp://127.0.0.1:${await freePort()}` },
    // The first broker node is unreachable, as a store's link is while the backlog grows: the
    // agent starts, fails to connect, and reaches `url` on its failover attempt a backoff later,
    // after startAgent has resolved and the clock is armed.
    broker: {
      urls: [`mqtt://127.0.0.1:${await freePort()}`, url],
      reconnectPeriodMs: 300,
      development: true,
      ...options.broker,
    },
    api: { port: 0 },
    log: { level: 'info' },
    ...(options.sync === undefined ? {} : { sync: options.sync }),
  });
  let acked = 0;
  let finished: (() => void) | undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const s0 = performance.now();
  const agent = await startAgent({
    config,
    keys: {
      deviceSecretKey: keys.device.secretKey,
      devicePublicKey: keys.device.publicKey,
      tokenKey: keys.tokenKey,
      vaultPublicKey: keys.vault.publicKey,
      cloudPublicKey: keys.cloud.publicKey,
      apiToken: randomBytes(32).toString('base64url'),
    },
    logger,
  });
  const startMs = performance.now() - s0;
  try {
    if (agent.worker.online)
      throw new Error('the agent was online before the clock started: raise reconnectPeriodMs');
    let t0 = 0;
    let cpu0 = process.cpuUsage();
    let loop0 = performance.eventLoopUtilization();
    let cloudLoop0: Promise<LoopTime> | undefined;
    agent.worker.on('state', (state) => {
      if (state === 'online' && t0 === 0) {
        t0 = performance.now();
        cpu0 = process.cpuUsage();
        loop0 = performance.eventLoopUtilization();
        cloudLoop0 = cloud.counters().then((c) => c.loop);
      }
    });
    agent.worker.on('acked', (results) => {
      acked += results.length;
      if (acked >= payments) finished?.();
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `drain of ${payments} did not finish in ${options.timeoutMs} ms (${acked} acked)`,
            ),
          ),
        options.timeoutMs,
      );
    });
    await Promise.race([done, timeout]).finally(() => clearTimeout(timer));
    const t1 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const loop = performance.eventLoopUtilization(loop0);
    const ms = t1 - t0;
    const stats = agent.store.queueStats();
    if (stats.acked !== payments || stats.depth !== 0 || stats.dead !== 0)
      throw new Error(`after the drain: ${JSON.stringify(stats)}, expected ${payments} acked`);
    const { counters, cpuMs: cloudCpuMs, loop: cloudLoop } = await cloud.counters();
    if (counters.accepted !== payments)
      throw new Error(`cloud accepted ${counters.accepted}, expected ${payments}`);
    const w = agent.worker.stats();
    return {
      payments,
      ms,
      perSecond: (payments / ms) * 1000,
      batches: w.batches,
      publishes: w.publishes,
      resends: w.resends,
      ackCommits: w.ackCommits,
      recordsPerBatch: payments / Math.max(1, w.batches),
      startMs,
      processCpuMs: (cpu.user + cpu.system) / 1000,
      processSystemMs: cpu.system / 1000,
      cloudCpuMs,
      agentBusy: loop.utilization,
      cloudBusy: cloudLoop0 === undefined ? 0 : busyShare(await cloudLoop0, cloudLoop),
    };
  } finally {
    await agent.stop();
  }
}
