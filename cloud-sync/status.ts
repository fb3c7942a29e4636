/**
 * The device's retained, signed status on `{p}/{d}/status` (architecture.md §5): `online` with the
 * queue figures while connected, `offline` as the last will and at a clean stop. Publishes on
 * queue changes are throttled to one per `throttleMs`.
 */
import { type Clock, type TimerHandle, isoAt } from '../common/clock.js';
import { type EnvelopeSigner, signEnvelope } from './envelope.js';
import { type Status, StatusSchema } from './schemas.js';

/** Queue figures for the status: depth (not yet acked), oldest unacked time, dead count. */
export type QueueStats = { depth: number; oldestAt: string | null; dead: number };

/** What {@link StatusReporter} reads and publishes through. */
export interface StatusReporterOptions {
  clock: Clock;
  /** Agent version. */
  version: string;
  /** The current uplink signer (it may rotate). */
  signer: () => EnvelopeSigner;
  /** The queue figures; a throwing source reports an empty queue. */
  queueStats: () => QueueStats;
  /** True while a status may be published (connected and started). */
  canPublish: () => boolean;
  /** Retained QoS 1 publish of the payload. */
  publish: (payload: Buffer) => Promise<unknown>;
  /** Least time between two throttled publishes, ms. */
  throttleMs: number;
}

/** Builds, publishes and throttles the status. */
export class StatusReporter {
  readonly #o: StatusReporterOptions;
  #timer: TimerHandle | undefined;
  #lastAt = Number.NEGATIVE_INFINITY;

  constructor(options: StatusReporterOptions) {
    this.#o = options;
  }

  /** The signed status envelope for `state`, with the queue figures now. */
  payload(state: 'online' | 'offline'): Buffer {
    let queue: Status['queue'];
    try {
      const stats = this.#o.queueStats();
      queue = { depth: stats.depth, oldestAt: stats.oldestAt, dead: stats.dead };
    } catch {
      queue = { depth: 0, oldestAt: null, dead: 0 };
    }
    const status: Status = {
      state,
      at: isoAt(this.#o.clock.now()),
      version: this.#o.version,
      queue,
    };
    return signEnvelope(status, this.#o.signer(), StatusSchema);
  }

  /** Publishes `online` now (connect). Errors are passed to `onError`. */
  publishNow(onError: (error: unknown) => void): void {
    if (!this.#o.canPublish()) return;
    this.#lastAt = this.#o.clock.now();
    this.#o.publish(this.payload('online')).catch(onError);
  }

  /** Publishes `online` at most once per `throttleMs` (queue changed). */
  schedule(onError: (error: unknown) => void): void {
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lastAt + this.#o.throttleMs - this.#o.clock.now());
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      this.publishNow(onError);
    }, wait);
  }

  /** Cancels a scheduled publish. */
  cancel(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
