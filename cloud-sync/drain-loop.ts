/**
 * The drain loop of the sync worker (issue 15: sync-worker.ts split by job): reads the outbox,
 * packs and publishes batches as the pure {@link BatchWindow} decides, and applies the cloud's
 * acks as one set per flush. The worker (sync-worker.ts) owns the session's lifecycle, the
 * downlinks and the status; it hands verified acks to {@link DrainLoop.acks}.
 *
 * ```
 *  pump ─▶ window.step ─┬─ fetch ─▶ source.nextPending ─▶ packBatch ─▶ window.opened
 *                       ├─ publish ─▶ session.publish (QoS 1, up/records)
 *                       └─ wait/idle ─▶ one wake timer
 *  acks(batch, results) ─▶ window.ack ─▶ queue ─(microtask)─▶ source.applyAcks (one commit)
 * ```
 */
import type { Clock, TimerHandle } from '../common/clock.js';
import type { BatchWindow, ResendPolicy, WindowStep } from './batch-window.js';
import type { EnvelopeSigner } from './envelope.js';
import type { MqttSession } from './mqtt-session.js';
import { nextFetchLimit, packBatch } from './pack.js';
import type { AckResult, DeviceTopics, UplinkRecord } from './schemas.js';
import type { OutboxSource, SyncLogger, SyncWorkerStats } from './sync-options.js';

/** A batch in the window: the signed payload and how many records it holds. */
export type WindowPayload = { payload: Buffer; records: number };

/** What the drain loop works with; the worker owns all of it. */
export interface DrainLoopDeps {
  /** The worker's MQTT session: batches go out on it (QoS 1). */
  session: MqttSession;
  /** The outbox: `nextPending`, `applyAcks`. */
  source: OutboxSource;
  /** The device's topics (`up/records`). */
  topics: DeviceTopics;
  /** The current uplink signer (it can be rotated by a cloud command). */
  signer: () => EnvelopeSigner;
  /** A fresh batch id (uuid v7 by default). */
  newBatchId: () => string;
  clock: Clock;
  log: SyncLogger;
  /** The worker's counters, updated in place. */
  stats: SyncWorkerStats;
  /** The pure batch window; the worker also drives it on connect, disconnect and stop. */
  window: BatchWindow<WindowPayload>;
  /** True while the worker is started. */
  running: () => boolean;
  /** Batch size limits (bytes, records) and the resend schedule, validated by the worker. */
  options: { maxMessageBytes: number; maxRecordsPerBatch: number; policy: ResendPolicy };
  /** What the loop tells the worker (which emits its own events). */
  events: {
    acked(results: AckResult[], batchId: string): void;
    refused(results: AckResult[]): void;
    batchSent(info: { batchId: string; records: number; bytes: number; attempt: number }): void;
    /** The queue changed (a status publish is due). */
    changed(): void;
    /** Nothing is in flight any more (wakes `stop()`'s drain wait). */
    drained(): void;
  };
}

/** The drain loop; see the file comment. One per {@link SyncWorker}. */
export class DrainLoop {
  readonly #d: DrainLoopDeps;
  readonly #o: DrainLoopDeps['options'];
  #pumpQueued = false;
  /** The one timer for the window: the earliest resend, the rate cap, or a retry after an error. */
  #wakeTimer: TimerHandle | undefined;
  #wakeAt = Number.POSITIVE_INFINITY;
  #warnedStripped = false;
  /** `nextPending` limit, adapted per batch by {@link nextFetchLimit}. */
  #fetchLimit = 0;
  /** Verified acks waiting for the one commit they share (see {@link #flushAcks}). */
  #ackQueue: { batch: string; results: AckResult[] }[] = [];
  #ackFlushQueued = false;

  constructor(deps: DrainLoopDeps) {
    this.#d = deps;
    this.#o = deps.options;
  }

  /** Drops the acks not yet applied (stop): their records are still pending in the store. */
  reset(): void {
    this.#ackQueue = [];
  }

  /**
   * Runs {@link pump} once, soon, however often it is asked before: in the event loop's check
   * phase (`setImmediate`), not a microtask. A payment's commit calls this before its HTTP answer
   * is written, and the answer's promise continuations are microtasks queued after this one: a
   * microtask pump (read, pack, sign, publish: a millisecond or more) ran before every answer.
   * Now the cashier's answer goes out first, then the record (issue 9: POST p50).
   */
  schedule(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    setImmediate(() => {
      this.#pumpQueued = false;
      this.pump();
    });
  }

  /**
   * Runs the window's steps until it is idle, waits, or the outbox has nothing to send; then arms
   * the one wake timer for exactly what comes next (the earliest resend, the rate cap, or a
   * retry after a store error).
   */
  pump(): void {
    if (!this.#d.running() || !this.#d.session.connected) {
      this.clearWake();
      return;
    }
    // The window's own notion of the link follows the session's (a CONNACK may come before
    // the worker's listener saw it).
    if (!this.#d.window.connected) this.#d.window.connect();
    let wakeAt = Number.POSITIVE_INFINITY;
    for (;;) {
      const step = this.#d.window.step(this.#d.clock.now());
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
        wakeAt = this.#d.clock.now() + this.#o.policy.ackTimeoutMs;
        break;
      }
    }
    this.#wake(Math.min(wakeAt, this.#d.window.nextResendAt() ?? Number.POSITIVE_INFINITY));
  }

  /** (Re)arms the one wake timer for `at` (ms); +Infinity clears it. */
  #wake(at: number): void {
    if (this.#wakeTimer !== undefined && this.#wakeAt === at) return;
    this.clearWake();
    if (at === Number.POSITIVE_INFINITY) return;
    this.#wakeAt = at;
    this.#wakeTimer = this.#d.clock.setTimeout(
      () => {
        this.#wakeTimer = undefined;
        this.#wakeAt = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, at - this.#d.clock.now()),
    );
  }

  /** Clears the wake timer (on stop, and when a pump finds the link down). */
  clearWake(): void {
    if (this.#wakeTimer !== undefined) this.#d.clock.clearTimeout(this.#wakeTimer);
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
      candidates = this.#d.source.nextPending(limit, afterSeq);
    } catch (error) {
      this.#d.log.error({ err: error }, 'the outbox could not be read; retrying later');
      return 'error';
    }
    if (candidates.length === 0) return 'empty';
    const batchId = this.#d.newBatchId();
    const packed = packBatch(candidates, {
      batchId,
      signer: this.#d.signer(),
      maxMessageBytes: this.#o.maxMessageBytes,
      maxRecords: this.#o.maxRecordsPerBatch,
      trusted: this.#d.source.validatesRecords === true,
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
      this.#d.log.warn(
        { fields: packed.stripped },
        'outbox records carry fields outside the wire contract; they are not sent',
      );
    }
    if (packed.refused.length > 0) {
      this.#d.stats.refusedLocally += packed.refused.length;
      for (const r of packed.refused) {
        this.#d.log.error(
          { idempotencyKey: r.key, code: r.code, reason: r.reason },
          'record refused before sending; moved to dead',
        );
      }
      try {
        this.#d.source.applyAcks(packed.refused);
      } catch (error) {
        // The refused records stay pending in the store: they are refused again on the retry.
        this.#d.log.error(
          { err: error, records: packed.refused.length },
          'the outbox could not record refused records; retrying later',
        );
        return 'error';
      }
      this.#d.events.refused(packed.refused);
      this.#d.events.changed();
    }
    if (packed.records.length === 0) return packed.refused.length > 0 ? 'opened' : 'empty';
    // In flight lives in the window, not in the store (architecture.md §4): nothing is written.
    let maxSeq = 0;
    for (const record of packed.records) maxSeq = Math.max(maxSeq, record.seq);
    this.#d.window.opened({
      id: batchId,
      payload: { payload: packed.payload, records: packed.records.length },
      keys: packed.records.map((r) => r.key),
      maxSeq,
    });
    this.#d.stats.batches += 1;
    this.#d.stats.maxInFlightSeen = Math.max(
      this.#d.stats.maxInFlightSeen,
      this.#d.window.inFlight,
    );
    return 'opened';
  }

  #publish(step: Extract<WindowStep<WindowPayload>, { kind: 'publish' }>): void {
    this.#d.stats.publishes += 1;
    if (step.attempt > 1) this.#d.stats.resends += 1;
    if (step.reason === 'timeout') {
      this.#d.log.warn(
        {
          batch: step.id,
          attempt: step.attempt - 1,
          records: step.records,
          held: this.#d.window.held,
        },
        this.#d.window.held > 0
          ? 'no ack for the oldest batch in time; sending it again as a probe (the later batches wait until the cloud answers)'
          : 'no ack for the batch in time; sending it again',
      );
    }
    const { payload, records } = step.payload;
    this.#d.session.publish(this.#d.topics.records, payload, { qos: 1 }).then(
      () => {
        this.#d.stats.pubacks += 1;
        this.#d.events.batchSent({
          batchId: step.id,
          records,
          bytes: payload.length,
          attempt: step.attempt,
        });
      },
      (error: unknown) => {
        // Not lost: the batch stays in flight and is resent on reconnect or after its timeout.
        this.#d.log.debug(
          { batch: step.id, err: error },
          'batch publish not acknowledged by the broker',
        );
      },
    );
  }

  /**
   * A verified `Acks` message: its results that count (see {@link BatchWindow.ack}) are queued
   * for the one commit acks arriving together share ({@link DrainLoop.#flushAcks}, a microtask
   * later). An ack for a batch not in flight is counted and ignored.
   */
  acks(batch: string, results: AckResult[]): void {
    const applied = this.#d.window.ack(batch, results, this.#d.clock.now());
    if (applied === undefined) {
      this.#d.stats.unknownBatchAcks += 1;
      this.#d.log.debug(
        { batch: batch },
        'ack for a batch not in flight (duplicate or late); ignored',
      );
      return;
    }
    this.#ackQueue.push({ batch, results: applied });
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
    this.#d.stats.ackCommits += 1;
    try {
      this.#d.source.applyAcks(
        results,
        queued.map((q) => q.batch),
      );
    } catch (error) {
      ok = false;
      this.#d.log.error(
        { err: error, batches: queued.map((q) => q.batch) },
        'acks could not be applied; the batches are resent',
      );
    }
    for (const { batch, results: rs } of queued) this.#d.window.settled(batch, rs, ok);
    if (!ok) return;
    this.#d.stats.acksApplied += results.length;
    for (const { batch, results: rs } of queued) this.#d.events.acked(rs, batch);
    if (this.#d.window.inFlight === 0) this.#d.events.drained();
    this.#d.events.changed();
    this.pump();
  }
}
