/**
 * The retention schedule (issue 3 §8): purges settled payments older than the configured number
 * of days, once at start-up and then every interval, on an injected clock. The purge itself is
 * {@link PaymentStore.purgeSettled}; this file only decides when and with which cut-off.
 */
import { isAgentError, type AgentError } from '../common/agent-error.js';
import { isoAt, type Clock, type TimerHandle } from '../common/clock.js';
import { storeError } from './errors.js';
import type { PurgeReport } from './model.js';
import type { PaymentStore } from './payment-store.js';

/** One day in milliseconds. */
const DAY_MS = 86_400_000;

/** Options of {@link startRetention}. */
export interface RetentionOptions {
  store: Pick<PaymentStore, 'purgeSettled'>;
  /** Days a settled payment is kept after its last change; integer 1–3650. */
  acknowledgedDays: number;
  clock: Clock;
  /** Pause between runs, ms; ≥ 60000, default 3600000 (one hour). */
  intervalMs?: number;
  /** Called after each run that purged something. */
  onPurged?: (report: PurgeReport) => void;
  /** Called when a run fails (e.g. POS207 disk full); the next run is still scheduled. */
  onError?: (error: AgentError) => void;
}

/** A running retention schedule. */
export interface RetentionSchedule {
  /** Purges now (what each scheduled run does) and returns what was purged. */
  runOnce(): PurgeReport;
  /** Cancels the next run. */
  stop(): void;
}

/**
 * Runs the purge once now, then every `intervalMs` on `clock`.
 *
 * @throws AgentError POS213 `acknowledgedDays` or `intervalMs` out of range; errors of the
 *   first run go to `onError` like every later one (the agent keeps running).
 */
export function startRetention(options: RetentionOptions): RetentionSchedule {
  const days = options.acknowledgedDays;
  const intervalMs = options.intervalMs ?? 3_600_000;
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    throw storeError(
      'POS213',
      `acknowledgedDays is ${String(days)}; it must be an integer 1–3650 (days)`,
    );
  }
  if (!Number.isInteger(intervalMs) || intervalMs < 60_000) {
    throw storeError(
      'POS213',
      `intervalMs is ${String(intervalMs)}; it must be an integer ≥ 60000 (ms)`,
    );
  }
  let timer: TimerHandle | undefined;
  let stopped = false;
  const runOnce = (): PurgeReport => {
    const report = options.store.purgeSettled(isoAt(options.clock.now() - days * DAY_MS));
    if (report.payments > 0) options.onPurged?.(report);
    return report;
  };
  const tick = (): void => {
    try {
      runOnce();
    } catch (error) {
      if (!isAgentError(error)) throw error;
      options.onError?.(error);
    }
    if (!stopped) timer = options.clock.setTimeout(tick, intervalMs);
  };
  tick();
  return {
    runOnce,
    stop() {
      stopped = true;
      if (timer !== undefined) options.clock.clearTimeout(timer);
    },
  };
}
