/**
 * The batch window of the sync worker as a pure state machine (issue 15): which batch to publish
 * or resend, when to read more records from the outbox, which acknowledgements to apply. No I/O,
 * no timers, no clock: time is an argument (`now`, ms since the epoch) and every output is a
 * returned value. The worker (sync-worker.ts) does the reading, packing, signing, publishing and
 * applying, and arms one timer for {@link BatchWindow.wakeAt}.
 *
 * ```
 *   connect / disconnect ─┐
 *   opened(batch)        ─┼─▶ BatchWindow ──step(now)──▶ publish(batch, attempt) | fetch(afterSeq)
 *   ack(batch, results)  ─┤       │                      | wait(until) | idle
 *   settled(ok)          ─┘       └──▶ applied keys (each key once)
 * ```
 *
 * Rules (architecture.md §5):
 * - At most `maxInFlight` batches wait for acks. A batch not fully acked `resendDelayMs(attempt)`
 *   after its last publish is due again (same id, same payload).
 * - While the cloud is silent, only the oldest batch is resent (the probe). A later batch that
 *   times out is held (not resent) until the cloud is heard past it: an ack arrives for a batch
 *   first published after this one's last publish, so this one's message is likely lost; it is
 *   then due one `ackTimeoutMs` later. A held batch that becomes the oldest becomes the probe,
 *   also due one `ackTimeoutMs` later. Why: the broker keeps QoS 1 messages for the cloud's
 *   persistent session in order (MQTT 3.1.1 §4.6); when the cloud core is down for minutes,
 *   resending every batch on its backoff only piles copies into its queue (a 10-minute outage of
 *   1,000 terminals: 269,380 messages for ~30,000 records, issue 16). With the probe, an outage
 *   adds one message per backoff step per terminal.
 * - Nothing is published while disconnected; on connect every batch in flight is due, oldest first.
 * - With a publish-rate cap, a token bucket of `maxPublishesPerSecond` (burst 1 token per
 *   second of rate, at least 1) gates first sends and resends alike.
 * - An ack result counts only for a key the batch still holds: a duplicate or late result (or a
 *   batch not in flight) gives nothing to apply. The keys of an ack leave the batch when the
 *   ack arrives and come back if applying them fails, so a key is applied at most once while
 *   it is in flight; it is applied at least once when acks keep arriving (resends continue).
 * - The next read starts after the highest `seq` in flight; with nothing in flight and nothing
 *   being applied it starts from the beginning, so a record requeued behind the cursor is found.
 */
import { backoffDelayMs } from '../common/backoff.js';
import type { AckResult } from './schemas.js';

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
 * `min(maxBackoffMs, ackTimeoutMs · backoffFactor^(attempt−1)) · (1 + jitterRatio · random())`
 * (the agent's one backoff, common/backoff.ts).
 *
 * The jitter only stretches the wait, so no resend happens before `ackTimeoutMs`, and terminals
 * that lost the link together do not resend in lock-step.
 *
 * @param random — uniform in [0, 1) (injected for tests).
 */
export function resendDelayMs(attempt: number, policy: ResendPolicy, random: () => number): number {
  return backoffDelayMs(
    attempt,
    {
      baseMs: policy.ackTimeoutMs,
      factor: policy.backoffFactor,
      maxMs: policy.maxBackoffMs,
      jitterRatio: policy.jitterRatio,
    },
    random,
  );
}

/** Options of {@link BatchWindow}; validated by the worker. */
export interface BatchWindowOptions {
  /** Batches awaiting acks at once (≥ 1). */
  maxInFlight: number;
  /** Cap on publishes per second (first sends and resends); undefined = no cap. */
  maxPublishesPerSecond?: number | undefined;
  /** The resend schedule. */
  policy: ResendPolicy;
  /** Uniform [0, 1) for the jitter. */
  random: () => number;
  /** The time the window is made, ms (fills the token bucket's clock). */
  now: number;
}

/** A batch the worker packed from `nextPending` records, handed to {@link BatchWindow.opened}. */
export interface NewBatch<P> {
  /** Batch id (the `batch` field of the wire message and of its `Acks`). */
  id: string;
  /** Opaque to the window: the worker's signed payload. */
  payload: P;
  /** Idempotency keys of the records in the batch. */
  keys: readonly string[];
  /** Highest outbox `seq` in the batch. */
  maxSeq: number;
}

/** What the worker should do next; see {@link BatchWindow.step}. */
export type WindowStep<P> =
  | {
      /** Publish `payload` for batch `id`; the window already counted the attempt. */
      kind: 'publish';
      id: string;
      payload: P;
      /** 1 for the first send. */
      attempt: number;
      /** Why: first send, no ack in time, or a reconnect. */
      reason: 'first' | 'timeout' | 'reconnect';
      /** Records still awaiting acks in the batch. */
      records: number;
      /** When the batch is due again without an ack, ms. */
      resendAt: number;
    }
  | {
      /** Read pending records with `seq > afterSeq`, pack them, call `opened`. */
      kind: 'fetch';
      afterSeq: number;
    }
  | {
      /** The rate cap holds the next publish back until `until` (ms). */
      kind: 'wait';
      until: number;
    }
  | { kind: 'idle' };

interface Slot<P> {
  id: string;
  payload: P;
  keys: Set<string>;
  attempts: number;
  /** Due now (first send or reconnect), regardless of `resendAt`. */
  due: 'first' | 'reconnect' | undefined;
  /** Resend time after the last publish, ms; +Infinity before the first and while held. */
  resendAt: number;
  /** First and last publish, ms (−Infinity before the first). */
  firstSentAt: number;
  lastSentAt: number;
  /** Timed out while the cloud was silent: not resent until heard past it (file header). */
  held: boolean;
}

/**
 * The pure batch window; one per {@link SyncWorker}. Not safe to share. See the file header.
 *
 * @typeParam P — the worker's payload type (a signed `Buffer` in the agent, anything in tests).
 */
export class BatchWindow<P> {
  readonly #o: BatchWindowOptions;
  readonly #slots = new Map<string, Slot<P>>();
  #connected = false;
  #draining = false;
  #cursorSeq = 0;
  /** Ack results taken out of batches and handed out for applying, not yet settled. */
  #applying = 0;
  #tokens: number;
  #tokensAt: number;
  /**
   * The cloud has answered messages published up to here, ms: the highest `firstSentAt` of a
   * batch in flight an ack arrived for (FIFO per session, MQTT 3.1.1 §4.6).
   */
  #heardPast = Number.NEGATIVE_INFINITY;

  constructor(options: BatchWindowOptions) {
    this.#o = options;
    this.#tokens = this.#burst();
    this.#tokensAt = options.now;
  }

  /** Batches in flight (awaiting acks). */
  get inFlight(): number {
    return this.#slots.size;
  }

  /** True while the link is up (between {@link connect} and {@link disconnect}). */
  get connected(): boolean {
    return this.#connected;
  }

  /** Batches held back while the cloud is silent (see the file header). */
  get held(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.held) n += 1;
    return n;
  }

  /**
   * The link came up (CONNACK): every batch in flight is due again, oldest first, held ones
   * too (a broker without the session may have lost them).
   */
  connect(): void {
    this.#connected = true;
    for (const slot of this.#slots.values()) {
      if (slot.attempts > 0) {
        slot.due = 'reconnect';
        slot.held = false;
      }
    }
  }

  /** The link went down: nothing is published until {@link connect}. Batches stay in flight. */
  disconnect(): void {
    this.#connected = false;
  }

  /** Stop opening new batches (the worker is stopping); resends of batches in flight continue. */
  drain(): void {
    this.#draining = true;
  }

  /**
   * The next thing to do at `now`. A `publish` step is taken: the attempt is counted, the batch's
   * resend time set and a token spent. A `fetch` step changes nothing until {@link opened}; a
   * caller that gets no batch out of the records must stop asking (or it is asked again).
   */
  step(now: number): WindowStep<P> {
    if (!this.#connected) return { kind: 'idle' };
    let oldest = true;
    for (const slot of this.#slots.values()) {
      const probe = oldest && slot.attempts > 0;
      if (slot.attempts > 0) oldest = false;
      if (probe && slot.held) {
        // The batches before it were answered: its message may be right behind them.
        slot.held = false;
        slot.resendAt = now + this.#o.policy.ackTimeoutMs;
      }
      const reason = slot.due ?? (slot.resendAt <= now ? 'timeout' : undefined);
      if (reason === undefined) continue;
      if (reason === 'timeout' && !probe && this.#heardPast < slot.lastSentAt) {
        slot.held = true;
        slot.resendAt = Number.POSITIVE_INFINITY;
        continue;
      }
      const wait = this.#takeToken(now);
      if (wait !== undefined) return { kind: 'wait', until: wait };
      slot.attempts += 1;
      slot.due = undefined;
      slot.held = false;
      if (slot.attempts === 1) slot.firstSentAt = now;
      slot.lastSentAt = now;
      slot.resendAt = now + resendDelayMs(slot.attempts, this.#o.policy, this.#o.random);
      return {
        kind: 'publish',
        id: slot.id,
        payload: slot.payload,
        attempt: slot.attempts,
        reason,
        records: slot.keys.size,
        resendAt: slot.resendAt,
      };
    }
    if (this.#draining || this.#slots.size >= this.#o.maxInFlight) return { kind: 'idle' };
    const wait = this.#peekToken(now);
    if (wait !== undefined) return { kind: 'wait', until: wait };
    if (this.#slots.size === 0 && this.#applying === 0) this.#cursorSeq = 0;
    return { kind: 'fetch', afterSeq: this.#cursorSeq };
  }

  /** Adds a packed batch (from a `fetch` step); it is published by the next {@link step}. */
  opened(batch: NewBatch<P>): void {
    if (this.#slots.has(batch.id)) throw new Error(`batch ${batch.id} is already in flight`);
    this.#slots.set(batch.id, {
      id: batch.id,
      payload: batch.payload,
      keys: new Set(batch.keys),
      attempts: 0,
      due: 'first',
      resendAt: Number.POSITIVE_INFINITY,
      firstSentAt: Number.NEGATIVE_INFINITY,
      lastSentAt: Number.NEGATIVE_INFINITY,
      held: false,
    });
    this.#cursorSeq = Math.max(this.#cursorSeq, batch.maxSeq);
  }

  /**
   * An `Acks` message for batch `id` arrived (verified by the worker) at `now` (ms). Returns the
   * results to apply (those for keys the batch still held, each key once), or `undefined` when
   * the batch is not in flight or none of its results is new. The caller applies them and then
   * calls {@link settled} with the same results.
   *
   * The cloud is heard past the batch's first publish: held batches last sent before it are due
   * one `ackTimeoutMs` after `now` (see the file header).
   */
  ack(id: string, results: readonly AckResult[], now: number): AckResult[] | undefined {
    const slot = this.#slots.get(id);
    if (slot === undefined) return undefined;
    if (slot.firstSentAt > this.#heardPast) {
      this.#heardPast = slot.firstSentAt;
      for (const other of this.#slots.values()) {
        if (other.held && other.lastSentAt <= this.#heardPast) {
          other.held = false;
          other.resendAt = now + this.#o.policy.ackTimeoutMs;
        }
      }
    }
    const fresh: AckResult[] = [];
    for (const result of results) if (slot.keys.delete(result.key)) fresh.push(result);
    if (fresh.length === 0) return undefined;
    this.#applying += fresh.length;
    return fresh;
  }

  /**
   * The results of {@link ack} for batch `id` were applied (`ok`) or not. Applied: a batch with no
   * key left leaves the window; returns true then. Not applied: the keys return to the batch,
   * which is resent at its resend time.
   */
  settled(id: string, results: readonly AckResult[], ok: boolean): boolean {
    this.#applying = Math.max(0, this.#applying - results.length);
    const slot = this.#slots.get(id);
    if (slot === undefined) return false;
    if (!ok) {
      for (const r of results) slot.keys.add(r.key);
      return false;
    }
    if (slot.keys.size > 0) return false;
    this.#slots.delete(id);
    return true;
  }

  /** The earliest resend time of a batch in flight, ms; undefined when none waits. */
  nextResendAt(): number | undefined {
    let at: number | undefined;
    for (const slot of this.#slots.values()) {
      if (slot.resendAt !== Number.POSITIVE_INFINITY && (at === undefined || slot.resendAt < at)) {
        at = slot.resendAt;
      }
    }
    return at;
  }

  /** The batches in flight: id, keys still awaiting acks, attempts (a copy, oldest first). */
  batches(): { id: string; keys: string[]; attempts: number }[] {
    return [...this.#slots.values()].map((s) => ({
      id: s.id,
      keys: [...s.keys],
      attempts: s.attempts,
    }));
  }

  /** Forgets every batch (the worker stopped: what was in flight is still pending in the store). */
  reset(): void {
    this.#slots.clear();
    this.#heardPast = Number.NEGATIVE_INFINITY;
    this.#applying = 0;
    this.#cursorSeq = 0;
    this.#draining = false;
  }

  #burst(): number {
    return Math.max(1, this.#o.maxPublishesPerSecond ?? 1);
  }

  #refill(now: number): number {
    const rate = this.#o.maxPublishesPerSecond;
    if (rate === undefined) return Number.POSITIVE_INFINITY;
    return Math.min(
      this.#burst(),
      this.#tokens + (Math.max(0, now - this.#tokensAt) / 1000) * rate,
    );
  }

  /** undefined when a token is available at `now`, else when the next one is, ms. */
  #peekToken(now: number): number | undefined {
    const rate = this.#o.maxPublishesPerSecond;
    if (rate === undefined) return undefined;
    const tokens = this.#refill(now);
    if (tokens >= 1) return undefined;
    return now + Math.ceil(((1 - tokens) / rate) * 1000);
  }

  #takeToken(now: number): number | undefined {
    const rate = this.#o.maxPublishesPerSecond;
    if (rate === undefined) return undefined;
    const wait = this.#peekToken(now);
    if (wait !== undefined) return wait;
    this.#tokens = this.#refill(now) - 1;
    this.#tokensAt = now;
    return undefined;
  }
}
