/**
 * The sync worker: drains the SQLite outbox to the cloud core over MQTT (architecture.md §5).
 *
 * This file is the I/O shell. Beside it, each with one job (issue 15):
 * - batch-window.ts — the pure batch-window machine: what to publish, resend, read, apply;
 * - pack.ts — packing records into one signed, size-bounded batch;
 * - authorization.ts — online authorization requests and their responses;
 * - commands.ts — the cloud command guard;
 * - status.ts — the retained, signed status.
 *
 * ```
 *  OutboxSource ──nextPending(after cursor)──▶ pack (≤ maxMessageBytes, seq order) ──▶ window
 *        ▲                                                      (in memory)           │
 *        │ applyAcks, one set per flush (acked / dead)             PUBLISH QoS 1 up/records
 *        │                                                                            ▼
 *   signed Acks ◀──────────── down/acks ◀──────────────── cloud core (dedupes by key)
 * ```
 *
 * Rules, and why:
 * - A PUBACK only means the broker took the batch; a record is done only when the cloud's signed
 *   `Acks` for its key arrives (architecture.md §5). Acks are verified with the pinned cloud key; a bad one
 *   is refused, counted, logged, and never applied.
 * - At most `maxInFlightBatches` batches wait for acks. A batch not acked within `ackTimeoutMs` is
 *   published again (same batch id, same records) after an exponential backoff with jitter
 *   ({@link resendDelayMs}); the cloud dedupes by idempotency key, so a resend is harmless.
 * - Nothing is published while disconnected (the session refuses rather than queueing); on every
 *   CONNACK all in-flight batches are published again, oldest first.
 * - Draining is woken by `notify()`, CONNACK and acks, and also by a poll every `pollIntervalMs`
 *   while connected: a record made pending behind the worker's back (`queue --retry` run by
 *   another process) is sent within one interval, not at the next payment or reconnect.
 * - Records are packed in `seq` order and a batch never skips a record to fit a later one, so the
 *   cloud sees each device's records in order (MQTT 3.1.1 §4.6 keeps one client's QoS 1 messages
 *   on a topic in order; only resends can arrive late, and the cloud dedupes those).
 * - Records the cloud could never accept are refused locally and go to `dead` through
 *   `applyAcks` (nothing is dropped silently, architecture.md §4): a record over `maxMessageBytes` on its
 *   own (POS314), or one that fails the wire schema (POS313). Unknown extra keys of a record are
 *   stripped before validation (field names logged, never values), so a store that returns more
 *   columns than the contract cannot leak them onto the wire, nor kill the queue.
 * - An `Acks` that names a batch not in flight (a duplicate or late ack, or one for a batch sent
 *   before a restart) is counted and ignored: its records are still pending/in flight and will be
 *   answered `duplicate` when sent again. Each key is applied to the source exactly once.
 */
import { EventEmitter } from 'node:events';
import { v7 as uuidv7 } from 'uuid';
import type { AgentError } from '../common/agent-error.js';
import { isAgentError } from '../common/agent-error.js';
import { type Clock, type TimerHandle, systemClock } from '../common/clock.js';
import { Authorizations } from './authorization.js';
import { BatchWindow, type ResendPolicy, type WindowStep } from './batch-window.js';
import { CommandGuard, checkDownlinkSize, openCommand, type SeenCommandStore } from './commands.js';
import {
  type EnvelopeSigner,
  type PublicKeyLookup,
  openEnvelope,
  signerKeyId,
} from './envelope.js';
import { syncError } from './errors.js';
import type { MqttSession } from './mqtt-session.js';
import { DEFAULT_MAX_MESSAGE_BYTES, nextFetchLimit, packBatch } from './pack.js';
import {
  type AckResult,
  AcksSchema,
  type AuthRequest,
  type AuthResponse,
  AuthResponseSchema,
  type Command,
  DEFAULT_TOPIC_PREFIX,
  type DeviceTopics,
  type UplinkRecord,
  topics,
} from './schemas.js';
import { StatusReporter } from './status.js';

/**
 * The outbox as the sync worker sees it; implemented by the agent's `SqliteOutbox`
 * (store-forward/outbox.ts) and by the test fakes, which all run one conformance suite
 * (test/cloud-sync/outbox-contract.ts). All methods are synchronous (better-sqlite3).
 *
 * "In flight" is the worker's memory, not the outbox's state (architecture.md §4): publishing writes
 * nothing; the worker asks for the records after the highest `seq` it holds, and after a restart
 * everything still pending is sent again (the cloud dedupes by key).
 */
export interface OutboxSource {
  /**
   * Up to `limit` records in state `pending` with `seq > afterSeq`, in ascending `seq` order:
   * payment and void records, and batch records (issue 17), all handled alike.
   */
  nextPending(limit: number, afterSeq?: number): UplinkRecord[];
  /**
   * Applies acknowledgements as one set: accepted/duplicate → acked (with the outcome); rejected
   * → dead with code and reason. `batches` names the batches they came in.
   */
  applyAcks(results: AckResult[], batches?: string[]): unknown;
  /** Queue depth (not yet acked), oldest unacked record time, dead count; for the status topic. */
  queueStats(): { depth: number; oldestAt: string | null; dead: number };
  /**
   * True when the source checked every record against the wire rules when it created it, so the
   * worker need not validate each record again on every send (the SQLite outbox). Otherwise each
   * record is stripped to the contract's keys and validated by the wire schema before it is sent.
   */
  readonly validatesRecords?: boolean;
}

/** Structured logger (pino-compatible: fields first, message second). */
export interface SyncLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const silentLogger: SyncLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Options of {@link SyncWorker}. Units in the names; defaults in `@default`. */
export interface SyncWorkerOptions {
  /** The MQTT session (not yet connected or connected); the worker sets its last will. */
  session: MqttSession;
  /** The outbox. */
  source: OutboxSource;
  /** `{d}`, also the MQTT client id. */
  deviceId: string;
  /** `{p}`. @default 'pos/v1' */
  topicPrefix?: string;
  /** The device's Ed25519 key that signs uplinks. */
  signer: EnvelopeSigner;
  /** The cloud's pinned public key(s) that sign downlinks. */
  cloudPublicKeys: PublicKeyLookup;
  /** Agent version for the status topic. */
  version: string;
  /**
   * Largest payload in bytes (≥ 1024), uplink and downlink: a larger downlink is refused unread
   * (POS314). @default 131072 (AWS IoT Core limit)
   */
  maxMessageBytes?: number;
  /** Longest lifetime of a cloud command, ms (≥ 1000; POS327 beyond). @default 86400000 (24 h) */
  maxCommandLifetimeMs?: number;
  /** Batches awaiting acks at once (≥ 1). @default 16 */
  maxInFlightBatches?: number;
  /** Records per batch at most (≥ 1). @default 1000 */
  maxRecordsPerBatch?: number;
  /** Cap on batch publishes per second (new and resends); undefined = no cap. */
  maxPublishesPerSecond?: number;
  /** First ack timeout, ms (≥ 1). @default 10000 */
  ackTimeoutMs?: number;
  /** Backoff growth per attempt (≥ 1). @default 2 */
  backoffFactor?: number;
  /** Cap on the backoff before jitter, ms. @default 300000 */
  maxBackoffMs?: number;
  /** Jitter fraction 0–1. @default 0.2 */
  jitterRatio?: number;
  /** Least time between two status publishes on queue changes, ms. @default 1000 */
  statusThrottleMs?: number;
  /** How long `stop()` waits for in-flight batches to be acked, ms. @default 5000 */
  drainTimeoutMs?: number;
  /**
   * While started and connected, the outbox is polled every this many ms (≥ 100), so records
   * made pending without a `notify()` (`pos-agent queue --retry` from another process, a dead
   * record requeued) are sent without waiting for the next payment or reconnect. @default 5000
   */
  pollIntervalMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Uniform [0,1) source for the jitter. @default Math.random */
  random?: () => number;
  /** Batch id factory. @default uuid v7 */
  newBatchId?: () => string;
  /** @default silent */
  logger?: SyncLogger;
}

/** Counters of a {@link SyncWorker}, for `/metrics` and tests. */
export interface SyncWorkerStats {
  /** Batch publishes (first sends and resends). */
  publishes: number;
  /** Of which resends (timeout or reconnect). */
  resends: number;
  /** PUBACKs received for batches. */
  pubacks: number;
  /** Distinct batches created. */
  batches: number;
  /** Ack results applied to the source. */
  acksApplied: number;
  /** Records refused locally (schema, size) and applied as rejected. */
  refusedLocally: number;
  /** Downlinks refused (bad envelope, signature, key id, schema, expired/replayed command). */
  rejectedDownlinks: number;
  /** Acks naming a batch not in flight (duplicate/late), ignored. */
  unknownBatchAcks: number;
  /** Batches in flight now. */
  inFlightBatches: number;
  /** Highest number of batches in flight seen. */
  maxInFlightSeen: number;
}

/** Events of {@link SyncWorker}. */
export interface SyncWorkerEvents {
  /** The cloud acknowledged these records (already applied to the source). */
  acked: [results: AckResult[], batchId: string];
  /** Records refused locally and applied as rejected (dead). */
  refused: [results: AckResult[]];
  /** The broker PUBACKed a batch publish. */
  'batch-sent': [info: { batchId: string; records: number; bytes: number; attempt: number }];
  /** A downlink was refused (never applied). */
  'rejected-downlink': [info: { topic: string; error: AgentError }];
  /** The link state changed. */
  state: [state: 'online' | 'offline'];
  /** A verified, fresh, first-seen cloud command. */
  command: [command: Command];
}

function positive(name: string, value: number, min: number, unit: string): number {
  if (!Number.isFinite(value) || value < min) {
    throw syncError(
      'POS330',
      `Sync option ${name} is ${value}${unit}, must be a number ≥ ${min}${unit}: fix the sync section of the config`,
    );
  }
  return value;
}

/**
 * Drains an {@link OutboxSource} to the cloud core over an {@link MqttSession}; see the file
 * header for the rules. The decisions (which batch to publish or resend, when to read the
 * outbox, which acks to apply) are the pure {@link BatchWindow}'s; this class does the I/O.
 *
 * Lifecycle: `new SyncWorker(options)` (sets the session's will) → `start()` (subscribes, starts
 * draining whenever connected) → `notify()` on every new outbox record → `stop()`. The caller
 * owns the session (`connect()` before or after `start()`, `end()` after `stop()`).
 *
 * @throws AgentError POS330 from the constructor for an invalid option; POS304 for a bad device
 *   id or prefix.
 */
export class SyncWorker extends EventEmitter<SyncWorkerEvents> {
  readonly topics: DeviceTopics;
  #o: {
    maxMessageBytes: number;
    maxRecordsPerBatch: number;
    drainTimeoutMs: number;
    pollIntervalMs: number;
    policy: ResendPolicy;
  };
  #session: MqttSession;
  #source: OutboxSource;
  #signer: EnvelopeSigner;
  #cloudKeys: PublicKeyLookup;
  #clock: Clock;
  #newBatchId: () => string;
  #log: SyncLogger;
  #commands: CommandGuard;
  #window: BatchWindow<{ payload: Buffer; records: number }>;
  #auths: Authorizations;
  #status: StatusReporter;
  #running = false;
  #stopping = false;
  #online = false;
  #pumpQueued = false;
  /** The one timer for the window: the earliest resend, the rate cap, or a retry after an error. */
  #wakeTimer: TimerHandle | undefined;
  #wakeAt = Number.POSITIVE_INFINITY;
  #pollTimer: TimerHandle | undefined;
  #drainWaiters = new Set<() => void>();
  #warnedStripped = false;
  /** `nextPending` limit, adapted per batch by {@link nextFetchLimit}. */
  #fetchLimit = 0;
  /** Verified acks waiting for the one commit they share (see {@link #flushAcks}). */
  #ackQueue: { batch: string; results: AckResult[] }[] = [];
  #ackFlushQueued = false;
  #stats: SyncWorkerStats = {
    publishes: 0,
    resends: 0,
    pubacks: 0,
    batches: 0,
    acksApplied: 0,
    refusedLocally: 0,
    rejectedDownlinks: 0,
    unknownBatchAcks: 0,
    inFlightBatches: 0,
    maxInFlightSeen: 0,
  };
  #onConnect = (): void => this.#handleConnect();
  #onDisconnect = (): void => this.#handleDisconnect();
  #onMessage = (topic: string, payload: Buffer): void => this.#handleMessage(topic, payload);
  #onStatusError = (error: unknown): void =>
    this.#log.debug({ err: error }, 'status not published');

  constructor(options: SyncWorkerOptions) {
    super();
    this.topics = topics(options.topicPrefix ?? DEFAULT_TOPIC_PREFIX, options.deviceId);
    const ackTimeoutMs = positive('ackTimeoutMs', options.ackTimeoutMs ?? 10_000, 1, ' ms');
    const jitterRatio = options.jitterRatio ?? 0.2;
    if (!(jitterRatio >= 0 && jitterRatio <= 1)) {
      throw syncError('POS330', `Sync option jitterRatio is ${jitterRatio}, must be within 0–1`);
    }
    const maxInFlightBatches = Math.floor(
      positive('maxInFlightBatches', options.maxInFlightBatches ?? 16, 1, ''),
    );
    const maxPublishesPerSecond =
      options.maxPublishesPerSecond === undefined
        ? undefined
        : positive('maxPublishesPerSecond', options.maxPublishesPerSecond, 0.001, '/s');
    this.#o = {
      maxMessageBytes: positive(
        'maxMessageBytes',
        options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
        1024,
        ' bytes',
      ),
      maxRecordsPerBatch: Math.floor(
        positive('maxRecordsPerBatch', options.maxRecordsPerBatch ?? 1000, 1, ''),
      ),
      drainTimeoutMs: options.drainTimeoutMs ?? 5000,
      pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs ?? 5000, 100, ' ms'),
      policy: {
        ackTimeoutMs,
        backoffFactor: positive('backoffFactor', options.backoffFactor ?? 2, 1, ''),
        maxBackoffMs: positive(
          'maxBackoffMs',
          options.maxBackoffMs ?? Math.max(300_000, ackTimeoutMs),
          ackTimeoutMs,
          ' ms',
        ),
        jitterRatio,
      },
    };
    this.#session = options.session;
    this.#source = options.source;
    this.#signer = { ...options.signer, kid: signerKeyId(options.signer) };
    this.#cloudKeys = options.cloudPublicKeys;
    this.#clock = options.clock ?? systemClock;
    this.#newBatchId = options.newBatchId ?? (() => uuidv7());
    this.#log = options.logger ?? silentLogger;
    this.#commands = new CommandGuard({
      clock: this.#clock,
      deviceId: options.deviceId,
      ...(options.maxCommandLifetimeMs === undefined
        ? {}
        : { maxLifetimeMs: options.maxCommandLifetimeMs }),
    });
    this.#window = new BatchWindow({
      maxInFlight: maxInFlightBatches,
      maxPublishesPerSecond,
      policy: this.#o.policy,
      random: options.random ?? Math.random,
      now: this.#clock.now(),
    });
    const session = this.#session;
    this.#auths = new Authorizations(this.#clock, {
      get connected() {
        return session.connected;
      },
      publish: (payload) => session.publish(this.topics.auth, payload, { qos: 1 }),
    });
    this.#status = new StatusReporter({
      clock: this.#clock,
      version: options.version,
      signer: () => this.#signer,
      queueStats: () => this.#source.queueStats(),
      canPublish: () => this.#session.connected && this.#running,
      publish: (payload) =>
        this.#session.publish(this.topics.status, payload, { qos: 1, retain: true }),
      throttleMs: options.statusThrottleMs ?? 1000,
    });
    // The broker publishes this retained, signed offline status if the link dies (MQTT 3.1.1
    // §3.1.2.5); evaluated before every connect, so its timestamp and stats are fresh.
    this.#session.setWill(() => ({
      topic: this.topics.status,
      payload: this.#status.payload('offline'),
      qos: 1,
      retain: true,
    }));
  }

  /**
   * Replaces the key that signs uplinks from the next message on (device key rotation by cloud
   * command, issue 5). Batches already in flight keep their old signature when resent, so the
   * cloud accepts both key ids until those are acknowledged.
   *
   * @throws AgentError POS315 for a secret key that is not 64 bytes.
   */
  setSigner(signer: EnvelopeSigner): void {
    this.#signer = { ...signer, kid: signerKeyId(signer) };
  }

  /**
   * Persists the ids of accepted cloud commands in `store` (and refuses the ids it holds as
   * replays, POS321), so a command is applied once across restarts too.
   *
   * @throws whatever `store.load()`/`store.save()` throws; the guard then stays memory-only.
   */
  useSeenCommandStore(store: SeenCommandStore): void {
    this.#commands.useStore(store);
  }

  /** Subscribes the downlinks and starts draining whenever the session is connected. Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopping = false;
    this.#session.on('connect', this.#onConnect);
    this.#session.on('disconnect', this.#onDisconnect);
    this.#session.on('message', this.#onMessage);
    this.#session
      .subscribe([this.topics.acks, this.topics.authResponse, this.topics.commands])
      .catch((error: unknown) =>
        this.#log.error(
          { err: error },
          'cannot subscribe the downlink topics; retried on reconnect',
        ),
      );
    if (this.#session.connected) this.#handleConnect();
  }

  /** Wakes the worker: a new record was committed to the outbox. Cheap; coalesced. */
  notify(): void {
    this.#schedulePump();
    this.#scheduleStatus();
  }

  /** Counters (a copy). */
  stats(): SyncWorkerStats {
    return { ...this.#stats, inFlightBatches: this.#window.inFlight };
  }

  /** True while connected and started. */
  get online(): boolean {
    return this.#online;
  }

  /**
   * Online authorization (architecture.md §5): publishes a signed `AuthRequest` on `up/auth` and
   * waits for the `AuthResponse` with the same key on `down/auth` (cloud-sync/authorization.ts).
   *
   * A timeout is ambiguous (the cloud may have approved): the caller stores the payment under the
   * offline policy or declines it; the same idempotency key reaches the cloud later anyway.
   *
   * @param timeoutMs — default 15000.
   * @throws AgentError POS325 not connected: nothing was sent, the cloud cannot have seen the
   *   request (not ambiguous: go offline without a void record); POS302 the connection closed
   *   after the request was handed to the broker (ambiguous); POS313 request fails the schema;
   *   POS323 no response within `timeoutMs` (ambiguous); POS331 the worker stopped.
   */
  async authorize(
    request: AuthRequest,
    options: { timeoutMs?: number } = {},
  ): Promise<AuthResponse> {
    if (!this.#running || this.#stopping) {
      throw syncError('POS331', 'The sync worker is stopped: start() it before authorizing online');
    }
    return this.#auths.request(request, this.#signer, options.timeoutMs ?? 15_000);
  }

  /**
   * Stops draining: no new batches; waits up to `drainTimeoutMs` for in-flight batches to be
   * acked (resends continue meanwhile), then publishes the retained offline status when still
   * connected. Records still in flight are still `pending` in the store (in flight is this
   * worker's memory), so the next start sends them again. Does not end the session.
   */
  async stop(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    if (!this.#running || this.#stopping) return;
    this.#stopping = true;
    this.#window.drain();
    const drainTimeoutMs = options.drainTimeoutMs ?? this.#o.drainTimeoutMs;
    if (this.#window.inFlight > 0 && drainTimeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.#clock.clearTimeout(timer);
          this.#drainWaiters.delete(done);
          resolve();
        };
        const timer = this.#clock.setTimeout(done, drainTimeoutMs);
        this.#drainWaiters.add(done);
      });
    }
    if (this.#window.inFlight > 0) {
      this.#log.info(
        { batches: this.#window.inFlight },
        'sync stopped with batches awaiting acks; they are sent again at the next start',
      );
    }
    this.#window.reset();
    this.#ackQueue = [];
    this.#clearWake();
    this.#status.cancel();
    this.#disarmPoll();
    this.#auths.rejectAll(
      syncError('POS331', 'The sync worker stopped before the authorization response'),
    );
    if (this.#session.connected) {
      await this.#session
        .publish(this.topics.status, this.#status.payload('offline'), { qos: 1, retain: true })
        .catch(() => undefined);
    }
    this.#session.off('connect', this.#onConnect);
    this.#session.off('disconnect', this.#onDisconnect);
    this.#session.off('message', this.#onMessage);
    this.#running = false;
    this.#stopping = false;
    this.#online = false;
  }

  // -------------------------------------------------------------------------------------------

  #handleConnect(): void {
    if (!this.#running) return;
    if (!this.#online) {
      this.#online = true;
      this.emit('state', 'online');
    }
    this.#log.info({ inFlight: this.#window.inFlight }, 'connected to the broker; draining');
    this.#window.connect();
    this.#status.publishNow(this.#onStatusError);
    this.#pump();
    this.#armPoll();
  }

  /**
   * Arms the periodic outbox poll (B15): every `pollIntervalMs` while started, not stopping and
   * connected, the pump runs, which reads the outbox only when the window has room. Re-armed
   * after each run; cleared on disconnect and by `stop()`.
   */
  #armPoll(): void {
    if (this.#pollTimer !== undefined) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      if (!this.#running || this.#stopping || !this.#session.connected) return;
      this.#pump();
      this.#armPoll();
    }, this.#o.pollIntervalMs);
  }

  #disarmPoll(): void {
    if (this.#pollTimer !== undefined) this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  #handleDisconnect(): void {
    this.#disarmPoll();
    this.#window.disconnect();
    if (this.#online) {
      this.#online = false;
      this.emit('state', 'offline');
      this.#log.warn({ inFlight: this.#window.inFlight }, 'disconnected from the broker');
    }
  }

  #schedulePump(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    queueMicrotask(() => {
      this.#pumpQueued = false;
      this.#pump();
    });
  }

  /**
   * Runs the window's steps until it is idle, waits, or the outbox has nothing to send; then arms
   * the one wake timer for exactly what comes next (the earliest resend, the rate cap, or a
   * retry after a store error).
   */
  #pump(): void {
    if (!this.#running || !this.#session.connected) {
      this.#clearWake();
      return;
    }
    // The window's own notion of the link follows the session's (a CONNACK may come before
    // the worker's listener saw it).
    if (!this.#window.connected) this.#window.connect();
    let wakeAt = Number.POSITIVE_INFINITY;
    for (;;) {
      const step = this.#window.step(this.#clock.now());
      if (step.kind === 'idle') break;
      if (step.kind === 'wait') {
        wakeAt = step.until;
        break;
      }
      if (step.kind === 'publish') {
        this.#publish(step);
        continue;
      }
      const opened = this.#openBatch(step.afterSeq);
      if (opened === 'empty') break;
      if (opened === 'error') {
        // After a store error: again after `ackTimeoutMs` (or sooner on notify/ack/reconnect).
        wakeAt = this.#clock.now() + this.#o.policy.ackTimeoutMs;
        break;
      }
    }
    this.#wake(Math.min(wakeAt, this.#window.nextResendAt() ?? Number.POSITIVE_INFINITY));
  }

  /** (Re)arms the one wake timer for `at` (ms); +Infinity clears it. */
  #wake(at: number): void {
    if (this.#wakeTimer !== undefined && this.#wakeAt === at) return;
    this.#clearWake();
    if (at === Number.POSITIVE_INFINITY) return;
    this.#wakeAt = at;
    this.#wakeTimer = this.#clock.setTimeout(
      () => {
        this.#wakeTimer = undefined;
        this.#wakeAt = Number.POSITIVE_INFINITY;
        this.#pump();
      },
      Math.max(0, at - this.#clock.now()),
    );
  }

  #clearWake(): void {
    if (this.#wakeTimer !== undefined) this.#clock.clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#wakeAt = Number.POSITIVE_INFINITY;
  }

  /**
   * Reads, packs and opens the next batch after `afterSeq`. 'empty' when nothing is pending,
   * 'error' after a store error (logged), 'opened' when a batch or only refused records came
   * out.
   */
  #openBatch(afterSeq: number): 'opened' | 'empty' | 'error' {
    let candidates: UplinkRecord[];
    const limit = this.#fetchLimit > 0 ? this.#fetchLimit : this.#o.maxRecordsPerBatch;
    try {
      candidates = this.#source.nextPending(limit, afterSeq);
    } catch (error) {
      this.#log.error({ err: error }, 'the outbox could not be read; retrying later');
      return 'error';
    }
    if (candidates.length === 0) return 'empty';
    const batchId = this.#newBatchId();
    const packed = packBatch(candidates, {
      batchId,
      signer: this.#signer,
      maxMessageBytes: this.#o.maxMessageBytes,
      maxRecords: this.#o.maxRecordsPerBatch,
      trusted: this.#source.validatesRecords === true,
    });
    this.#fetchLimit = nextFetchLimit(
      {
        limit,
        candidates: candidates.length,
        packed: packed.records.length + packed.refused.length,
        full: packed.full,
      },
      this.#o.maxRecordsPerBatch,
    );
    if (packed.stripped.length > 0 && !this.#warnedStripped) {
      this.#warnedStripped = true;
      this.#log.warn(
        { fields: packed.stripped },
        'outbox records carry fields outside the wire contract; they are not sent',
      );
    }
    if (packed.refused.length > 0) {
      this.#stats.refusedLocally += packed.refused.length;
      for (const r of packed.refused) {
        this.#log.error(
          { idempotencyKey: r.key, code: r.code, reason: r.reason },
          'record refused before sending; moved to dead',
        );
      }
      try {
        this.#source.applyAcks(packed.refused);
      } catch (error) {
        // The refused records stay pending in the store: they are refused again on the retry.
        this.#log.error(
          { err: error, records: packed.refused.length },
          'the outbox could not record refused records; retrying later',
        );
        return 'error';
      }
      this.emit('refused', packed.refused);
      this.#scheduleStatus();
    }
    if (packed.records.length === 0) return packed.refused.length > 0 ? 'opened' : 'empty';
    // In flight lives in the window, not in the store (architecture.md §4): nothing is written.
    let maxSeq = 0;
    for (const record of packed.records) maxSeq = Math.max(maxSeq, record.seq);
    this.#window.opened({
      id: batchId,
      payload: { payload: packed.payload, records: packed.records.length },
      keys: packed.records.map((r) => r.key),
      maxSeq,
    });
    this.#stats.batches += 1;
    this.#stats.maxInFlightSeen = Math.max(this.#stats.maxInFlightSeen, this.#window.inFlight);
    return 'opened';
  }

  #publish(
    step: Extract<WindowStep<{ payload: Buffer; records: number }>, { kind: 'publish' }>,
  ): void {
    this.#stats.publishes += 1;
    if (step.attempt > 1) this.#stats.resends += 1;
    if (step.reason === 'timeout') {
      this.#log.warn(
        { batch: step.id, attempt: step.attempt - 1, records: step.records },
        'no ack for the batch in time; sending it again',
      );
    }
    const { payload, records } = step.payload;
    this.#session.publish(this.topics.records, payload, { qos: 1 }).then(
      () => {
        this.#stats.pubacks += 1;
        this.emit('batch-sent', {
          batchId: step.id,
          records,
          bytes: payload.length,
          attempt: step.attempt,
        });
      },
      (error: unknown) => {
        // Not lost: the batch stays in flight and is resent on reconnect or after its timeout.
        this.#log.debug(
          { batch: step.id, err: error },
          'batch publish not acknowledged by the broker',
        );
      },
    );
  }

  #handleMessage(topic: string, payload: Buffer): void {
    try {
      checkDownlinkSize(payload, this.#o.maxMessageBytes);
    } catch (error) {
      this.#refuseDownlink(topic, error);
      return;
    }
    if (topic === this.topics.acks) this.#handleAcks(topic, payload);
    else if (topic === this.topics.authResponse) this.#handleAuthResponse(topic, payload);
    else if (topic === this.topics.commands) this.#handleCommand(topic, payload);
  }

  #refuseDownlink(topic: string, error: unknown): void {
    this.#stats.rejectedDownlinks += 1;
    const agentError = isAgentError(error)
      ? error
      : syncError('POS310', `Downlink on ${topic} could not be processed: ${String(error)}`, {
          cause: error,
        });
    this.#log.warn({ topic, code: agentError.code, err: agentError }, 'downlink refused');
    this.emit('rejected-downlink', { topic, error: agentError });
  }

  #handleAcks(topic: string, payload: Buffer): void {
    let acks;
    try {
      acks = openEnvelope(payload, { keys: this.#cloudKeys }, AcksSchema);
    } catch (error) {
      this.#refuseDownlink(topic, error);
      return;
    }
    const results = this.#window.ack(acks.batch, acks.results);
    if (results === undefined) {
      this.#stats.unknownBatchAcks += 1;
      this.#log.debug(
        { batch: acks.batch },
        'ack for a batch not in flight (duplicate or late); ignored',
      );
      return;
    }
    this.#ackQueue.push({ batch: acks.batch, results });
    if (!this.#ackFlushQueued) {
      this.#ackFlushQueued = true;
      queueMicrotask(() => this.#flushAcks());
    }
  }

  /**
   * Applies every ack verified since the last flush in ONE call of the source (one commit, one
   * ack event): acks that arrive together, in one socket read, share the commit.
   */
  #flushAcks(): void {
    this.#ackFlushQueued = false;
    const queued = this.#ackQueue;
    this.#ackQueue = [];
    if (queued.length === 0) return;
    const results = queued.flatMap((q) => q.results);
    let ok = true;
    try {
      this.#source.applyAcks(
        results,
        queued.map((q) => q.batch),
      );
    } catch (error) {
      ok = false;
      this.#log.error(
        { err: error, batches: queued.map((q) => q.batch) },
        'acks could not be applied; the batches are resent',
      );
    }
    for (const { batch, results: rs } of queued) this.#window.settled(batch, rs, ok);
    if (!ok) return;
    this.#stats.acksApplied += results.length;
    for (const { batch, results: rs } of queued) this.emit('acked', rs, batch);
    if (this.#window.inFlight === 0) for (const done of [...this.#drainWaiters]) done();
    this.#scheduleStatus();
    this.#pump();
  }

  #handleAuthResponse(topic: string, payload: Buffer): void {
    let response: AuthResponse;
    try {
      response = openEnvelope(payload, { keys: this.#cloudKeys }, AuthResponseSchema);
    } catch (error) {
      this.#refuseDownlink(topic, error);
      return;
    }
    if (!this.#auths.resolve(response)) {
      this.#log.debug(
        { idempotencyKey: response.key },
        'authorization response after its timeout; ignored',
      );
    }
  }

  #handleCommand(topic: string, payload: Buffer): void {
    try {
      const command = openCommand(payload, this.#cloudKeys, this.#commands);
      this.#log.info({ command: command.id, type: command.command.type }, 'cloud command');
      this.emit('command', command);
    } catch (error) {
      this.#refuseDownlink(topic, error);
    }
  }

  #scheduleStatus(): void {
    if (!this.#running || this.#stopping) return;
    this.#status.schedule(this.#onStatusError);
  }
}
