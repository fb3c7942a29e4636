/**
 * Injected time (STYLE habit 2): every timeout, backoff and deadline in the agent goes through a
 * `Clock`, so tests drive time with fake timers instead of sleeps.
 */

/** Opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: unique symbol } | ReturnType<typeof setTimeout>;

/** A source of wall-clock time and one-shot timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch (UTC). */
  now(): number;
  /** Calls `callback` once after `delayMs` milliseconds (≥ 0). */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer; a handle that already fired or was cleared is ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `Date.now()` and the global timers (which vitest's fake timers replace). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** ISO 8601 UTC text of an epoch-milliseconds instant, e.g. `2026-11-21T09:54:21.000Z`. */
export function isoAt(epochMs: number): string {
  return new Date(epochMs).toISOString();
}
