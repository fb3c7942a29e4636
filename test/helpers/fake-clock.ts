/**
 * The one fake {@link Clock} of the tests (STYLE habit 2, issue 15): time moves only when the
 * test calls {@link FakeClock.advance}, and timers that fall due run in time order (equal times
 * in the order they were set). It replaces the four hand-written clocks the tests used to hold.
 *
 * Use it where the code under test takes a `Clock`; use `vi.useFakeTimers()` only where the code
 * calls the global timers itself. Tests on a fake clock that must wait for I/O poll with
 * `setImmediate` (test/helpers/wait.ts), never with a sleep.
 */
import type { Clock, TimerHandle } from '../../common/clock.js';

/** 2026-11-21T10:00:00.000Z, the instant every fake clock starts at unless told otherwise. */
export const FAKE_CLOCK_START_MS = Date.UTC(2026, 10, 21, 10, 0, 0);

/** What a {@link FakeClock} takes. */
export interface FakeClockOptions {
  /**
   * Milliseconds `now()` itself moves time forward after each call (timers are not fired by it),
   * for code that needs strictly increasing timestamps without the test advancing the clock
   * between calls (the payment store orders events by time). @default 0
   */
  stepMs?: number;
}

interface FakeTimer {
  id: number;
  at: number;
  callback: () => void;
}

/** A clock whose time only moves by {@link FakeClock.advance} (and `stepMs` per `now()`). */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #stepMs: number;
  readonly #timers = new Map<number, FakeTimer>();

  /**
   * @param start — initial time: epoch ms or ISO 8601 text. @default {@link FAKE_CLOCK_START_MS}
   */
  constructor(start: number | string = FAKE_CLOCK_START_MS, options: FakeClockOptions = {}) {
    this.#now = typeof start === 'string' ? Date.parse(start) : start;
    if (Number.isNaN(this.#now)) throw new Error(`FakeClock: not an instant: ${String(start)}`);
    this.#stepMs = options.stepMs ?? 0;
  }

  /** The fake epoch ms; moves on by `stepMs` after each call. */
  now(): number {
    this.#now += this.#stepMs;
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, delayMs), callback });
    return { id } as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete((handle as unknown as { id: number }).id);
  }

  /** Timers not fired or cleared yet. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Delays (ms from now) of the timers not fired or cleared yet, ascending. */
  pending(): number[] {
    return [...this.#timers.values()].map((t) => t.at - this.#now).sort((a, b) => a - b);
  }

  /**
   * Moves time forward by `ms` (≥ 0), firing every timer that falls due, in order; a timer a
   * callback sets runs in the same call when it falls due within the window.
   */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers.values())
        if (
          t.at <= target &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        )
          next = t;
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = Math.max(this.#now, target);
  }
}
