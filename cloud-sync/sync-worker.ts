/**
 * The sync worker: drains the SQLite outbox to the cloud core over MQTT (architecture.md §5).
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
import { type Clock, type TimerHandle, isoAt, systemClock } from '../common/clock.js';
import { CommandGuard, checkDownlinkSize, type SeenCommandStore } from './commands.js';
import {
  type EnvelopeSigner,
  type PublicKeyLookup,
  envelopeBytesFor,
  escapedJsonBytes,
  issuesText,
  openEnvelope,
  signBody,
  signEnvelope,
  signerKeyId,
} from './envelope.js';
import { syncError } from './errors.js';
import type { MqttSession } from './mqtt-session.js';
import {
  type AckResult,
  AcksSchema,
  type AuthRequest,
  AuthRequestSchema,
  type AuthResponse,
  AuthResponseSchema,
  type Command,
  CommandSchema,
  DEFAULT_TOPIC_PREFIX,
  type DeviceTopics,
  type UplinkRecord,
  UplinkRecordSchema,
  type Status,
  StatusSchema,
  topics,
} from './schemas.js';

/** Default largest payload: 128 KiB, the AWS IoT Core message size limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 131_072;

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

/** The resend schedule: exponential backoff with upward jitter. */
export interface ResendPolicy {
  /** First wait for an ack, ms (architecture.md §5 `ackTimeoutMs`). */
  ackTimeoutMs: number;
  /** Growth per further attempt; ≥ 1. */
  backoffFactor: number;
  /** Cap of the wait before jitter, ms. */
  maxBackoffMs: number;
  /** Jitter as a fraction of the wait, 0–1: the wait is stretched by up to this much. */
  jitterRatio: number;
}

/**
 * How long to wait for the ack of a batch after its `attempt`-th publish (1-based), in ms:
 * `min(maxBackoffMs, ackTimeoutMs · backoffFactor^(attempt−1)) · (1 + jitterRatio · random())`.
 *
 * The jitter only stretches the wait, so no resend happens before `ackTimeoutMs`, and terminals
 * that lost the link together do not resend in lock-step.
 *
 * @param random — uniform in [0, 1) (injected for tests).
 */
export function resendDelayMs(attempt: number, policy: ResendPolicy, random: () => number): number {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  const base = Math.min(
    policy.maxBackoffMs,
    policy.ackTimeoutMs * policy.backoffFactor ** exponent,
  );
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(base * (1 + policy.jitterRatio * r));
}

/** Result of {@link packBatch}. */
export interface PackedBatch {
  /** Signed envelope bytes of `{ batch, records }`, ≤ maxMessageBytes; empty when no record fits. */
  payload: Buffer;
  /** The records in the batch, seq order (wire form: unknown keys stripped). */
  records: UplinkRecord[];
  /** Records refused locally (status rejected, POS313/POS314), to be applied as dead. */
  refused: AckResult[];
  /** Names of unknown keys stripped from records (for one warning; never values). */
  stripped: string[];
  /** True when packing stopped at a record that did not fit (the batch is full by size). */
  full: boolean;
}

/**
 * How many records to ask the outbox for next time (`nextPending(limit)`), learnt from the last
 * batch: reading and mapping rows that do not fit is wasted work (with 128 KiB batches of ~176
 * records, a fixed limit of 1000 read ~5.7 rows per row sent).
 *
 * - the batch was full by size → what fitted plus a margin of a quarter (at least 8);
 * - every candidate fitted and there were `limit` of them → twice the limit (more may fit);
 * - fewer candidates than asked (the queue ran dry) → the same limit.
 *
 * Always within 1–`maxRecords`. A limit too small only makes one batch smaller than it could
 * be; it never skips or reorders a record.
 */
export function nextFetchLimit(
  last: { limit: number; candidates: number; packed: number; full: boolean },
  maxRecords: number,
): number {
  let next: number;
  if (last.full) next = last.packed + Math.max(8, Math.ceil(last.packed / 4));
  else if (last.candidates >= last.limit) next = last.limit * 2;
  else next = last.limit;
  return Math.max(1, Math.min(maxRecords, Math.floor(next)));
}

/**
 * Packs records (seq order) into one signed `RecordsBatch` envelope of at most `maxMessageBytes`
 * bytes, computing the exact envelope length without signing per record.
 *
 * Stops at the first record that does not fit (never skips ahead, to keep seq order); a record
 * that does not fit even alone, or fails the schema, is refused (see {@link PackedBatch.refused}).
 */
export function packBatch(
  candidates: readonly unknown[],
  options: {
    batchId: string;
    signer: EnvelopeSigner;
    maxMessageBytes: number;
    maxRecords?: number;
    /**
     * The records were validated when they were created (`OutboxSource.validatesRecords`):
     * skip the per-record key stripping and schema check, which cost more than the store's own
     * work per record on a drain.
     */
    trusted?: boolean;
  },
): PackedBatch {
  const kid = signerKeyId(options.signer);
  const head = `{"batch":${JSON.stringify(options.batchId)},"records":[`;
  const tail = ']}';
  const fixed = envelopeBytesFor(escapedJsonBytes(head) + escapedJsonBytes(tail), kid);
  const maxRecords = options.maxRecords ?? Number.POSITIVE_INFINITY;
  const records: UplinkRecord[] = [];
  const texts: string[] = [];
  const refused: AckResult[] = [];
  const stripped = new Set<string>();
  let total = fixed;
  let full = false;
  for (const candidate of candidates) {
    if (records.length >= maxRecords) break;
    const key = keyOf(candidate);
    const parsed =
      options.trusted === true
        ? ({ success: true, data: candidate as UplinkRecord } as const)
        : UplinkRecordSchema.safeParse(toWireRecord(candidate, stripped));
    if (!parsed.success) {
      refused.push({
        key,
        status: 'rejected',
        code: 'POS313',
        reason: `record fails the wire schema: ${issuesText(parsed.error)}`.slice(0, 512),
      });
      continue;
    }
    const text = JSON.stringify(parsed.data);
    const bytes = escapedJsonBytes(text);
    if (fixed + bytes > options.maxMessageBytes) {
      refused.push({
        key,
        status: 'rejected',
        code: 'POS314',
        reason: `record alone makes a ${fixed + bytes}-byte message, over maxMessageBytes ${options.maxMessageBytes}`,
      });
      continue;
    }
    const added = bytes + (records.length > 0 ? 1 : 0);
    if (total + added > options.maxMessageBytes) {
      full = true;
      break;
    }
    total += added;
    records.push(parsed.data);
    texts.push(text);
  }
  if (records.length === 0) {
    return { payload: Buffer.alloc(0), records, refused, stripped: [...stripped], full };
  }
  const payload = signBody(`${head}${texts.join(',')}${tail}`, options.signer);
  if (payload.length !== total || payload.length > options.maxMessageBytes) {
    // A bug in the size arithmetic must not put an over-limit message on the wire.
    throw syncError(
      'POS314',
      `Packed batch is ${payload.length} bytes (computed ${total}), limit ${options.maxMessageBytes}: report this as a bug`,
    );
  }
  return { payload, records, refused, stripped: [...stripped], full };
}

function keyOf(candidate: unknown): string {
  const key = (candidate as { key?: unknown } | null)?.key;
  return typeof key === 'string' ? key : String(key);
}

const WIRE_KEYS = {
  record: [
    'key',
    'seq',
    'type',
    'at',
    'payment',
    'card',
    'sealed',
    'sred',
    'pinBlock',
    'chain',
    'batch',
  ],
  payment: ['id', 'amountMinor', 'currency', 'reference', 'createdAt'],
  card: [
    'token',
    'brand',
    'first6',
    'last4',
    'expiryMonth',
    'expiryYear',
    'entryMode',
    'cardholderName',
  ],
  sred: ['ksnHex', 'ciphertextHex'],
  pinBlock: ['format', 'ksnHex', 'pinBlockHex'],
} as const;

function pick(
  value: unknown,
  keys: readonly string[],
  where: string,
  stripped: Set<string>,
): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (keys.includes(k)) {
      if (v !== undefined && v !== null) out[k] = v;
      // null for an optional field (a SQL NULL column) means absent.
      else if (
        v === null &&
        !['sealed', 'sred', 'pinBlock', 'reference', 'cardholderName'].includes(k)
      )
        out[k] = v;
    } else stripped.add(`${where}${k}`);
  }
  return out;
}

/** The record with only the contract's keys (nested too); values untouched. */
function toWireRecord(candidate: unknown, stripped: Set<string>): unknown {
  const record = pick(candidate, WIRE_KEYS.record, '', stripped);
  if (record === null || typeof record !== 'object') return record;
  const r = record as Record<string, unknown>;
  if ('payment' in r) r.payment = pick(r.payment, WIRE_KEYS.payment, 'payment.', stripped);
  if ('card' in r) r.card = pick(r.card, WIRE_KEYS.card, 'card.', stripped);
  if ('sred' in r) r.sred = pick(r.sred, WIRE_KEYS.sred, 'sred.', stripped);
  if ('pinBlock' in r) r.pinBlock = pick(r.pinBlock, WIRE_KEYS.pinBlock, 'pinBlock.', stripped);
  return r;
}

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

interface InFlightBatch {
  id: string;
  payload: Buffer;
  keys: Set<string>;
  records: number;
  attempts: number;
  due: boolean;
  timer: TimerHandle | undefined;
}

interface PendingAuth {
  resolve: (response: AuthResponse) => void;
  reject: (error: AgentError) => void;
  timer: TimerHandle;
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
 * header for the rules.
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
    maxInFlightBatches: number;
    maxRecordsPerBatch: number;
    maxPublishesPerSecond: number | undefined;
    statusThrottleMs: number;
    drainTimeoutMs: number;
    pollIntervalMs: number;
    policy: ResendPolicy;
  };
  #session: MqttSession;
  #source: OutboxSource;
  #signer: EnvelopeSigner;
  #cloudKeys: PublicKeyLookup;
  #version: string;
  #clock: Clock;
  #random: () => number;
  #newBatchId: () => string;
  #log: SyncLogger;
  #commands: CommandGuard;
  #inFlight = new Map<string, InFlightBatch>();
  #auths = new Map<string, PendingAuth>();
  #running = false;
  #stopping = false;
  #online = false;
  #pumpQueued = false;
  #tokens: number;
  #tokensAt: number;
  #wakeTimer: TimerHandle | undefined;
  #statusTimer: TimerHandle | undefined;
  #pollTimer: TimerHandle | undefined;
  #lastStatusAt = Number.NEGATIVE_INFINITY;
  #drainWaiters = new Set<() => void>();
  #warnedStripped = false;
  /** `nextPending` limit, adapted per batch by {@link nextFetchLimit}. */
  #fetchLimit = 0;
  /** The highest outbox `seq` held in flight; the next batch starts after it. */
  #cursorSeq = 0;
  /** Verified acks waiting for the one commit they share (see {@link #flushAcks}). */
  #ackQueue: { batch: InFlightBatch; results: AckResult[] }[] = [];
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

  constructor(options: SyncWorkerOptions) {
    super();
    this.topics = topics(options.topicPrefix ?? DEFAULT_TOPIC_PREFIX, options.deviceId);
    const ackTimeoutMs = positive('ackTimeoutMs', options.ackTimeoutMs ?? 10_000, 1, ' ms');
    const jitterRatio = options.jitterRatio ?? 0.2;
    if (!(jitterRatio >= 0 && jitterRatio <= 1)) {
      throw syncError('POS330', `Sync option jitterRatio is ${jitterRatio}, must be within 0–1`);
    }
    this.#o = {
      maxMessageBytes: positive(
        'maxMessageBytes',
        options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
        1024,
        ' bytes',
      ),
      maxInFlightBatches: Math.floor(
        positive('maxInFlightBatches', options.maxInFlightBatches ?? 16, 1, ''),
      ),
      maxRecordsPerBatch: Math.floor(
        positive('maxRecordsPerBatch', options.maxRecordsPerBatch ?? 1000, 1, ''),
      ),
      maxPublishesPerSecond:
        options.maxPublishesPerSecond === undefined
          ? undefined
          : positive('maxPublishesPerSecond', options.maxPublishesPerSecond, 0.001, '/s'),
      statusThrottleMs: options.statusThrottleMs ?? 1000,
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
    this.#version = options.version;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#newBatchId = options.newBatchId ?? (() => uuidv7());
    this.#log = options.logger ?? silentLogger;
    this.#commands = new CommandGuard({
      clock: this.#clock,
      deviceId: options.deviceId,
      ...(options.maxCommandLifetimeMs === undefined
        ? {}
        : { maxLifetimeMs: options.maxCommandLifetimeMs }),
    });
    this.#tokens = Math.max(1, this.#o.maxPublishesPerSecond ?? 1);
    this.#tokensAt = this.#clock.now();
    // The broker publishes this retained, signed offline status if the link dies (MQTT 3.1.1
    // §3.1.2.5); evaluated before every connect, so its timestamp and stats are fresh.
    this.#session.setWill(() => ({
      topic: this.topics.status,
      payload: this.#statusPayload('offline'),
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
    return { ...this.#stats, inFlightBatches: this.#inFlight.size };
  }

  /** True while connected and started. */
  get online(): boolean {
    return this.#online;
  }

  /**
   * Online authorization (architecture.md §5): publishes a signed `AuthRequest` on `up/auth` and waits for
   * the `AuthResponse` with the same key on `down/auth`.
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
    const payload = signEnvelope(request, this.#signer, AuthRequestSchema);
    if (!this.#session.connected) {
      // Checked synchronously right before the publish: nothing leaves the terminal.
      throw syncError(
        'POS325',
        `Authorization for key ${request.key} not sent: not connected to the broker; nothing reached the cloud, so the payment is not authorized online — apply the offline policy (no void record needed)`,
      );
    }
    const timeoutMs = options.timeoutMs ?? 15_000;
    this.#auths
      .get(request.key)
      ?.reject(
        syncError('POS323', `Authorization for key ${request.key} superseded by a new request`),
      );
    const response = new Promise<AuthResponse>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#auths.delete(request.key);
        reject(
          syncError(
            'POS323',
            `No authorization response for key ${request.key} within ${timeoutMs} ms: the outcome is unknown; store the payment under the offline policy or decline it (the cloud dedupes the key)`,
          ),
        );
      }, timeoutMs);
      this.#auths.set(request.key, {
        resolve: (r) => {
          this.#clock.clearTimeout(timer);
          this.#auths.delete(request.key);
          resolve(r);
        },
        reject: (e) => {
          this.#clock.clearTimeout(timer);
          this.#auths.delete(request.key);
          reject(e);
        },
        timer,
      });
    });
    // The publish is not awaited before the caller holds `response`: during a silent partition
    // the PUBACK never comes, the timer above rejects `response` first, and an await here left
    // that rejection without a handler (POS323 as an unhandled rejection ended the process,
    // issue 10). A failed publish rejects `response` early (POS302); a late one finds no entry.
    const entry = this.#auths.get(request.key);
    this.#session.publish(this.topics.auth, payload, { qos: 1 }).catch((error: unknown) => {
      if (this.#auths.get(request.key) === entry) entry?.reject(error as AgentError);
    });
    return response;
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
    const drainTimeoutMs = options.drainTimeoutMs ?? this.#o.drainTimeoutMs;
    if (this.#inFlight.size > 0 && drainTimeoutMs > 0) {
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
    for (const batch of this.#inFlight.values()) {
      if (batch.timer !== undefined) this.#clock.clearTimeout(batch.timer);
    }
    if (this.#inFlight.size > 0) {
      this.#log.info(
        { batches: this.#inFlight.size },
        'sync stopped with batches awaiting acks; they are sent again at the next start',
      );
    }
    this.#inFlight.clear();
    this.#ackQueue = [];
    this.#cursorSeq = 0;
    for (const timer of [this.#wakeTimer, this.#statusTimer]) {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
    this.#wakeTimer = undefined;
    this.#statusTimer = undefined;
    this.#disarmPoll();
    for (const auth of [...this.#auths.values()]) {
      auth.reject(syncError('POS331', 'The sync worker stopped before the authorization response'));
    }
    if (this.#session.connected) {
      await this.#session
        .publish(this.topics.status, this.#statusPayload('offline'), { qos: 1, retain: true })
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
    this.#log.info({ inFlight: this.#inFlight.size }, 'connected to the broker; draining');
    for (const batch of this.#inFlight.values()) batch.due = true;
    this.#publishStatus();
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
    if (this.#online) {
      this.#online = false;
      this.emit('state', 'offline');
      this.#log.warn({ inFlight: this.#inFlight.size }, 'disconnected from the broker');
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

  #takeToken(): boolean {
    const rate = this.#o.maxPublishesPerSecond;
    if (rate === undefined) return true;
    const now = this.#clock.now();
    this.#tokens = Math.min(
      Math.max(1, rate),
      this.#tokens + ((now - this.#tokensAt) / 1000) * rate,
    );
    this.#tokensAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    const waitMs = Math.ceil(((1 - this.#tokens) / rate) * 1000);
    if (this.#wakeTimer === undefined) {
      this.#wakeTimer = this.#clock.setTimeout(() => {
        this.#wakeTimer = undefined;
        this.#pump();
      }, waitMs);
    }
    return false;
  }

  #pump(): void {
    if (!this.#running || !this.#session.connected) return;
    for (const batch of this.#inFlight.values()) {
      if (!batch.due) continue;
      if (!this.#takeToken()) return;
      this.#send(batch);
    }
    if (this.#stopping) return;
    while (this.#inFlight.size < this.#o.maxInFlightBatches) {
      if (this.#o.maxPublishesPerSecond !== undefined && !this.#peekToken()) {
        this.#takeToken();
        return;
      }
      const batch = this.#nextBatch();
      if (batch === 'empty') break;
      if (batch === 'refused-only') continue;
      this.#takeToken();
      this.#send(batch);
    }
  }

  /**
   * After a store error (disk full, SQLITE_BUSY) while packing: pumps again after `ackTimeoutMs`
   * (or on the next notify/ack/reconnect, whichever comes first).
   */
  #retryLater(): void {
    if (this.#wakeTimer !== undefined) return;
    this.#wakeTimer = this.#clock.setTimeout(() => {
      this.#wakeTimer = undefined;
      this.#pump();
    }, this.#o.policy.ackTimeoutMs);
  }

  #peekToken(): boolean {
    const rate = this.#o.maxPublishesPerSecond;
    if (rate === undefined) return true;
    const now = this.#clock.now();
    return this.#tokens + ((now - this.#tokensAt) / 1000) * rate >= 1;
  }

  #nextBatch(): InFlightBatch | 'empty' | 'refused-only' {
    let candidates: UplinkRecord[];
    const limit = this.#fetchLimit > 0 ? this.#fetchLimit : this.#o.maxRecordsPerBatch;
    // With nothing in flight, start again from the oldest pending record: a record requeued
    // behind the cursor (`queue --retry`) is picked up then.
    if (this.#inFlight.size === 0 && this.#ackQueue.length === 0) this.#cursorSeq = 0;
    try {
      candidates = this.#source.nextPending(limit, this.#cursorSeq);
    } catch (error) {
      this.#log.error({ err: error }, 'the outbox could not be read; retrying later');
      this.#retryLater();
      return 'empty';
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
        this.#retryLater();
        return 'empty';
      }
      this.emit('refused', packed.refused);
      this.#scheduleStatus();
    }
    if (packed.records.length === 0) return packed.refused.length > 0 ? 'refused-only' : 'empty';
    const keys = packed.records.map((r) => r.key);
    // In flight lives here, not in the store (architecture.md §4): nothing is written to publish.
    for (const record of packed.records) this.#cursorSeq = Math.max(this.#cursorSeq, record.seq);
    const batch: InFlightBatch = {
      id: batchId,
      payload: packed.payload,
      keys: new Set(keys),
      records: keys.length,
      attempts: 0,
      due: true,
      timer: undefined,
    };
    this.#inFlight.set(batchId, batch);
    this.#stats.batches += 1;
    this.#stats.maxInFlightSeen = Math.max(this.#stats.maxInFlightSeen, this.#inFlight.size);
    return batch;
  }

  #send(batch: InFlightBatch): void {
    batch.attempts += 1;
    batch.due = false;
    this.#stats.publishes += 1;
    if (batch.attempts > 1) this.#stats.resends += 1;
    if (batch.timer !== undefined) this.#clock.clearTimeout(batch.timer);
    const delay = resendDelayMs(batch.attempts, this.#o.policy, this.#random);
    batch.timer = this.#clock.setTimeout(() => {
      batch.timer = undefined;
      if (this.#inFlight.get(batch.id) !== batch) return;
      this.#log.warn(
        { batch: batch.id, attempt: batch.attempts, records: batch.keys.size, waitedMs: delay },
        'no ack for the batch in time; sending it again',
      );
      batch.due = true;
      this.#pump();
    }, delay);
    const attempt = batch.attempts;
    this.#session.publish(this.topics.records, batch.payload, { qos: 1 }).then(
      () => {
        this.#stats.pubacks += 1;
        this.emit('batch-sent', {
          batchId: batch.id,
          records: batch.records,
          bytes: batch.payload.length,
          attempt,
        });
      },
      (error: unknown) => {
        // Not lost: the batch stays in flight and is resent on reconnect or after its timeout.
        this.#log.debug(
          { batch: batch.id, err: error },
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
    const batch = this.#inFlight.get(acks.batch);
    if (batch === undefined) {
      this.#stats.unknownBatchAcks += 1;
      this.#log.debug(
        { batch: acks.batch },
        'ack for a batch not in flight (duplicate or late); ignored',
      );
      return;
    }
    const results: AckResult[] = [];
    for (const result of acks.results) {
      if (batch.keys.delete(result.key)) results.push(result);
    }
    if (results.length === 0) {
      this.#stats.unknownBatchAcks += 1;
      return;
    }
    this.#ackQueue.push({ batch, results });
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
    try {
      this.#source.applyAcks(
        results,
        queued.map((q) => q.batch.id),
      );
    } catch (error) {
      for (const { batch, results: rs } of queued) for (const r of rs) batch.keys.add(r.key);
      this.#log.error(
        { err: error, batches: queued.map((q) => q.batch.id) },
        'acks could not be applied; the batches are resent',
      );
      return;
    }
    this.#stats.acksApplied += results.length;
    for (const { batch, results: rs } of queued) {
      if (batch.keys.size === 0 && this.#inFlight.get(batch.id) === batch) {
        if (batch.timer !== undefined) this.#clock.clearTimeout(batch.timer);
        this.#inFlight.delete(batch.id);
      }
      this.emit('acked', rs, batch.id);
    }
    if (this.#inFlight.size === 0) for (const done of [...this.#drainWaiters]) done();
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
    const pending = this.#auths.get(response.key);
    if (pending === undefined) {
      this.#log.debug(
        { idempotencyKey: response.key },
        'authorization response after its timeout; ignored',
      );
      return;
    }
    pending.resolve(response);
  }

  #handleCommand(topic: string, payload: Buffer): void {
    try {
      const command = openEnvelope(payload, { keys: this.#cloudKeys }, CommandSchema);
      this.#commands.accept(command);
      this.#log.info({ command: command.id, type: command.command.type }, 'cloud command');
      this.emit('command', command);
    } catch (error) {
      this.#refuseDownlink(topic, error);
    }
  }

  #statusPayload(state: 'online' | 'offline'): Buffer {
    let queue: Status['queue'];
    try {
      const stats = this.#source.queueStats();
      queue = { depth: stats.depth, oldestAt: stats.oldestAt, dead: stats.dead };
    } catch {
      queue = { depth: 0, oldestAt: null, dead: 0 };
    }
    const status: Status = { state, at: isoAt(this.#clock.now()), version: this.#version, queue };
    return signEnvelope(status, this.#signer, StatusSchema);
  }

  #publishStatus(): void {
    if (!this.#session.connected || !this.#running) return;
    this.#lastStatusAt = this.#clock.now();
    this.#session
      .publish(this.topics.status, this.#statusPayload('online'), { qos: 1, retain: true })
      .catch((error: unknown) => this.#log.debug({ err: error }, 'status not published'));
  }

  #scheduleStatus(): void {
    if (this.#statusTimer !== undefined || !this.#running || this.#stopping) return;
    const wait = Math.max(0, this.#lastStatusAt + this.#o.statusThrottleMs - this.#clock.now());
    this.#statusTimer = this.#clock.setTimeout(() => {
      this.#statusTimer = undefined;
      this.#publishStatus();
    }, wait);
  }
}
