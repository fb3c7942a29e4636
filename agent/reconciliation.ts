/**
 * Reconciliation in the running agent (issue 17, docs/reconciliation.md): the store does the
 * batches, the close, the match with the cloud's answer and the exceptions
 * (store-forward/batches.ts); this module runs them as a monitored system:
 *
 * ```
 *  every driftCheckSeconds ─► store.batches.queueCheck() ─► sync ─► cloud answer ─► match
 *  every minute            ─► closeAt passed today and not closed since? ─► close (retried)
 *  after every ack set     ─► new exceptions? ─► log (warn, one line each) + counters
 *  close(force)            ─► `close_batch` cloud command (and tests)
 * ```
 *
 * Times come from the injected clock; the daily close reads the LOCAL time of day (the store's
 * business day), everything else is UTC.
 */
import type { Clock, TimerHandle } from '../common/clock.js';
import type { BatchStatus, CloseResult, ExceptionKind } from '../store-forward/batch-types.js';
import type { PaymentStore } from '../store-forward/payment-store.js';
import type { Logger } from './logger.js';

/** Options of {@link startReconciliation}. */
export interface ReconciliationOptions {
  store: PaymentStore;
  logger: Logger;
  clock: Clock;
  /** The agent's device id: the terminal of the batches it opens. */
  terminal: string;
  /** Wakes the sync worker after a batch record was queued. */
  notifySync: () => void;
  /** Local "HH:MM" of the daily close; undefined: no daily close. */
  closeAt?: string | undefined;
  /** Seconds between drift checks; 0 = off. */
  driftCheckSeconds: number;
}

/** Counters for `/metrics`. */
export interface ReconciliationCounters {
  /** Exceptions raised since start, by kind and how they were found. */
  raised: Partial<Record<`${ExceptionKind}:${'close' | 'drift'}`, number>>;
  /** Batches closed by this agent since start (CLI closes in another process not counted). */
  closed: number;
  /** Drift checks queued since start. */
  checks: number;
}

/** The running reconciliation; {@link startReconciliation}. */
export interface Reconciliation {
  /** Closes the open batch now (POS601 unforwarded unless `force`, POS602 a payment in progress). */
  close(force: boolean): CloseResult;
  /** The batch part of `/v1/status`. */
  status(): BatchStatus;
  counters(): ReconciliationCounters;
  /** Looks for exceptions raised since the last look (called after every ack set). */
  noteAcks(): void;
  stop(): void;
}

/** Starts the drift check and daily close timers; see the file comment. */
export function startReconciliation(options: ReconciliationOptions): Reconciliation {
  const { store, logger, clock } = options;
  const counters: ReconciliationCounters = { raised: {}, closed: 0, checks: 0 };
  let lastSeenId = Math.max(
    0,
    ...store.batches.exceptions({ all: true, limit: 1 }).map((e) => e.id),
  );
  let driftTimer: TimerHandle | undefined;
  let closeTimer: TimerHandle | undefined;
  let stopped = false;

  const noteAcks = (): void => {
    const fresh = store.batches
      .exceptions({ all: true, limit: 100 })
      .filter((e) => e.id > lastSeenId)
      .sort((a, b) => a.id - b.id);
    for (const e of fresh) {
      lastSeenId = Math.max(lastSeenId, e.id);
      const name = `${e.kind}:${e.foundBy}` as const;
      counters.raised[name] = (counters.raised[name] ?? 0) + 1;
      logger.warn(
        {
          exceptionId: e.id,
          batchId: e.batchId,
          kind: e.kind,
          foundBy: e.foundBy,
          idempotencyKey: e.idempotencyKey,
          paymentId: e.paymentId,
          detail: e.detail,
        },
        e.foundBy === 'drift'
          ? 'reconciliation drift: the cloud disagrees with the open batch; see `pos-agent batch exceptions`'
          : 'reconciliation exception at the batch close; see `pos-agent batch exceptions`',
      );
    }
    const closed = store.batches.listClosed(3).filter((b) => b.reconciliation === 'matched');
    for (const b of closed) {
      if (b.reconciledAt !== null && !reported.has(b.id)) {
        reported.add(b.id);
        logger.info({ batchId: b.id, totals: b.totals.byCurrency }, 'batch matched the cloud');
      }
    }
  };
  const reported = new Set<string>(
    store.batches
      .listClosed(3)
      .filter((b) => b.reconciliation === 'matched')
      .map((b) => b.id),
  );

  const close = (force: boolean): CloseResult => {
    const result = store.batches.close({ force, terminal: options.terminal });
    counters.closed += 1;
    logger.info(
      {
        batchId: result.batch.id,
        next: result.next.id,
        totals: result.batch.totals.byCurrency,
        unforwarded: result.unforwarded.length,
        forced: force,
      },
      'batch closed; its report goes to the cloud for matching',
    );
    options.notifySync();
    return result;
  };

  const driftTick = (): void => {
    driftTimer = undefined;
    if (stopped) return;
    try {
      const key = store.batches.queueCheck();
      if (key !== undefined) {
        counters.checks += 1;
        logger.debug({ record: key }, 'drift check queued');
        options.notifySync();
      }
    } catch (error) {
      logger.warn({ err: error }, 'drift check could not be queued; tried again later');
    }
    driftTimer = clock.setTimeout(driftTick, options.driftCheckSeconds * 1000);
  };
  if (options.driftCheckSeconds > 0) {
    driftTimer = clock.setTimeout(driftTick, options.driftCheckSeconds * 1000);
  }

  const closeAt = options.closeAt;
  const closeTick = (): void => {
    closeTimer = undefined;
    if (stopped || closeAt === undefined) return;
    try {
      const due = dueCloseAt(clock.now(), closeAt);
      const open = store.batches.current();
      if (Date.parse(open.openedAt) < due && clock.now() >= due) close(false);
    } catch (error) {
      logger.warn({ err: error }, 'daily batch close not possible yet; tried again in a minute');
    }
    closeTimer = clock.setTimeout(closeTick, 60_000);
  };
  if (closeAt !== undefined) closeTimer = clock.setTimeout(closeTick, 1000);

  return {
    close,
    status: () => store.batches.status(),
    counters: () => ({ ...counters, raised: { ...counters.raised } }),
    noteAcks,
    stop() {
      stopped = true;
      if (driftTimer !== undefined) clock.clearTimeout(driftTimer);
      if (closeTimer !== undefined) clock.clearTimeout(closeTimer);
    },
  };
}

/**
 * The epoch ms of the most recent daily close time at or before `nowMs`, in local time: today's
 * `HH:MM` if it has passed, else yesterday's.
 */
export function dueCloseAt(nowMs: number, closeAt: string): number {
  const [hh, mm] = closeAt.split(':').map(Number) as [number, number];
  const today = new Date(nowMs);
  today.setHours(hh, mm, 0, 0);
  const at = today.getTime();
  if (at <= nowMs) return at;
  const yesterday = new Date(at);
  yesterday.setDate(yesterday.getDate() - 1);
  return yesterday.getTime();
}
