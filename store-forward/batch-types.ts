/**
 * The shapes of reconciliation (issue 17, docs/reconciliation.md): exception kinds and their
 * resolutions, the cloud's answer to a batch report, and what `pos-agent batch …` and
 * `/v1/status` print. Types only, no logic: batches.ts and its batch-* files use them, and the
 * agent imports them from here.
 */
import type { CloudState } from '../common/reconciliation.js';
import type { BatchTotals } from './model.js';

/** Kinds of exception (docs/reconciliation.md has a runbook for each). */
export const EXCEPTION_KINDS = [
  'missing_at_cloud',
  'missing_here',
  'amount_differs',
  'state_differs',
  'charged_declined_here',
  'totals_differ',
] as const;
/** One of {@link EXCEPTION_KINDS}. */
export type ExceptionKind = (typeof EXCEPTION_KINDS)[number];

/** How a tech resolves an exception; each is an `exception_resolved` event. */
export const RESOLUTIONS = ['requeue', 'void', 'accept'] as const;
/** One of {@link RESOLUTIONS}. */
export type Resolution = (typeof RESOLUTIONS)[number];

/**
 * The resolutions each kind allows: `requeue` sends the payment's record again (the cloud lost
 * it) and matches again; `void` undoes the charge (here: cancels the payment and sends its void;
 * there: sends a void for what the cloud charged) and matches again; `accept` records a person's
 * decision with a note and changes no money.
 */
export const ALLOWED_RESOLUTIONS: { readonly [K in ExceptionKind]: readonly Resolution[] } = {
  missing_at_cloud: ['requeue', 'void', 'accept'],
  missing_here: ['accept'],
  amount_differs: ['void', 'accept'],
  state_differs: ['void', 'accept'],
  charged_declined_here: ['void', 'accept'],
  totals_differ: ['accept'],
};

/**
 * The cloud's signed answer to a batch record (the `batch` field of its ack result): its totals
 * for the same batch from its ledger and its view of every payment the report named, plus the
 * payments of this terminal it has that the report did not name.
 */
export interface CloudBatchAnswer {
  id: string;
  kind: 'close' | 'check';
  /** ISO 8601 UTC. */
  asOf: string;
  totals: BatchTotals;
  payments: Array<{
    key: string;
    amountMinor: number;
    currency: string;
    brand?: string | undefined;
    state: CloudState;
  }>;
}

/** A batch as `pos-agent batch show` prints it. */
export interface Batch {
  id: string;
  terminal: string;
  state: 'open' | 'closed';
  openedAt: string;
  closedAt: string | null;
  forced: boolean;
  /** The totals at the close; for the open batch, the running totals now. */
  totals: BatchTotals;
  firstEventSeq: number | null;
  lastEventSeq: number | null;
  /** Chain head at the close, unpadded base64url; null while open. */
  chainHead: string | null;
  /** Seq of the `batch_closed` event; null while open. */
  closeSeq: number | null;
  /** `none` (open), `awaiting_cloud`, `matched`, `exceptions`, `resolved` (all worked). */
  reconciliation: 'none' | 'awaiting_cloud' | 'matched' | 'exceptions' | 'resolved';
  reconciledAt: string | null;
  openExceptions: number;
}

/**
 * An exception as its events make it (the fold of batch-fold.ts, and the `batch_exceptions` row
 * it projects to).
 */
export interface ExceptionFold {
  id: number;
  kind: ExceptionKind;
  /** `close` (found when the batch closed) or `drift` (found by a check between closes). */
  foundBy: 'close' | 'drift';
  idempotencyKey: string | null;
  paymentId: string | null;
  /** What each side says: `{ here?: {amountMinor, currency, state}, cloud?: {…} }`. */
  detail: Record<string, unknown>;
  raisedSeq: number;
  raisedAt: string;
  state: 'open' | 'resolved';
  resolution: Resolution | null;
  note: string | null;
  resolvedSeq: number | null;
  resolvedAt: string | null;
}

/** An exception as `pos-agent batch exceptions` prints it: its fold, its batch, what it allows. */
export interface BatchException extends ExceptionFold {
  batchId: string;
  /** The resolutions this kind allows. */
  allowed: readonly Resolution[];
}

/** Result of `BatchBook.close` (batches.ts). */
export interface CloseResult {
  batch: Batch;
  /** The batch opened by the close. */
  next: Batch;
  /** Payments whose records had not reached the cloud (a forced close lists them). */
  unforwarded: Array<{ key: string; paymentId: string; record: string }>;
  /** The key of the batch record sent to the cloud. */
  recordKey: string;
}

/** What the status page and `/v1/status` show. */
export interface BatchStatus {
  open: { id: string; openedAt: string; totals: BatchTotals };
  lastClosed: {
    id: string;
    closedAt: string;
    reconciliation: Batch['reconciliation'];
    totals: BatchTotals;
  } | null;
  openExceptions: number;
  exceptionsByKind: Partial<Record<ExceptionKind, number>>;
  /** The last drift check: when it was answered and whether it found anything. */
  lastCheck: { at: string; result: 'matched' | 'exceptions' } | null;
}
