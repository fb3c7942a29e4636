/**
 * Reconciliation (issue 17, docs/reconciliation.md): terminal batches that close with their
 * totals, match the cloud's ledger, and raise exceptions a person can work. `BatchBook` is
 * `PaymentStore.batches`.
 *
 * ```
 *  payment created ─► joins the open batch (trigger, migration 5)
 *  close()  ─► batch_closed event (totals, first/last event seq, chain head) + next batch opened
 *           └► batch record `<batch>.close.<n>` in the outbox's seq order ─► cloud
 *  cloud ack { batch: its totals and per-payment view } (signed) ─► stored as the record's answer
 *  afterAcks ─► once every earlier record of the batch is acknowledged: compare per payment
 *           (idempotency key, amount, state) and per currency/brand ─► batch_reconciled event:
 *           matched, or exceptions (missing_at_cloud, missing_here, amount_differs,
 *           state_differs, charged_declined_here, totals_differ)
 *  resolve(id, requeue | void | accept) ─► exception_resolved event (+ records sent again and a
 *           new match)
 *  queueCheck() ─► the same report for the OPEN batch (`<batch>.check.<n>`): drift between closes
 * ```
 *
 * The batch rows (`batches`, `batch_exceptions`) are a projection of the batch events, folded by
 * {@link applyBatchEvent} on the write path and again by {@link BatchBook.checkProjection}, like
 * the payments (projection.ts). The events are on the one hash chain (kernel.ts).
 *
 * Comparison rules (the agent's view is the payment's state once every record of the batch sent
 * before the report is acknowledged; a void queued after the report counts as not yet there):
 *
 * | here \ cloud            | charged                   | declined / voided | absent              |
 * |-------------------------|---------------------------|-------------------|---------------------|
 * | charged                 | amount_differs if amounts | state_differs     | missing_at_cloud    |
 * | not charged             | charged_declined_here     | —                 | —                   |
 * | absent                  | missing_here              | —                 | —                   |
 */
import type Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { canonicalJson } from './hash-chain.js';
import type { StoreKernel } from './kernel.js';
import {
  APPROVED_STATES,
  IN_PROGRESS_STATES,
  RECON_STATES,
  type AckResult,
  type Amounts,
  type AppliedAck,
  type BatchReportLine,
  type BatchReportRecord,
  type BatchTotals,
  type CardBrand,
  type OutboxRecord,
  type Payment,
  type PaymentState,
  type ReconState,
  type UplinkRecord,
} from './model.js';
import type { RecordKind, SqliteOutbox } from './outbox.js';
import { reconError } from './reconciliation-errors.js';
import { toPayment, type PaymentRow } from './rows.js';
import { safeReason } from './validate.js';

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

/** The cloud's state of a payment in its answer. */
export type CloudState = 'charged' | 'declined' | 'voided';

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

/** An exception as `pos-agent batch exceptions` prints it. */
export interface BatchException {
  id: number;
  batchId: string;
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
  /** The resolutions this kind allows. */
  allowed: readonly Resolution[];
}

/** Result of {@link BatchBook.close}. */
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

// ---------------------------------------------------------------------------------------------
// The fold (shared by the write path and the check)

interface ExceptionFold {
  id: number;
  kind: ExceptionKind;
  foundBy: 'close' | 'drift';
  key: string | null;
  paymentId: string | null;
  detail: Record<string, unknown>;
  raisedSeq: number;
  raisedAt: string;
  state: 'open' | 'resolved';
  resolution: Resolution | null;
  note: string | null;
  resolvedSeq: number | null;
  resolvedAt: string | null;
}

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
          key: typeof raised.key === 'string' ? raised.key : null,
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

// ---------------------------------------------------------------------------------------------
// Pure helpers

/** The reconciliation state of a payment (see {@link RECON_STATES}). */
export function reconStateOf(payment: {
  state: PaymentState;
  approval?: 'online' | 'offline' | null | undefined;
}): ReconState {
  switch (payment.state) {
    case 'approved':
      // Online approvals always carry approval `online`; a payment stored without one (the
      // walking skeleton's createPayment) was approved offline.
      return payment.approval === 'online' ? 'approved_online' : 'approved_offline';
    case 'confirmed':
      return payment.approval === 'online' ? 'approved_online' : 'approved_offline';
    case 'stored':
    case 'forwarded':
      return 'pending_forward';
    case 'declined':
      return 'declined';
    case 'reversed':
      return 'reversed';
    case 'canceled':
      return payment.approval === undefined || payment.approval === null
        ? 'not_completed'
        : 'voided';
    default:
      return 'not_completed';
  }
}

/** True for the states in which money is taken: approved online or offline, pending forward. */
export function isCharged(state: ReconState | CloudState): boolean {
  return (
    state === 'charged' ||
    state === 'approved_online' ||
    state === 'approved_offline' ||
    state === 'pending_forward'
  );
}

function add(map: Record<string, Amounts>, key: string, amountMinor: number, count = 1): void {
  const known = map[key] ?? { count: 0, amountMinor: 0 };
  known.count += count;
  known.amountMinor += amountMinor;
  map[key] = known;
}

/**
 * Totals of payment lines: all of them in `count` and `byState`; the charged ones (see
 * {@link isCharged}) in `byCurrency` and `byBrand`.
 */
export function totalsOf(
  lines: ReadonlyArray<{
    amountMinor: number;
    currency: string;
    brand?: string | undefined;
    state: string;
    count?: number;
  }>,
): BatchTotals {
  const totals: BatchTotals = { count: 0, byCurrency: {}, byBrand: {}, byState: {} };
  for (const line of lines) {
    const n = line.count ?? 1;
    totals.count += n;
    const byState = (totals.byState[line.state] ??= {});
    add(byState, line.currency, line.amountMinor, n);
    if (!isCharged(line.state as ReconState)) continue;
    add(totals.byCurrency, line.currency, line.amountMinor, n);
    const byBrand = (totals.byBrand[line.brand ?? 'unknown'] ??= {});
    add(byBrand, line.currency, line.amountMinor, n);
  }
  return totals;
}

/** One finding of {@link compareBatch}. */
export interface Finding {
  kind: ExceptionKind;
  key: string | null;
  paymentId: string | null;
  detail: Record<string, unknown>;
}

/**
 * Compares the agent's view of a batch with the cloud's answer, per payment (idempotency key,
 * amount, state: the table in the file comment) and per currency and brand of the charged
 * payments; a totals difference that no payment explains is `totals_differ`.
 */
export function compareBatch(
  here: ReadonlyArray<{
    key: string;
    paymentId: string | null;
    amountMinor: number;
    currency: string;
    brand?: string | undefined;
    state: ReconState;
  }>,
  cloud: CloudBatchAnswer,
): Finding[] {
  const findings: Finding[] = [];
  const there = new Map(cloud.payments.map((p) => [p.key, p]));
  const side = (p: { amountMinor: number; currency: string; state: string }) => ({
    amountMinor: p.amountMinor,
    currency: p.currency,
    state: p.state,
  });
  for (const mine of here) {
    const theirs = there.get(mine.key);
    there.delete(mine.key);
    const charged = isCharged(mine.state);
    const base = { key: mine.key, paymentId: mine.paymentId };
    if (theirs === undefined) {
      if (charged)
        findings.push({ ...base, kind: 'missing_at_cloud', detail: { here: side(mine) } });
      continue;
    }
    const detail = { here: side(mine), cloud: side(theirs) };
    const cloudCharged = theirs.state === 'charged';
    if (charged && cloudCharged) {
      if (theirs.amountMinor !== mine.amountMinor || theirs.currency !== mine.currency) {
        findings.push({ ...base, kind: 'amount_differs', detail });
      }
    } else if (charged && !cloudCharged) {
      findings.push({ ...base, kind: 'state_differs', detail });
    } else if (!charged && cloudCharged) {
      findings.push({ ...base, kind: 'charged_declined_here', detail });
    }
  }
  for (const theirs of there.values()) {
    if (theirs.state === 'charged') {
      findings.push({
        kind: 'missing_here',
        key: theirs.key,
        paymentId: null,
        detail: { cloud: side(theirs) },
      });
    }
  }
  if (findings.length === 0) {
    const mine = totalsOf(here);
    const theirs = cloud.totals;
    if (
      canonicalJson(mine.byCurrency) !== canonicalJson(theirs.byCurrency) ||
      canonicalJson(mine.byBrand) !== canonicalJson(theirs.byBrand)
    ) {
      findings.push({
        kind: 'totals_differ',
        key: null,
        paymentId: null,
        detail: {
          here: { byCurrency: mine.byCurrency, byBrand: mine.byBrand },
          cloud: { byCurrency: theirs.byCurrency, byBrand: theirs.byBrand },
        },
      });
    }
  }
  return findings;
}

/** Light shape check of the cloud's answer (the envelope was verified, the schema parsed it). */
function answerProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'the answer has no batch totals';
  const a = value as Partial<CloudBatchAnswer>;
  if (typeof a.id !== 'string') return 'the answer names no batch';
  if (typeof a.totals !== 'object' || a.totals === null) return 'the answer has no totals';
  if (!Array.isArray(a.payments)) return 'the answer has no payments list';
  for (const p of a.payments) {
    if (
      typeof p?.key !== 'string' ||
      !Number.isSafeInteger(p.amountMinor) ||
      typeof p.currency !== 'string' ||
      !['charged', 'declined', 'voided'].includes(p.state)
    ) {
      return 'a payment of the answer is malformed';
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Rows and SQL (kept here, next to the code that reads them; the schema is migration 5)

interface BatchRow {
  id: string;
  terminal: string;
  opened_at: string;
  closed_at: string | null;
  state: 'open' | 'closed';
  forced: number;
  totals: string | null;
  first_event_seq: number | null;
  last_event_seq: number | null;
  chain_head: string | null;
  close_seq: number | null;
  reconciliation: Batch['reconciliation'];
  reconciled_at: string | null;
}

interface ExceptionRow {
  id: number;
  batch_id: string;
  kind: ExceptionKind;
  found_by: 'close' | 'drift';
  idempotency_key: string | null;
  payment_id: string | null;
  detail: string;
  raised_seq: number;
  raised_at: string;
  state: 'open' | 'resolved';
  resolution: Resolution | null;
  note: string | null;
  resolved_seq: number | null;
  resolved_at: string | null;
}

interface RecordRow {
  key: string;
  seq: number;
  batch_id: string;
  kind: 'close' | 'check' | 'resend' | 'void';
  wire_key: string;
  body: string;
  state: 'pending' | 'acked' | 'dead';
  answer: string | null;
  dead_reason: string | null;
  matched: number;
  created_at: string;
  acked_at: string | null;
}

const SQL = {
  openBatch: "SELECT * FROM batches WHERE state = 'open'",
  batchById: 'SELECT * FROM batches WHERE id = ?',
  listBatches: 'SELECT * FROM batches ORDER BY opened_at DESC, id DESC LIMIT ?',
  // In creation order: the first is the one migration 5 opened.
  allBatches: 'SELECT * FROM batches ORDER BY rowid',
  lastClosed: `SELECT * FROM batches WHERE state = 'closed'
    ORDER BY closed_at DESC, id DESC LIMIT 1`,
  insertBatch: `INSERT INTO batches (id, terminal, opened_at, state)
    VALUES (@id, @terminal, @opened_at, 'open')`,
  closeBatch: `UPDATE batches SET state = 'closed', closed_at = @closed_at, forced = @forced,
      totals = @totals, first_event_seq = @first_event_seq, last_event_seq = @last_event_seq,
      chain_head = @chain_head, close_seq = @close_seq, reconciliation = @reconciliation
    WHERE id = @id`,
  setReconciliation: 'UPDATE batches SET reconciliation = ?, reconciled_at = ? WHERE id = ?',
  // Grouped in SQL (index payments_by_batch): flat in memory whatever the batch size.
  batchGroups: `SELECT state, approval, currency, card_brand AS brand, count(*) AS n,
      sum(amount_minor) AS total
    FROM payments WHERE batch_id = ? GROUP BY state, approval, currency, card_brand`,
  paymentsOfBatch: 'SELECT * FROM payments WHERE batch_id = ? ORDER BY id',
  paymentByKey: 'SELECT * FROM payments WHERE idempotency_key = ?',
  inProgressOfBatch: `SELECT id, idempotency_key, state FROM payments
    WHERE batch_id = ? AND state IN (${IN_PROGRESS_STATES.map((s) => `'${s}'`).join(', ')})`,
  firstEventSeqOfBatch: `SELECT min(e.seq) AS seq FROM payments p
      JOIN events e ON e.payment_id = p.id WHERE p.batch_id = ?`,
  unforwardedOfBatch: `SELECT o.key, o.payment_id, o.state FROM payments p
      JOIN outbox o ON o.payment_id = p.id
    WHERE p.batch_id = ? AND o.state <> 'acked' ORDER BY o.seq`,
  earlierUndelivered: `SELECT (SELECT count(*) FROM payments p JOIN outbox o ON o.payment_id = p.id
      WHERE p.batch_id = @batch AND o.seq < @seq AND o.state IN ('pending', 'in_flight'))
    + (SELECT count(*) FROM batch_records
      WHERE batch_id = @batch AND seq < @seq AND state = 'pending') AS n`,
  voidsAfter: `SELECT DISTINCT o.payment_id AS id FROM payments p JOIN outbox o ON o.payment_id = p.id
    WHERE p.batch_id = ? AND o.type = 'void' AND o.seq > ?`,
  chainOfPaymentRecord: `SELECT e.hash FROM outbox o JOIN events e ON e.seq = o.event_seq
    WHERE o.payment_id = ? AND o.type = 'payment'`,
  insertRecord: `INSERT INTO batch_records (key, seq, batch_id, kind, wire_key, body, state,
      created_at)
    VALUES (@key, @seq, @batch_id, @kind, @wire_key, @body, 'pending', @created_at)`,
  pendingRecords: `SELECT * FROM batch_records WHERE state = 'pending' AND seq > ?
    ORDER BY seq LIMIT ?`,
  allPendingRecords: "SELECT * FROM batch_records WHERE state = 'pending' ORDER BY seq",
  pendingCount: "SELECT count(*) AS n FROM batch_records WHERE state = 'pending'",
  ackRecord: `UPDATE batch_records SET state = 'acked', acked_at = @at, answer = @answer
    WHERE key = @key`,
  deadRecord: "UPDATE batch_records SET state = 'dead', dead_reason = @reason WHERE key = @key",
  unmatched: `SELECT * FROM batch_records
    WHERE state = 'acked' AND matched = 0 AND kind IN ('close', 'check') ORDER BY seq`,
  setMatched: 'UPDATE batch_records SET matched = 1 WHERE key = ?',
  countRecords: 'SELECT count(*) AS n FROM batch_records WHERE batch_id = ? AND kind = ?',
  lastReport: `SELECT * FROM batch_records WHERE batch_id = ? AND kind = ?
    ORDER BY seq DESC LIMIT 1`,
  lastAnsweredCheck: `SELECT * FROM batch_records WHERE kind = 'check' AND matched = 1
    ORDER BY seq DESC LIMIT 1`,
  insertException: `INSERT INTO batch_exceptions (id, batch_id, kind, found_by, idempotency_key,
      payment_id, detail, raised_seq, raised_at, state)
    VALUES (@id, @batch_id, @kind, @found_by, @idempotency_key, @payment_id, @detail, @raised_seq,
      @raised_at, 'open')`,
  resolveException: `UPDATE batch_exceptions SET state = 'resolved', resolution = @resolution,
      note = @note, resolved_seq = @resolved_seq, resolved_at = @resolved_at WHERE id = @id`,
  exceptionById: 'SELECT * FROM batch_exceptions WHERE id = ?',
  exceptionsOfBatch: 'SELECT * FROM batch_exceptions WHERE batch_id = ? ORDER BY id',
  openExceptions: "SELECT * FROM batch_exceptions WHERE state = 'open' ORDER BY id LIMIT ?",
  allExceptions: 'SELECT * FROM batch_exceptions ORDER BY id DESC LIMIT ?',
  openCountByKind: `SELECT kind, count(*) AS n FROM batch_exceptions WHERE state = 'open'
    GROUP BY kind`,
  nextExceptionId: 'SELECT coalesce(max(id), 0) + 1 AS id FROM batch_exceptions',
  lastOfKind: `SELECT state, resolution FROM batch_exceptions
    WHERE batch_id = ? AND kind = ? AND coalesce(idempotency_key, '') = ?
    ORDER BY id DESC LIMIT 1`,
  eventsOfBatch: 'SELECT seq, type, at, data FROM batch_events WHERE batch_id = ? ORDER BY seq',
  namedAsNext: `SELECT count(*) AS n FROM batch_events
    WHERE type = 'batch_closed' AND data ->> '$.next.id' = ?`,
} as const;

type Stmts = { [K in keyof typeof SQL]: Database.Statement };

const b64url = (hash: Uint8Array): string => Buffer.from(hash).toString('base64url');

/** The batches of this terminal; see the file comment. Obtain from `PaymentStore.batches`. */
export class BatchBook implements RecordKind {
  readonly #k: StoreKernel;
  readonly #outbox: SqliteOutbox;
  readonly #s: Stmts;

  constructor(kernel: StoreKernel, outbox: SqliteOutbox) {
    this.#k = kernel;
    this.#outbox = outbox;
    this.#s = Object.fromEntries(
      Object.entries(SQL).map(([name, text]) => [name, kernel.db.prepare(text)]),
    ) as Stmts;
  }

  // ------------------------------------------------------------------ reading

  /** The open batch with its running totals. */
  current(): Batch {
    return this.#k.read(() => this.#toBatch(this.#openRow()));
  }

  /**
   * A batch by id, or the open one without an id.
   *
   * @throws AgentError POS603 no batch with this id.
   */
  get(id?: string): Batch {
    return this.#k.read(() => this.#toBatch(id === undefined ? this.#openRow() : this.#row(id)));
  }

  /** The newest batches first (at most `limit`, 1–1000, default 20). */
  list(limit = 20): Batch[] {
    const n = Math.max(1, Math.min(1000, Math.floor(limit)));
    return this.#k.read(() =>
      (this.#s.listBatches.all(n) as BatchRow[]).map((row) => this.#toBatch(row)),
    );
  }

  /**
   * Exceptions, oldest first: the open ones (default), or every one newest first (`all`),
   * or those of one batch.
   */
  exceptions(filter: { all?: boolean; batchId?: string; limit?: number } = {}): BatchException[] {
    const limit = Math.max(1, Math.min(10_000, Math.floor(filter.limit ?? 1000)));
    return this.#k.read(() => {
      const rows =
        filter.batchId !== undefined
          ? (this.#s.exceptionsOfBatch.all(filter.batchId) as ExceptionRow[])
          : filter.all === true
            ? (this.#s.allExceptions.all(limit) as ExceptionRow[])
            : (this.#s.openExceptions.all(limit) as ExceptionRow[]);
      return rows.map(toException);
    });
  }

  /** The batch part of `/v1/status` and the status page. */
  status(): BatchStatus {
    return this.#k.read(() => {
      const open = this.#openRow();
      const last = this.#s.lastClosed.get() as BatchRow | undefined;
      const byKind: Partial<Record<ExceptionKind, number>> = {};
      let openExceptions = 0;
      for (const row of this.#s.openCountByKind.all() as { kind: ExceptionKind; n: number }[]) {
        byKind[row.kind] = row.n;
        openExceptions += row.n;
      }
      const check = this.#s.lastAnsweredCheck.get() as RecordRow | undefined;
      let lastCheck: BatchStatus['lastCheck'] = null;
      if (check !== undefined) {
        const raised = (this.#s.exceptionsOfBatch.all(check.batch_id) as ExceptionRow[]).some(
          (e) => e.found_by === 'drift' && e.raised_at >= (check.acked_at ?? ''),
        );
        lastCheck = {
          at: check.acked_at ?? check.created_at,
          result: raised ? 'exceptions' : 'matched',
        };
      }
      return {
        open: { id: open.id, openedAt: open.opened_at, totals: this.#liveTotals(open.id) },
        lastClosed:
          last === undefined
            ? null
            : {
                id: last.id,
                closedAt: last.closed_at as string,
                reconciliation: last.reconciliation,
                totals: JSON.parse(last.totals as string) as BatchTotals,
              },
        openExceptions,
        exceptionsByKind: byKind,
        lastCheck,
      };
    });
  }

  // ------------------------------------------------------------------ writing

  /**
   * Closes the open batch: in ONE transaction its `batch_closed` event (totals, first and last
   * event seq, chain head), the next batch opened, and the batch record queued for the cloud.
   *
   * @param options.force — close although payments of the batch are not yet forwarded (their
   *   records still pending or dead); they are listed in the result and the event.
   * @param options.terminal — the terminal id of the next batch (the agent's device id); default
   *   that of the closed one.
   * @throws AgentError POS601 unforwarded payments and no `force` (lists them); POS602 a payment
   *   of the batch is still in progress (close after it ends).
   */
  close(options: { force?: boolean; terminal?: string } = {}): CloseResult {
    const result = this.#k.write(() => {
      const open = this.#openRow();
      const inProgress = this.#s.inProgressOfBatch.all(open.id) as {
        id: string;
        idempotency_key: string;
        state: string;
      }[];
      if (inProgress.length > 0) {
        throw reconError(
          'POS602',
          `batch ${open.id} has ${inProgress.length} payment(s) in progress ` +
            `(${inProgress.map((p) => `${p.idempotency_key}: ${p.state}`).join(', ')}); ` +
            'fix: close again when the payment has its outcome',
          { details: { batchId: open.id, payments: inProgress.map((p) => p.id) } },
        );
      }
      const unforwarded = (
        this.#s.unforwardedOfBatch.all(open.id) as {
          key: string;
          payment_id: string;
          state: string;
        }[]
      ).map((r) => ({ key: r.key, paymentId: r.payment_id, record: r.state }));
      if (unforwarded.length > 0 && options.force !== true) {
        throw reconError(
          'POS601',
          `batch ${open.id} has ${unforwarded.length} payment record(s) not yet acknowledged by ` +
            `the cloud (${unforwarded
              .slice(0, 10)
              .map((u) => `${u.key}: ${u.record}`)
              .join(', ')}${unforwarded.length > 10 ? ', …' : ''}); fix: wait until ` +
            '`pos-agent queue` shows them sent (retry dead ones with `pos-agent queue --retry`), ' +
            'or close with --force, which lists them',
          { details: { batchId: open.id, unforwarded } },
        );
      }
      // Never before the opening (a clock set back, or the migration's batch opened by SQLite's
      // clock): closed_at >= opened_at is the schema's rule.
      const now = this.#k.now();
      const at = now < open.opened_at ? open.opened_at : now;
      const head = this.#k.head();
      const first = this.#s.firstEventSeqOfBatch.get(open.id) as { seq: number | null };
      const totals = this.#liveTotals(open.id);
      const lines = this.#lines(open.id);
      const n = (this.#s.countRecords.get(open.id, 'close') as { n: number }).n + 1;
      const recordKey = `${open.id}.close.${n}`;
      const nextBatch = {
        id: `bat_${uuidv7({ msecs: this.#k.clock.now() })}`,
        terminal: options.terminal ?? open.terminal,
        openedAt: at,
      };
      const data = {
        terminal: open.terminal,
        openedAt: open.opened_at,
        closedAt: at,
        forced: options.force === true,
        unforwarded,
        totals,
        firstEventSeq: first.seq,
        lastEventSeq: head.seq,
        chainHead: b64url(head.hash),
        recordKey,
        next: nextBatch,
      };
      const event = this.#append(open.id, 'batch_closed', at, data);
      this.#s.insertBatch.run({
        id: nextBatch.id,
        terminal: nextBatch.terminal,
        opened_at: nextBatch.openedAt,
      });
      this.#queueReport(open, 'close', recordKey, at, {
        closedAt: at,
        firstEventSeq: first.seq,
        lastEventSeq: head.seq,
        chainHead: b64url(head.hash),
        totals,
        payments: lines,
        chain: b64url(event.hash),
      });
      return { batchId: open.id, nextId: nextBatch.id, unforwarded, recordKey };
    });
    return {
      batch: this.get(result.batchId),
      next: this.get(result.nextId),
      unforwarded: result.unforwarded,
      recordKey: result.recordKey,
    };
  }

  /**
   * The drift check between closes: queues a report of the OPEN batch (`<batch>.check.<n>`) when
   * something happened since the last one and no earlier check is still unanswered; the cloud's
   * answer is compared like a close's, and a difference is an exception found by `drift`.
   *
   * @returns the record key, or `undefined` when nothing was queued.
   */
  queueCheck(): string | undefined {
    return this.#k.write(() => {
      const open = this.#openRow();
      const head = this.#k.head();
      const last = this.#s.lastReport.get(open.id, 'check') as RecordRow | undefined;
      if (last !== undefined) {
        if (last.state === 'pending' || (last.state === 'acked' && last.matched === 0)) {
          return undefined;
        }
        const body = JSON.parse(last.body) as BatchReportRecord;
        if (body.batch.lastEventSeq >= head.seq) return undefined;
      }
      const lines = this.#lines(open.id);
      if (lines.length === 0) return undefined;
      const n = (this.#s.countRecords.get(open.id, 'check') as { n: number }).n + 1;
      const key = `${open.id}.check.${n}`;
      const at = this.#k.now();
      const first = this.#s.firstEventSeqOfBatch.get(open.id) as { seq: number | null };
      this.#queueReport(open, 'check', key, at, {
        firstEventSeq: first.seq,
        lastEventSeq: head.seq,
        chainHead: b64url(head.hash),
        totals: this.#liveTotals(open.id),
        payments: lines,
        chain: b64url(head.hash),
      });
      return key;
    });
  }

  /**
   * Resolves an open exception, as ONE `exception_resolved` event (docs/reconciliation.md):
   * - `requeue` — the payment's record is sent again (same idempotency key: the cloud applies it
   *   once) and the batch is matched again;
   * - `void` — here charged: the payment is canceled and its void sent; here not charged: a void
   *   for what the cloud charged is sent; then the batch is matched again;
   * - `accept` — a person's decision, with a `note` (1–500 characters); no money moves.
   *
   * @returns the resolved exception and the keys of the records queued.
   * @throws AgentError POS604 no open exception with this id; POS605 the kind does not allow this
   *   resolution (the message lists the ones it allows); POS606 a note is missing (accept) or not
   *   1–500 characters.
   */
  resolve(
    exceptionId: number,
    resolution: Resolution,
    note?: string,
  ): { exception: BatchException; records: string[] } {
    const records = this.#k.write(() => {
      const row = this.#s.exceptionById.get(exceptionId) as ExceptionRow | undefined;
      if (row === undefined || row.state !== 'open') {
        throw reconError(
          'POS604',
          `exception ${String(exceptionId)} ${row === undefined ? 'does not exist' : 'is already resolved'}; ` +
            'fix: list the open ones with `pos-agent batch exceptions`',
          { details: { exceptionId } },
        );
      }
      const allowed = ALLOWED_RESOLUTIONS[row.kind];
      if (
        !(RESOLUTIONS as readonly string[]).includes(resolution) ||
        !allowed.includes(resolution)
      ) {
        throw reconError(
          'POS605',
          `exception ${row.id} (${row.kind}) cannot be resolved with ${JSON.stringify(String(resolution))}; ` +
            `fix: use one of ${allowed.join(', ')} (docs/reconciliation.md)`,
          { details: { exceptionId: row.id, kind: row.kind, allowed } },
        );
      }
      let cleanNote: string | null = null;
      if (note !== undefined && note.trim() !== '') {
        if (note.length > 500) {
          throw reconError('POS606', 'the note is longer than 500 characters; fix: shorten it');
        }
        cleanNote = safeReason(note.trim());
      } else if (resolution === 'accept') {
        throw reconError(
          'POS606',
          `accepting exception ${row.id} needs a note saying why (1–500 characters); ` +
            'fix: add --note "…"',
        );
      }
      const at = this.#k.now();
      const queued: string[] = [];
      const batch = this.#row(row.batch_id);
      if (resolution === 'requeue') queued.push(this.#queueResend(row, batch, at));
      if (resolution === 'void') queued.push(...this.#voidFor(row, batch, at));
      if (resolution !== 'accept') queued.push(this.#queueRematch(batch, at));
      this.#append(row.batch_id, 'exception_resolved', at, {
        exceptionId: row.id,
        kind: row.kind,
        key: row.idempotency_key,
        resolution,
        note: cleanNote,
        records: queued,
      });
      return queued;
    });
    const exception = toException(
      this.#k.read(() => this.#s.exceptionById.get(exceptionId)) as ExceptionRow,
    );
    return { exception, records };
  }

  // ------------------------------------------------------------------ RecordKind (outbox.ts)

  /** See {@link RecordKind.pending}. */
  pending(limit: number, afterSeq: number): UplinkRecord[] {
    return (this.#s.pendingRecords.all(afterSeq, limit) as RecordRow[]).map(
      (row) => ({ ...(JSON.parse(row.body) as object), seq: row.seq }) as UplinkRecord,
    );
  }

  /** See {@link RecordKind.depth}. */
  depth(): number {
    return (this.#s.pendingCount.get() as { n: number }).n;
  }

  /** See {@link RecordKind.applyAcks}: the cloud's answer is kept; matching is in afterAcks. */
  applyAcks(results: readonly AckResult[], at: string): Map<number, AppliedAck> {
    const out = new Map<number, AppliedAck>();
    const pending = this.#s.allPendingRecords.all() as RecordRow[];
    if (pending.length === 0) return out;
    const byKey = new Map<string, RecordRow>();
    for (const row of pending) if (!byKey.has(row.wire_key)) byKey.set(row.wire_key, row);
    results.forEach((result, index) => {
      const row = typeof result?.key === 'string' ? byKey.get(result.key) : undefined;
      if (row === undefined) return;
      byKey.delete(result.key);
      if (result.status === 'rejected') {
        const text = [result.code, result.reason].filter((p) => p !== undefined).join(': ');
        const reason = safeReason(text === '' ? 'rejected by the cloud without a reason' : text);
        this.#s.deadRecord.run({ key: row.key, reason });
        out.set(index, {
          key: result.key,
          action: 'dead_lettered',
          outboxState: 'dead',
          detail: reason,
        });
        return;
      }
      let answer: string | null = null;
      if (row.kind === 'close' || row.kind === 'check') {
        const given = (result as { batch?: unknown }).batch;
        const problem = answerProblem(given);
        if (problem !== undefined) {
          const reason = safeReason(`${problem} (POS607)`);
          this.#s.deadRecord.run({ key: row.key, reason });
          out.set(index, {
            key: result.key,
            action: 'dead_lettered',
            outboxState: 'dead',
            detail: reason,
          });
          return;
        }
        answer = canonicalJson(given);
      }
      this.#s.ackRecord.run({ key: row.key, at, answer });
      out.set(index, { key: result.key, action: 'acked', outboxState: 'acked' });
    });
    return out;
  }

  /** See {@link RecordKind.afterAcks}: matches every answered report whose batch is ready. */
  afterAcks(at: string): void {
    for (const row of this.#s.unmatched.all() as RecordRow[]) this.#match(row, at);
  }

  // ------------------------------------------------------------------ integrity

  /**
   * Folds each batch's events and compares the result with its `batches` row and its
   * `batch_exceptions` rows; every batch but the first must have been opened by a close.
   *
   * @returns sentences naming the batch and what differs (each ends with `(POS221)`), empty when
   *   all agree.
   */
  checkProjection(): string[] {
    return this.#k.read(() => {
      const problems: string[] = [];
      const rows = this.#s.allBatches.all() as BatchRow[];
      rows.forEach((row, index) => {
        let fold = openBatchFold();
        for (const e of this.#s.eventsOfBatch.all(row.id) as {
          seq: number;
          type: string;
          at: string;
          data: string;
        }[]) {
          fold = applyBatchEvent(fold, {
            ...e,
            data: JSON.parse(e.data) as Record<string, unknown>,
          });
        }
        const differing = batchDifferences(row, fold);
        if (differing.length > 0) {
          problems.push(`batch ${row.id}: ${differing.join(', ')} differ from its events (POS221)`);
        }
        const exRows = this.#s.exceptionsOfBatch.all(row.id) as ExceptionRow[];
        const seen = new Set<number>();
        for (const ex of exRows) {
          seen.add(ex.id);
          const folded = fold.exceptions.get(ex.id);
          if (folded === undefined) {
            problems.push(`batch ${row.id}: exception ${ex.id} was raised by no event (POS221)`);
            continue;
          }
          const fields = exceptionDifferences(ex, folded);
          if (fields.length > 0) {
            problems.push(
              `batch ${row.id}: exception ${ex.id}: ${fields.join(', ')} differ from its events (POS221)`,
            );
          }
        }
        for (const id of fold.exceptions.keys()) {
          if (!seen.has(id)) problems.push(`batch ${row.id}: exception ${id} is missing (POS221)`);
        }
        if (index > 0 && (this.#s.namedAsNext.get(row.id) as { n: number }).n === 0) {
          problems.push(`batch ${row.id} was opened by no batch_closed event (POS221)`);
        }
      });
      return problems;
    });
  }

  // ------------------------------------------------------------------ internals

  #openRow(): BatchRow {
    const row = this.#s.openBatch.get() as BatchRow | undefined;
    if (row === undefined) {
      throw reconError(
        'POS603',
        'there is no open batch; fix: run `pos-agent verify` and report (the close opens the next one)',
      );
    }
    return row;
  }

  #row(id: string): BatchRow {
    const row = this.#s.batchById.get(id) as BatchRow | undefined;
    if (row === undefined) {
      throw reconError(
        'POS603',
        `batch ${JSON.stringify(String(id).slice(0, 64))} not found; fix: list the batches with \`pos-agent batch show --all\``,
        { details: { batchId: id } },
      );
    }
    return row;
  }

  #toBatch(row: BatchRow): Batch {
    const openExceptions = (this.#s.exceptionsOfBatch.all(row.id) as ExceptionRow[]).filter(
      (e) => e.state === 'open',
    ).length;
    return {
      id: row.id,
      terminal: row.terminal,
      state: row.state,
      openedAt: row.opened_at,
      closedAt: row.closed_at,
      forced: row.forced === 1,
      totals:
        row.totals === null ? this.#liveTotals(row.id) : (JSON.parse(row.totals) as BatchTotals),
      firstEventSeq:
        row.state === 'open'
          ? (this.#s.firstEventSeqOfBatch.get(row.id) as { seq: number | null }).seq
          : row.first_event_seq,
      lastEventSeq: row.last_event_seq,
      chainHead: row.chain_head,
      closeSeq: row.close_seq,
      reconciliation: row.reconciliation,
      reconciledAt: row.reconciled_at,
      openExceptions,
    };
  }

  #liveTotals(batchId: string): BatchTotals {
    const groups = this.#s.batchGroups.all(batchId) as {
      state: PaymentState;
      approval: 'online' | 'offline' | null;
      currency: string;
      brand: string | null;
      n: number;
      total: number;
    }[];
    return totalsOf(
      groups.map((g) => ({
        amountMinor: g.total,
        count: g.n,
        currency: g.currency,
        brand: g.brand ?? 'unknown',
        state: reconStateOf(g),
      })),
    );
  }

  #lines(batchId: string): BatchReportLine[] {
    return (this.#s.paymentsOfBatch.all(batchId) as PaymentRow[]).map((row) => {
      const line: BatchReportLine = {
        key: row.idempotency_key,
        amountMinor: row.amount_minor,
        currency: row.currency,
        state: reconStateOf(row),
      };
      if (row.card_brand !== null) line.brand = row.card_brand as CardBrand;
      return line;
    });
  }

  /** Appends a batch event and writes what the fold makes of it (inside the transaction). */
  #append(
    batchId: string,
    type: 'batch_closed' | 'batch_reconciled' | 'exception_resolved',
    at: string,
    data: Record<string, unknown>,
  ): { seq: number; hash: Buffer } {
    const row = this.#row(batchId);
    const before = foldOfRows(row, this.#s.exceptionsOfBatch.all(batchId) as ExceptionRow[]);
    const appended = this.#k.appendBatchEvent(batchId, type, at, data);
    const parsed = JSON.parse(canonicalJson(data)) as Record<string, unknown>;
    const after = applyBatchEvent(before, { seq: appended.seq, type, at, data: parsed });
    if (before.state === 'open' && after.state === 'closed') {
      this.#s.closeBatch.run({
        id: batchId,
        closed_at: after.closedAt,
        forced: after.forced ? 1 : 0,
        totals: after.totals,
        first_event_seq: after.firstEventSeq,
        last_event_seq: after.lastEventSeq,
        chain_head: after.chainHead,
        close_seq: after.closeSeq,
        reconciliation: after.reconciliation,
      });
    } else if (
      before.reconciliation !== after.reconciliation ||
      before.reconciledAt !== after.reconciledAt
    ) {
      this.#s.setReconciliation.run(after.reconciliation, after.reconciledAt, batchId);
    }
    for (const [id, ex] of after.exceptions) {
      const old = before.exceptions.get(id);
      if (old === undefined) {
        this.#s.insertException.run({
          id,
          batch_id: batchId,
          kind: ex.kind,
          found_by: ex.foundBy,
          idempotency_key: ex.key,
          payment_id: ex.paymentId,
          detail: canonicalJson(ex.detail),
          raised_seq: ex.raisedSeq,
          raised_at: ex.raisedAt,
        });
      } else if (old.state === 'open' && ex.state === 'resolved') {
        this.#s.resolveException.run({
          id,
          resolution: ex.resolution,
          note: ex.note,
          resolved_seq: ex.resolvedSeq,
          resolved_at: ex.resolvedAt,
        });
      }
    }
    return appended;
  }

  #nextSeq(): number {
    return (this.#k.stmts.nextOutboxSeq.get() as { seq: number }).seq;
  }

  #queueReport(
    batch: BatchRow,
    kind: 'close' | 'check',
    key: string,
    at: string,
    report: {
      closedAt?: string;
      firstEventSeq: number | null;
      lastEventSeq: number;
      chainHead: string;
      totals: BatchTotals;
      payments: BatchReportLine[];
      chain: string;
    },
  ): void {
    const body: Omit<BatchReportRecord, 'seq'> = {
      key,
      type: 'batch',
      at,
      batch: {
        id: batch.id,
        kind,
        terminal: batch.terminal,
        openedAt: batch.opened_at,
        ...(report.closedAt === undefined ? {} : { closedAt: report.closedAt }),
        asOf: at,
        firstEventSeq: report.firstEventSeq,
        lastEventSeq: report.lastEventSeq,
        chainHead: report.chainHead,
        totals: report.totals,
        payments: report.payments,
      },
      chain: report.chain,
    };
    this.#s.insertRecord.run({
      key,
      seq: this.#nextSeq(),
      batch_id: batch.id,
      kind,
      wire_key: key,
      body: JSON.stringify(body),
      created_at: at,
    });
  }

  /** A new report of the batch after a resolution, so the cloud's answer shows its effect. */
  #queueRematch(batch: BatchRow, at: string): string {
    const kind = batch.state === 'closed' ? 'close' : 'check';
    const last = this.#s.lastReport.get(batch.id, kind) as RecordRow | undefined;
    const n = (this.#s.countRecords.get(batch.id, kind) as { n: number }).n + 1;
    const key = `${batch.id}.${kind}.${n}`;
    if (kind === 'close' && last !== undefined) {
      const previous = JSON.parse(last.body) as BatchReportRecord;
      this.#queueReport(batch, 'close', key, at, {
        ...previous.batch,
        closedAt: previous.batch.closedAt ?? at,
        chain: previous.chain,
      });
      return key;
    }
    const head = this.#k.head();
    const first = this.#s.firstEventSeqOfBatch.get(batch.id) as { seq: number | null };
    this.#queueReport(batch, kind, key, at, {
      firstEventSeq: first.seq,
      lastEventSeq: head.seq,
      chainHead: b64url(head.hash),
      totals: this.#liveTotals(batch.id),
      payments: this.#lines(batch.id),
      chain: b64url(head.hash),
    });
    return key;
  }

  #paymentOf(row: ExceptionRow): PaymentRow {
    const payment =
      row.idempotency_key === null
        ? undefined
        : (this.#s.paymentByKey.get(row.idempotency_key) as PaymentRow | undefined);
    if (payment === undefined) {
      throw reconError(
        'POS605',
        `exception ${row.id}: the payment ${row.idempotency_key ?? '(none)'} is not in this store ` +
          '(never here, or purged by retention); fix: resolve it with accept and a note',
        { details: { exceptionId: row.id } },
      );
    }
    return payment;
  }

  #wireRecord(
    payment: PaymentRow,
    key: string,
    type: 'payment' | 'void',
    at: string,
  ): Omit<OutboxRecord, 'seq'> {
    const p = toPayment(payment);
    if (p.card === undefined) {
      throw reconError(
        'POS605',
        `payment ${p.id} has no card, so no record can be sent for it; fix: resolve with accept and a note`,
      );
    }
    const chainRow = this.#s.chainOfPaymentRecord.get(p.id) as { hash: Buffer } | undefined;
    const { cardholderName: _name, ...card } = p.card;
    void _name;
    const record: Omit<OutboxRecord, 'seq'> = {
      key,
      type,
      at,
      payment: {
        id: p.id,
        amountMinor: p.amountMinor,
        currency: p.currency,
        createdAt: p.createdAt,
        ...(p.reference === undefined ? {} : { reference: p.reference }),
      },
      card,
      chain: b64url(chainRow?.hash ?? this.#k.head().hash),
    };
    return record;
  }

  #queueResend(row: ExceptionRow, batch: BatchRow, at: string): string {
    const payment = this.#paymentOf(row);
    const body = this.#wireRecord(payment, payment.idempotency_key, 'payment', at);
    const key = `${batch.id}.resend.${row.id}`;
    this.#s.insertRecord.run({
      key,
      seq: this.#nextSeq(),
      batch_id: batch.id,
      kind: 'resend',
      wire_key: payment.idempotency_key,
      body: JSON.stringify(body),
      created_at: at,
    });
    return key;
  }

  #voidFor(row: ExceptionRow, batch: BatchRow, at: string): string[] {
    const payment = this.#paymentOf(row);
    const current: Payment = toPayment(payment);
    if (APPROVED_STATES.includes(current.state)) {
      // Charged here: cancel it like the POS app would, which queues its void record.
      const canceled = this.#k.record(current.id, 'canceled', at, {
        reason: `voided by a tech resolving reconciliation exception ${row.id} (${row.kind})`,
      });
      this.#outbox.queue(canceled, 'void', at);
      return [`${current.idempotencyKey}.void`];
    }
    // Not charged here, charged there: a void for what the cloud charged.
    const wireKey = `${current.idempotencyKey}.void.r${row.id}`;
    const body = this.#wireRecord(payment, wireKey, 'void', at);
    const key = `${batch.id}.void.${row.id}`;
    this.#s.insertRecord.run({
      key,
      seq: this.#nextSeq(),
      batch_id: batch.id,
      kind: 'void',
      wire_key: wireKey,
      body: JSON.stringify(body),
      created_at: at,
    });
    return [key];
  }

  /** Compares an answered report once every record of its batch sent before it is acknowledged. */
  #match(record: RecordRow, at: string): void {
    const waiting = (
      this.#s.earlierUndelivered.get({ batch: record.batch_id, seq: record.seq }) as { n: number }
    ).n;
    if (waiting > 0) return;
    const body = JSON.parse(record.body) as BatchReportRecord;
    const answer = JSON.parse(record.answer as string) as CloudBatchAnswer;
    const current = new Map(
      (this.#s.paymentsOfBatch.all(record.batch_id) as PaymentRow[]).map((r) => [
        r.idempotency_key,
        r,
      ]),
    );
    const voidedLater = new Set(
      (this.#s.voidsAfter.all(record.batch_id, record.seq) as { id: string }[]).map((r) => r.id),
    );
    const here = body.batch.payments.map((line) => {
      const row = current.get(line.key);
      // A void queued after the report reaches the cloud after it: the report's state counts.
      const state = row === undefined || voidedLater.has(row.id) ? line.state : reconStateOf(row);
      return {
        key: line.key,
        paymentId: row?.id ?? null,
        amountMinor: line.amountMinor,
        currency: line.currency,
        brand: line.brand,
        state,
      };
    });
    const foundBy = body.batch.kind === 'close' ? 'close' : 'drift';
    let nextId = (this.#s.nextExceptionId.get() as { id: number }).id;
    const raised: Array<Record<string, unknown>> = [];
    for (const finding of compareBatch(here, answer)) {
      const last = this.#s.lastOfKind.get(record.batch_id, finding.kind, finding.key ?? '') as
        { state: string; resolution: string | null } | undefined;
      if (last?.state === 'open' || last?.resolution === 'accept') continue;
      raised.push({
        id: nextId++,
        kind: finding.kind,
        foundBy,
        key: finding.key,
        paymentId: finding.paymentId,
        detail: finding.detail,
      });
    }
    this.#append(record.batch_id, 'batch_reconciled', at, {
      recordKey: record.wire_key,
      kind: body.batch.kind,
      result: raised.length === 0 ? 'matched' : 'exceptions',
      cloudTotals: answer.totals,
      raised,
    });
    this.#s.setMatched.run(record.key);
  }
}

function foldOfRows(row: BatchRow, exceptions: readonly ExceptionRow[]): BatchFold {
  return {
    state: row.state,
    closedAt: row.closed_at,
    forced: row.forced === 1,
    totals: row.totals,
    firstEventSeq: row.first_event_seq,
    lastEventSeq: row.last_event_seq,
    chainHead: row.chain_head,
    closeSeq: row.close_seq,
    reconciliation: row.reconciliation,
    reconciledAt: row.reconciled_at,
    exceptions: new Map(
      exceptions.map((e) => [
        e.id,
        {
          id: e.id,
          kind: e.kind,
          foundBy: e.found_by,
          key: e.idempotency_key,
          paymentId: e.payment_id,
          detail: JSON.parse(e.detail) as Record<string, unknown>,
          raisedSeq: e.raised_seq,
          raisedAt: e.raised_at,
          state: e.state,
          resolution: e.resolution,
          note: e.note,
          resolvedSeq: e.resolved_seq,
          resolvedAt: e.resolved_at,
        },
      ]),
    ),
  };
}

function batchDifferences(row: BatchRow, fold: BatchFold): string[] {
  const stored = foldOfRows(row, []);
  const fields = [
    'state',
    'closedAt',
    'forced',
    'totals',
    'firstEventSeq',
    'lastEventSeq',
    'chainHead',
    'closeSeq',
    'reconciliation',
    'reconciledAt',
  ] as const;
  return fields.filter((f) => canonicalJson(stored[f] ?? null) !== canonicalJson(fold[f] ?? null));
}

function exceptionDifferences(row: ExceptionRow, fold: ExceptionFold): string[] {
  const stored = foldOfRows({ state: 'open' } as BatchRow, [row]).exceptions.get(
    row.id,
  ) as ExceptionFold;
  return (Object.keys(fold) as (keyof ExceptionFold)[]).filter(
    (f) => canonicalJson(stored[f] ?? null) !== canonicalJson(fold[f] ?? null),
  );
}

function toException(row: ExceptionRow): BatchException {
  return {
    id: row.id,
    batchId: row.batch_id,
    kind: row.kind,
    foundBy: row.found_by,
    idempotencyKey: row.idempotency_key,
    paymentId: row.payment_id,
    detail: JSON.parse(row.detail) as Record<string, unknown>,
    raisedSeq: row.raised_seq,
    raisedAt: row.raised_at,
    state: row.state,
    resolution: row.resolution,
    note: row.note,
    resolvedSeq: row.resolved_seq,
    resolvedAt: row.resolved_at,
    allowed: ALLOWED_RESOLUTIONS[row.kind],
  };
}

/** Every reconciliation state, for docs and the API schema. */
export const RECONCILIATION_STATES = RECON_STATES;
