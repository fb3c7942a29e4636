/**
 * The sync worker's contract with its outbox and its options, counters and events (issue 15:
 * sync-worker.ts split by job). Options are validated once, by {@link resolveSyncOptions}.
 */
import type { AgentError } from '../common/agent-error.js';
import type { Clock } from '../common/clock.js';
import type { ResendPolicy } from './batch-window.js';
import type { EnvelopeSigner, PublicKeyLookup } from './envelope.js';
import { syncError } from './errors.js';
import type { MqttSession } from './mqtt-session.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './pack.js';
import type { AckResult, Command, UplinkRecord } from './schemas.js';

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

/** The default logger: says nothing. */
export const silentLogger: SyncLogger = {
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
  /** Calls of the source's `applyAcks` for acks (commits): acks arriving together share one. */
  ackCommits: number;
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

/** The validated numbers of {@link SyncWorkerOptions}, defaults applied. */
export interface ResolvedSyncOptions {
  maxMessageBytes: number;
  maxRecordsPerBatch: number;
  maxInFlightBatches: number;
  maxPublishesPerSecond: number | undefined;
  drainTimeoutMs: number;
  pollIntervalMs: number;
  policy: ResendPolicy;
}

/**
 * Checks the numeric options and applies their defaults.
 *
 * @throws AgentError POS330 for an option out of range (names the option, its value and unit).
 */
export function resolveSyncOptions(options: SyncWorkerOptions): ResolvedSyncOptions {
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
  return {
    maxMessageBytes: positive(
      'maxMessageBytes',
      options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      1024,
      ' bytes',
    ),
    maxRecordsPerBatch: Math.floor(
      positive('maxRecordsPerBatch', options.maxRecordsPerBatch ?? 1000, 1, ''),
    ),
    maxInFlightBatches,
    maxPublishesPerSecond,
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
}
