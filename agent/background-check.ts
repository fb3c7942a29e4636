/**
 * The agent's background integrity pass (issue 9 §4): start-up verifies only the events after the
 * newest checkpoint, so the whole chain and every payment are checked here, a page per turn of the
 * event loop, without holding payments up. A pass that verifies writes a new checkpoint; one that
 * does not logs the problems (and reports them to `onProblems`).
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

/**
 * Starts one full pass over `store` (see file comment).
 *
 * @param onProblems — called once when the chain or the projection does not verify.
 */
export function startBackgroundCheck(
  store: PaymentStore,
  logger: Logger,
  onProblems: (check: { chain: ChainReport; projection: ProjectionReport }) => void,
): BackgroundCheck {
  let stopped = false;
  const started = Date.now();
  const check = store.integrity.fullCheck();
  const done = new Promise<{ chain: ChainReport; projection: ProjectionReport } | undefined>(
    (resolve) => {
      const turn = (): void => {
        if (stopped) {
          resolve(undefined);
          return;
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
      };
      setImmediate(turn);
    },
  );
  return {
    done,
    stop: () => {
      stopped = true;
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
