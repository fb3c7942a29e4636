/**
 * The fold of a batch's events (issue 17): what a batch and its exceptions are after each
 * `batch_closed`, `batch_reconciled` and `exception_resolved` event. Pure. The write path
 * (batch-tables.ts) writes what it makes of each new event; `BatchBook.checkProjection` folds
 * every batch again and compares with the rows, like projection.ts does for payments.
 */
import { canonicalJson } from './hash-chain.js';
import type { Batch, ExceptionFold, ExceptionKind, Resolution } from './batch-types.js';

/** A batch as its events make it. */
export interface BatchFold {
  state: 'open' | 'closed';
  closedAt: string | null;
  forced: boolean;
  /** Canonical JSON of the totals, or null while open. */
  totals: string | null;
  firstEventSeq: number | null;
  lastEventSeq: number | null;
  chainHead: string | null;
  closeSeq: number | null;
  reconciliation: Batch['reconciliation'];
  reconciledAt: string | null;
  exceptions: Map<number, ExceptionFold>;
}

/** A batch event as the fold sees it. */
export interface BatchEvent {
  seq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

/** A newly opened batch: no events yet. */
export function openBatchFold(): BatchFold {
  return {
    state: 'open',
    closedAt: null,
    forced: false,
    totals: null,
    firstEventSeq: null,
    lastEventSeq: null,
    chainHead: null,
    closeSeq: null,
    reconciliation: 'none',
    reconciledAt: null,
    exceptions: new Map(),
  };
}

/**
 * The batch after `event` (a new object; `fold` is not changed):
 * - `batch_closed` `{ closedAt, forced, totals, firstEventSeq, lastEventSeq, chainHead }` → closed,
 *   awaiting the cloud;
 * - `batch_reconciled` `{ kind, raised: [exception…] }` → the raised exceptions open; after a
 *   `close` report, `matched` when none is open, else `exceptions`;
 * - `exception_resolved` `{ exceptionId, resolution, note }` → the exception resolved; a closed
 *   batch whose last open exception this was becomes `resolved`.
 */
export function applyBatchEvent(fold: BatchFold, event: BatchEvent): BatchFold {
  const next: BatchFold = { ...fold, exceptions: new Map(fold.exceptions) };
  const d = event.data;
  const openCount = (): number =>
    [...next.exceptions.values()].filter((e) => e.state === 'open').length;
  switch (event.type) {
    case 'batch_closed':
      next.state = 'closed';
      next.closedAt = String(d.closedAt);
      next.forced = d.forced === true;
      next.totals = canonicalJson(d.totals);
      next.firstEventSeq = typeof d.firstEventSeq === 'number' ? d.firstEventSeq : null;
      next.lastEventSeq = Number(d.lastEventSeq);
      next.chainHead = String(d.chainHead);
      next.closeSeq = event.seq;
      next.reconciliation = 'awaiting_cloud';
      break;
    case 'batch_reconciled': {
      for (const raised of (d.raised ?? []) as Array<Record<string, unknown>>) {
        const id = Number(raised.id);
        next.exceptions.set(id, {
          id,
          kind: raised.kind as ExceptionKind,
          foundBy: raised.foundBy === 'drift' ? 'drift' : 'close',
          idempotencyKey: typeof raised.key === 'string' ? raised.key : null,
          paymentId: typeof raised.paymentId === 'string' ? raised.paymentId : null,
          detail: (raised.detail ?? {}) as Record<string, unknown>,
          raisedSeq: event.seq,
          raisedAt: event.at,
          state: 'open',
          resolution: null,
          note: null,
          resolvedSeq: null,
          resolvedAt: null,
        });
      }
      if (d.kind === 'close' && next.state === 'closed') {
        next.reconciliation = openCount() > 0 ? 'exceptions' : 'matched';
        next.reconciledAt = event.at;
      }
      break;
    }
    case 'exception_resolved': {
      const id = Number(d.exceptionId);
      const known = next.exceptions.get(id);
      if (known !== undefined) {
        next.exceptions.set(id, {
          ...known,
          state: 'resolved',
          resolution: d.resolution as Resolution,
          note: typeof d.note === 'string' ? d.note : null,
          resolvedSeq: event.seq,
          resolvedAt: event.at,
        });
      }
      if (next.state === 'closed' && next.reconciliation === 'exceptions' && openCount() === 0) {
        next.reconciliation = 'resolved';
        next.reconciledAt = event.at;
      }
      break;
    }
    default:
      break;
  }
  return next;
}
