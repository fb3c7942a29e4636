/**
 * The fleet simulator (issue 16): N terminals in one process, each with its own device identity
 * (Ed25519 key pair, device id, MQTT client id), its own SQLite store and its own MQTT session,
 * running the agent's real store (store-forward/PaymentStore: synchronous=FULL commits, the
 * offline policy, the outbox) and real sync (cloud-sync/SyncWorker + MqttSession with the broker
 * list and failover), not a re-implementation.
 *
 * ```
 *  terminal i: timer (rate) ─► PaymentStore.startPayment/recordCardRead/storeOffline (policy)
 *                               └─► outbox ─► SyncWorker ─► MqttSession(urls) ─► broker cluster
 *                                                    ◄── down/acks (cloud core) ◄──┘
 * ```
 *
 * Payments are taken with the offline policy (`force_offline`: approved locally within the
 * limits, stored, forwarded), as a terminal does while its cloud is away and as every payment's
 * record travels anyway; a payment refused by the policy is counted, not forwarded. The latency
 * measured is payment committed → cloud acknowledgement applied in the store.
 *
 * Card data: a small pool of real card tokens (with sealed card data) made once by the drivers'
 * CardBoundary from the simulator's test cards is shared by all terminals (tweetnacl's box costs
 * about a millisecond; sealing per payment would measure the simulator, not the fleet).
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import { v7 as uuidv7 } from 'uuid';
import { keyId } from '../cloud-sync/envelope.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import { SyncWorker } from '../cloud-sync/sync-worker.js';
import type { CardToken } from '../drivers/boundary/card-token.js';
import type { OfflinePolicy } from '../store-forward/offline-policy.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { approvedCardTokens } from '../simulator/card-tokens.js';

/** Options of {@link startFleet}. Units in the names. */
export interface FleetOptions {
  /** How many terminals. */
  terminals: number;
  /** Broker endpoints (the cluster's nodes) every terminal lists, in order. */
  brokerUrls: readonly string[];
  /**
   * Rotate each terminal's list by its index, so the fleet spreads over the nodes (terminal i
   * starts on node i mod n). Default true.
   */
  spreadOverNodes?: boolean;
  /** Folder for the terminals' stores (one sub-folder each; removed by `stop({ remove })`). */
  dir: string;
  /** Device id prefix; terminal i is `${prefix}-${i}` (zero-padded). Default `fleet`. */
  deviceIdPrefix?: string;
  /** The cloud's Ed25519 public key (downlinks are verified with it). */
  cloudPublicKey: Uint8Array;
  /** The vault's X25519 public key (card data is sealed to it). */
  vaultPublicKey: Uint8Array;
  /** Payments per second per terminal; default 0.05 (one every 20 s). 0 takes none. */
  paymentsPerSecond?: number;
  /** The offline policy of every terminal; default generous limits in EUR. */
  policy?: OfflinePolicy;
  /** Time to wait for a batch's ack before resending, ms; default 5000. */
  ackTimeoutMs?: number;
  /** First reconnect delay (backoff base), ms; default 500. */
  reconnectPeriodMs?: number;
  /** Reconnect backoff cap, ms; default 5000. */
  reconnectMaxMs?: number;
  /** MQTT keep-alive, s; default 5 (the agent's `broker.keepaliveSeconds`). */
  keepaliveSeconds?: number;
  /**
   * How long a PINGREQ waits for its PINGRESP before the link is dropped, ms; default 2000 (the
   * agent's `broker.pingTimeoutMs`).
   */
  pingTimeoutMs?: number;
  /** MQTT username/password (a RabbitMQ user when anonymous logins are off). */
  username?: string;
  password?: string;
  /** Connect the terminals this many at a time (a fleet's start is spread); default 50. */
  connectBatch?: number;
}

/** The figures of one terminal. Times in ms. */
export interface TerminalFigures {
  deviceId: string;
  payments: number;
  refusedByPolicy: number;
  acked: number;
  backlog: number;
  reconnects: number;
  failovers: number;
  /** Records-batch publishes of the sync worker, and how many of them were resends. */
  publishes: number;
  resends: number;
  /** The node in use. */
  endpoint: string;
  online: boolean;
  /** Failover durations (link lost → CONNACK on another node). */
  failoverMs: number[];
}

/** Fleet-wide figures. Times in ms, rates per second. */
export interface FleetFigures {
  terminals: number;
  online: number;
  payments: number;
  refusedByPolicy: number;
  acked: number;
  backlog: number;
  reconnects: number;
  failovers: number;
  /** Records-batch publishes over the fleet, and how many were resends (same batch again). */
  publishes: number;
  resends: number;
  /** Payment committed → cloud ack applied: p50, p99, max, count. */
  ackLatency: { p50: number; p99: number; max: number; count: number };
  /** Failover durations over every terminal: p50, p99, max, count. */
  failover: { p50: number; p99: number; max: number; count: number };
}

/** One simulated terminal. */
interface Terminal {
  deviceId: string;
  devicePublicKey: Uint8Array;
  store: PaymentStore;
  session: MqttSession;
  worker: SyncWorker;
  timer: ReturnType<typeof setTimeout> | undefined;
  payments: number;
  refused: number;
  acked: number;
  reconnects: number;
  failoverMs: number[];
  /** Commit time (performance.now) by idempotency key, until acked. */
  pending: Map<string, number>;
}

/** A running fleet. */
export interface Fleet {
  /** Device id → Ed25519 public key, for registering the devices with the cloud core. */
  readonly devices: ReadonlyMap<string, Uint8Array>;
  /** Every idempotency key taken and approved (stored for forwarding), in order. */
  readonly keys: readonly string[];
  /** Starts taking payments (the rate of the options, each terminal at a random phase). */
  startPayments(): void;
  /** Stops taking payments. */
  stopPayments(): void;
  /** Takes `count` payments on every terminal at once (a backlog built in a loop). */
  burst(count: number): void;
  /** Per terminal. */
  terminals(): TerminalFigures[];
  /** For the whole fleet. */
  figures(): FleetFigures;
  /** Clears the latency and failover samples (between phases of a run). */
  resetSamples(): void;
  /** Stops every terminal (worker, session, store); `remove` deletes the folders. */
  stop(options?: { remove?: boolean }): Promise<void>;
}

const GENEROUS: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 1_000_000 },
  totalLimitMinor: { EUR: Number.MAX_SAFE_INTEGER },
  maxCount: 100_000,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

/** The p-th percentile (0–100) of `values` by nearest rank; 0 when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? 0;
}

function summary(values: readonly number[]): FleetFigures['ackLatency'] {
  return {
    p50: Math.round(percentile(values, 50)),
    p99: Math.round(percentile(values, 99)),
    max: Math.round(values.length === 0 ? 0 : Math.max(...values)),
    count: values.length,
  };
}

/**
 * Starts the fleet: opens every terminal's store, connects its session (in batches of
 * `connectBatch`) and starts its sync worker. Payments start with `startPayments()` or `burst()`.
 *
 * @throws AgentError from a store that cannot be opened (POS2xx); Error for bad options.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  if (!Number.isInteger(options.terminals) || options.terminals < 1)
    throw new Error(`terminals must be a whole number ≥ 1, got ${options.terminals}`);
  if (options.brokerUrls.length === 0) throw new Error('brokerUrls is empty');
  const prefix = options.deviceIdPrefix ?? 'fleet';
  const rate = options.paymentsPerSecond ?? 0.05;
  const policy = options.policy ?? GENEROUS;
  const tokens = approvedCardTokens(
    { tokenKey: nacl.randomBytes(32), vaultPublicKey: options.vaultPublicKey },
    8,
  );
  const cloudKeys = new Map([[keyId(options.cloudPublicKey), options.cloudPublicKey]]);
  const width = String(options.terminals - 1).length;
  const terminals: Terminal[] = [];
  const keys: string[] = [];
  const latencies: number[] = [];
  let sequence = 0;

  for (let i = 0; i < options.terminals; i++) {
    const deviceId = `${prefix}-${String(i).padStart(width, '0')}`;
    const dir = path.join(options.dir, deviceId);
    mkdirSync(dir, { recursive: true });
    const store = PaymentStore.open({ path: path.join(dir, 'agent.db') });
    const device = nacl.sign.keyPair();
    const n = options.brokerUrls.length;
    const shift = options.spreadOverNodes === false ? 0 : i % n;
    const urls = [...options.brokerUrls.slice(shift), ...options.brokerUrls.slice(0, shift)];
    const session = new MqttSession({
      urls,
      clientId: deviceId,
      keepaliveSeconds: options.keepaliveSeconds ?? 5,
      pingTimeoutMs: options.pingTimeoutMs ?? 2000,
      reconnectPeriodMs: options.reconnectPeriodMs ?? 500,
      reconnectMaxMs: options.reconnectMaxMs ?? 5000,
      connectTimeoutMs: 10_000,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    store.releaseInFlight();
    const worker = new SyncWorker({
      session,
      source: store.outbox,
      deviceId,
      signer: { kid: keyId(device.publicKey), secretKey: device.secretKey },
      cloudPublicKeys: cloudKeys,
      ackTimeoutMs: options.ackTimeoutMs ?? 5000,
      maxBackoffMs: Math.max(30_000, options.ackTimeoutMs ?? 5000),
      version: 'fleet-sim',
    });
    const terminal: Terminal = {
      deviceId,
      devicePublicKey: device.publicKey,
      store,
      session,
      worker,
      timer: undefined,
      payments: 0,
      refused: 0,
      acked: 0,
      reconnects: 0,
      failoverMs: [],
      pending: new Map(),
    };
    worker.on('acked', (results) => {
      const now = performance.now();
      for (const r of results) {
        const at = terminal.pending.get(r.key);
        if (at === undefined) continue;
        terminal.pending.delete(r.key);
        terminal.acked += 1;
        latencies.push(now - at);
      }
    });
    session.on('disconnect', ({ loss }) => {
      if (loss !== undefined && loss.reason !== 'ended') terminal.reconnects += 1;
    });
    session.on('failover', ({ downForMs }) => terminal.failoverMs.push(downForMs));
    terminals.push(terminal);
  }

  // Connect in batches: a fleet does not open a thousand TLS/MQTT sessions in one tick.
  const batch = options.connectBatch ?? 50;
  for (let i = 0; i < terminals.length; i += batch) {
    const group = terminals.slice(i, i + batch);
    for (const t of group) {
      t.session.connect();
      t.worker.start();
    }
    await Promise.all(group.map((t) => t.session.whenConnected(60_000).catch(() => undefined)));
  }

  const pay = (t: Terminal): void => {
    const token = tokens[sequence % tokens.length] as CardToken;
    sequence += 1;
    const { sealed, sred: _sred, ...card } = token;
    const key = uuidv7();
    const { payment } = t.store.startPayment({
      idempotencyKey: key,
      amountMinor: 1000 + (sequence % 40), // never ends in 51 (the simulator's decline rule)
      currency: 'EUR',
      offlineMode: 'force_offline',
    });
    t.store.recordCardRead(payment.id, card, sealed === undefined ? {} : { sealed });
    const { decision } = t.store.storeOffline(payment.id, policy, { ambiguous: false });
    t.payments += 1;
    if (!decision.ok) {
      t.refused += 1;
      return;
    }
    keys.push(key);
    t.pending.set(key, performance.now());
    t.worker.notify();
  };

  const schedule = (t: Terminal, firstMs?: number): void => {
    if (rate <= 0) return;
    const mean = 1000 / rate;
    // Exponential gaps (Poisson arrivals) around the mean rate.
    const gap = firstMs ?? -Math.log(1 - Math.random()) * mean;
    t.timer = setTimeout(() => {
      t.timer = undefined;
      pay(t);
      schedule(t);
    }, gap);
  };

  const figuresOf = (t: Terminal): TerminalFigures => {
    const health = t.session.health();
    const sync = t.worker.stats();
    return {
      deviceId: t.deviceId,
      payments: t.payments,
      refusedByPolicy: t.refused,
      acked: t.acked,
      backlog: t.store.queueStats().depth,
      reconnects: t.reconnects,
      failovers: health.failovers,
      publishes: sync.publishes,
      resends: sync.resends,
      endpoint: health.endpoint,
      online: t.worker.online,
      failoverMs: [...t.failoverMs],
    };
  };

  return {
    devices: new Map(terminals.map((t) => [t.deviceId, t.devicePublicKey])),
    keys,
    startPayments() {
      for (const t of terminals) {
        if (t.timer === undefined) schedule(t, Math.random() * (rate > 0 ? 1000 / rate : 0));
      }
    },
    stopPayments() {
      for (const t of terminals) {
        if (t.timer !== undefined) clearTimeout(t.timer);
        t.timer = undefined;
      }
    },
    burst(count) {
      for (let k = 0; k < count; k++) for (const t of terminals) pay(t);
    },
    terminals: () => terminals.map(figuresOf),
    figures() {
      const all = terminals.map(figuresOf);
      const sum = (f: (x: TerminalFigures) => number): number => all.reduce((s, x) => s + f(x), 0);
      return {
        terminals: all.length,
        online: all.filter((x) => x.online).length,
        payments: sum((x) => x.payments),
        refusedByPolicy: sum((x) => x.refusedByPolicy),
        acked: sum((x) => x.acked),
        backlog: sum((x) => x.backlog),
        reconnects: sum((x) => x.reconnects),
        failovers: sum((x) => x.failovers),
        publishes: sum((x) => x.publishes),
        resends: sum((x) => x.resends),
        ackLatency: summary(latencies),
        failover: summary(all.flatMap((x) => x.failoverMs)),
      };
    },
    resetSamples() {
      latencies.length = 0;
      for (const t of terminals) t.failoverMs.length = 0;
    },
    async stop(stopOptions = {}) {
      for (const t of terminals) if (t.timer !== undefined) clearTimeout(t.timer);
      await Promise.all(
        terminals.map(async (t) => {
          t.worker.stop();
          await t.session.end({ force: true }).catch(() => undefined);
          t.store.close();
        }),
      );
      if (stopOptions.remove === true) rmSync(options.dir, { recursive: true, force: true });
    },
  };
}
