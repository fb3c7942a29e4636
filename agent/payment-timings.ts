/**
 * Where a payment's time goes, by stage (issue 9: the offline `POST /v1/payments` misses its
 * target and the bench has to say why; a field tech needs the same answer about a slow terminal).
 * One prom-client histogram, `pos_agent_payment_stage_seconds{stage, path}`, exported by
 * `GET /metrics` (agent/metrics.ts) and read by the bench (bench/payment-http.ts).
 *
 * ```
 *  POST /v1/payments ─► pad_display ─► card_read ─► [pin_entry] ─► store ─────────────► answer
 *                                                  └► store ─► authorization ─► store ┘  (online)
 *                       └──────────────────────────── total ─────────────────────────┘
 * ```
 *
 * | stage | what it times |
 * |-------|---------------|
 * | `pad_display` | message 10 (amount and prompt) until the PIN pad's ACK, with the wait for the pad's previous operation (the last payment's result, message 50 → 51) |
 * | `card_read` | from the read request until a card is read: the customer's time and the pad's |
 * | `pin_entry` | message 30 until the PIN block (31) or no PIN (39): the customer's time |
 * | `authorization` | the online authorization request until the cloud's answer (or its timeout) |
 * | `store` | the durable writes of the outcome: the FULL commit(s) and their store work |
 * | `total` | the whole flow inside the agent, from the payment's start to its committed outcome |
 *
 * `path` is `online` when an authorization was sent, else `offline`. Only payments that reach an
 * outcome (approved, stored, declined) are observed; failed and canceled flows are not. What is
 * not in `total` is the HTTP request and its answer. No label or value carries card data.
 */
import { Histogram } from 'prom-client';

/** A stage of the payment flow; see the file comment. */
export type PaymentStage =
  'pad_display' | 'card_read' | 'pin_entry' | 'authorization' | 'store' | 'total';

/** `online`: an authorization request was sent to the cloud; `offline`: it was not. */
export type PaymentPath = 'online' | 'offline';

/** The histogram's name in `GET /metrics`. */
export const PAYMENT_STAGE_METRIC = 'pos_agent_payment_stage_seconds';

/**
 * Bucket upper bounds, seconds: 0.5 ms (a commit on a fast disk) up to 2 minutes (a customer who
 * takes their time with the card), so both the disk's and the customer's stages fall inside.
 */
export const PAYMENT_STAGE_BUCKETS = [
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
] as const;

/** Count and total of one (stage, path) series, as {@link PaymentStageTimings.totals} reads it. */
export interface StageTotal {
  stage: PaymentStage;
  path: PaymentPath;
  /** Payments observed. */
  count: number;
  /** Sum of their durations, seconds. */
  sumSeconds: number;
}

/**
 * The times of one payment's stages while it runs, measured with a monotonic clock and observed
 * into the histogram once the payment has its outcome ({@link StageClock.finish}).
 */
export class StageClock {
  readonly #nowMs: () => number;
  readonly #started: number;
  readonly #ms = new Map<PaymentStage, number>();

  /** @param nowMs — a monotonic clock, milliseconds (default `performance.now`). */
  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
    this.#started = nowMs();
  }

  /** Runs `fn` and adds its duration (also when it throws) to `stage`. */
  async time<T>(stage: PaymentStage, fn: () => Promise<T>): Promise<T> {
    const t0 = this.#nowMs();
    try {
      return await fn();
    } finally {
      this.#add(stage, this.#nowMs() - t0);
    }
  }

  /** Runs the synchronous `fn` (a store write) and adds its duration to `stage`. */
  timeSync<T>(stage: PaymentStage, fn: () => T): T {
    const t0 = this.#nowMs();
    try {
      return fn();
    } finally {
      this.#add(stage, this.#nowMs() - t0);
    }
  }

  /** True when `stage` was timed at least once. */
  has(stage: PaymentStage): boolean {
    return this.#ms.has(stage);
  }

  /**
   * Observes every timed stage and `total` (since construction) into `timings`, under the path
   * the flow took (`online` when `authorization` was timed).
   */
  finish(timings: PaymentStageTimings): void {
    const path: PaymentPath = this.has('authorization') ? 'online' : 'offline';
    for (const [stage, ms] of this.#ms) timings.observe(stage, path, ms / 1000);
    timings.observe('total', path, (this.#nowMs() - this.#started) / 1000);
  }

  #add(stage: PaymentStage, ms: number): void {
    this.#ms.set(stage, (this.#ms.get(stage) ?? 0) + ms);
  }
}

/**
 * Owns the `pos_agent_payment_stage_seconds` histogram. It is registered in no registry of its
 * own: agent/metrics.ts adds it to the agent's registry, so there is one copy of the figures.
 */
export class PaymentStageTimings {
  /** The prom-client histogram, labels `stage` and `path`. */
  readonly histogram = new Histogram<'stage' | 'path'>({
    name: PAYMENT_STAGE_METRIC,
    help: 'Duration of each stage of a payment with an outcome, seconds (stage: pad_display, card_read, pin_entry, authorization, store, total; path: online when an authorization was sent)',
    labelNames: ['stage', 'path'],
    buckets: [...PAYMENT_STAGE_BUCKETS],
    registers: [],
  });

  /** Starts timing one payment; `nowMs` is a monotonic clock in milliseconds. */
  start(nowMs: () => number = () => performance.now()): StageClock {
    return new StageClock(nowMs);
  }

  /**
   * Adds one observation.
   *
   * @param seconds — ≥ 0; a negative or non-finite value (a clock that went backwards) is
   *   dropped, not observed.
   */
  observe(stage: PaymentStage, path: PaymentPath, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.histogram.observe({ stage, path }, seconds);
  }

  /** Count and sum of every observed (stage, path) series, read from the histogram. */
  async totals(): Promise<StageTotal[]> {
    const { values } = await this.histogram.get();
    const byKey = new Map<string, StageTotal>();
    for (const value of values) {
      const suffix = value.metricName?.slice(PAYMENT_STAGE_METRIC.length);
      if (suffix !== '_count' && suffix !== '_sum') continue;
      const stage = value.labels.stage as PaymentStage;
      const path = value.labels.path as PaymentPath;
      const key = `${stage}/${path}`;
      const total = byKey.get(key) ?? { stage, path, count: 0, sumSeconds: 0 };
      if (suffix === '_count') total.count = value.value;
      else total.sumSeconds = value.value;
      byKey.set(key, total);
    }
    return [...byKey.values()];
  }
}
