/**
 * The agent's background integrity pass (issue 9 §4): start-up verifies only the events after the
 * newest checkpoint, so the whole chain and every payment are checked here, a page per turn of the
 * event loop, without holding payments up. A pass that verifies writes a new checkpoint; one that
 * does not logs the problems (and reports them to `onProblems`).
 *
 * The pass waits until the start-up window is over (`delayMs` after it is started) and then runs
 * a page only while the agent is idle (`isBusy()` false: no payment at the PIN pad, no batch
 * awaiting acks): so start-up time and memory with a long history stay those of an empty store,
 * and a payment or a drain never waits behind a page of the pass.
 */
import type { ChainReport, ProjectionReport } from '../store-forward/model.js';
import type { PaymentStore } from '../store-forward/payment-store.js';
import type { Logger } from './logger.js';

/** A running background pass. */
export interface BackgroundCheck {
  /** Resolves with the outcome when the pass has finished (or was stopped: `undefined`). */
  readonly done: Promise<{ chain: ChainReport; projection: ProjectionReport } | undefined>;
  /** Stops after the current page. */
  stop(): void;
}

/** When the background pass runs; see the file comment. */
export interface BackgroundCheckTiming {
  /** Wait before the first page, ms (the start-up window). @default 5000 */
  delayMs?: number;
  /** True while the agent is busy; the pass then waits `busyRetryMs` before its next page. */
  isBusy?: () => boolean;
  /** Wait while busy, ms. @default 100 */
  busyRetryMs?: number;
  /** Busy for longer than this, a page runs anyway (the pass ends under load too), ms. @default 60000 */
  maxBusyWaitMs?: number;
}

/** Default start-up window before the background pass: 5 s. */
export const BACKGROUND_CHECK_DELAY_MS = 5000;

/**
 * Starts one full pass over `store` (see file comment).
 *
 * @param onProblems — called once when the chain or the projection does not verify.
 */
export function startBackgroundCheck(
  store: PaymentStore,
  logger: Logger,
  onProblems: (check: { chain: ChainReport; projection: ProjectionReport }) => void,
  timing: BackgroundCheckTiming = {},
): BackgroundCheck {
  type Outcome = { chain: ChainReport; projection: ProjectionReport } | undefined;
  const isBusy = timing.isBusy ?? (() => false);
  const busyRetryMs = timing.busyRetryMs ?? 100;
  const maxBusyWaitMs = timing.maxBusyWaitMs ?? 60_000;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let started = 0;
  let busySince: number | undefined;
  let check: ReturnType<PaymentStore['integrity']['fullCheck']> | undefined;
  let resolve: (outcome: Outcome) => void = () => undefined;
  const done = new Promise<Outcome>((r) => {
    resolve = r;
  });
  const later = (ms: number): void => {
    // unref: a pass waiting for its turn never keeps the process alive.
    timer = setTimeout(turn, ms);
    timer.unref();
  };
  function turn(): void {
    timer = undefined;
    if (stopped) return;
    if (isBusy()) {
      busySince ??= Date.now();
      // Under load without pause, a page still runs now and then: the pass ends in bounded time.
      if (Date.now() - busySince < maxBusyWaitMs) {
        later(busyRetryMs);
        return;
      }
    }
    busySince = undefined;
    if (check === undefined) {
      started = Date.now();
      check = store.integrity.fullCheck();
    }
    let step;
    try {
      step = check.step();
    } catch (error) {
      // A closed or failing store (POS206/POS207): the pass ends; verify/doctor still work.
      logger.warn({ err: error }, 'background integrity pass stopped');
      resolve(undefined);
      return;
    }
    if (!step.done) {
      setImmediate(turn);
      return;
    }
    if (step.chain.ok && step.projection.ok) {
      try {
        store.integrity.saveCheckpoint(step.head);
      } catch (error) {
        logger.warn(
          { err: error },
          'could not save the chain checkpoint; the next start walks further',
        );
      }
      logger.info(
        { events: step.head.events, ms: Date.now() - started },
        'background integrity pass: the whole hash chain and every payment verify',
      );
    } else {
      onProblems(step);
    }
    resolve({ chain: step.chain, projection: step.projection });
  }
  later(timing.delayMs ?? BACKGROUND_CHECK_DELAY_MS);
  return {
    done,
    stop: () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      resolve(undefined);
    },
  };
}

/** `value` without its `undefined` properties (for options under `exactOptionalPropertyTypes`). */
export function definedOnly<T extends object>(
  value: T,
): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
