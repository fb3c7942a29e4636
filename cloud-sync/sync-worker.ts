/**
 * The sync worker: drains the SQLite outbox to the cloud core over MQTT (architecture.md §5).
 *
 * This file is the I/O shell: lifecycle, downlinks, status. Beside it, each with one job (issue 15):
 * - drain-loop.ts — reading, packing, publishing and applying acks as the window decides;
 * - sync-options.ts — the outbox contract, the options (validated once), counters and events;
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
import { isAgentError } from '../common/agent-error.js';
import { type Clock, type TimerHandle, systemClock } from '../common/clock.js';
import { Authorizations } from './authorization.js';
import { BatchWindow } from './batch-window.js';
import { CommandGuard, checkDownlinkSize, openCommand, type SeenCommandStore } from './commands.js';
import { DrainLoop, type WindowPayload } from './drain-loop.js';
import {
  type EnvelopeSigner,
  type PublicKeyLookup,
  openEnvelope,
  signerKeyId,
} from './envelope.js';
import { syncError } from './errors.js';
import type { MqttSession } from './mqtt-session.js';
import {
  AcksSchema,
  type AuthRequest,
  type AuthResponse,
  AuthResponseSchema,
  DEFAULT_TOPIC_PREFIX,
  type DeviceTopics,
  topics,
} from './schemas.js';
import {
  type OutboxSource,
  type ResolvedSyncOptions,
  type SyncLogger,
  type SyncWorkerEvents,
  type SyncWorkerOptions,
  type SyncWorkerStats,
  resolveSyncOptions,
  silentLogger,
} from './sync-options.js';
import { StatusReporter } from './status.js';

export type {
  OutboxSource,
  SyncLogger,
  SyncWorkerEvents,
  SyncWorkerOptions,
  SyncWorkerStats,
} from './sync-options.js';

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
  #o: ResolvedSyncOptions;
  #session: MqttSession;
  #source: OutboxSource;
  #signer: EnvelopeSigner;
  #cloudKeys: PublicKeyLookup;
  #clock: Clock;
  #newBatchId: () => string;
  #log: SyncLogger;
  #commands: CommandGuard;
  #window: BatchWindow<WindowPayload>;
  #drain: DrainLoop;
  #auths: Authorizations;
  #status: StatusReporter;
  #running = false;
  #stopping = false;
  #online = false;
  #pollTimer: TimerHandle | undefined;
  #drainWaiters = new Set<() => void>();
  #stats: SyncWorkerStats = {
    publishes: 0,
    resends: 0,
    pubacks: 0,
    batches: 0,
    acksApplied: 0,
    ackCommits: 0,
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
    this.#o = resolveSyncOptions(options);
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
      maxInFlight: this.#o.maxInFlightBatches,
      maxPublishesPerSecond: this.#o.maxPublishesPerSecond,
      policy: this.#o.policy,
      random: options.random ?? Math.random,
      now: this.#clock.now(),
    });
    this.#drain = new DrainLoop({
      session: this.#session,
      source: this.#source,
      topics: this.topics,
      signer: () => this.#signer,
      newBatchId: this.#newBatchId,
      clock: this.#clock,
      log: this.#log,
      stats: this.#stats,
      window: this.#window,
      running: () => this.#running,
      options: this.#o,
      events: {
        acked: (results, batchId) => this.emit('acked', results, batchId),
        refused: (results) => this.emit('refused', results),
        batchSent: (info) => this.emit('batch-sent', info),
        changed: () => this.#scheduleStatus(),
        drained: () => {
          for (const done of [...this.#drainWaiters]) done();
        },
      },
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
    this.#drain.schedule();
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
    this.#drain.reset();
    this.#drain.clearWake();
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
    this.#drain.pump();
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
      this.#drain.pump();
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
    this.#drain.acks(acks.batch, acks.results);
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
