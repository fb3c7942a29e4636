/**
 * The batch tables as better-sqlite3 returns them (`batches`, `batch_exceptions`,
 * `batch_records`; the schema is migration 5), the SQL that reads and writes them, and the pure
 * mappers between rows, folds and what the agent prints. No SQL runs here: batch-tables.ts
 * prepares {@link BATCH_SQL} once per connection.
 */
import type Database from 'better-sqlite3';
import {
  ALLOWED_RESOLUTIONS,
  type Batch,
  type BatchException,
  type ExceptionFold,
  type ExceptionKind,
  type Resolution,
} from './batch-types.js';
import type { BatchFold } from './batch-fold.js';
import { canonicalJson } from './hash-chain.js';
import { IN_PROGRESS_STATES } from './model.js';
import { prepareAll } from './sql.js';

/** A row of `batches`. */
export interface BatchRow {
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

/** A row of `batch_exceptions`. */
export interface ExceptionRow {
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

/** A row of `batch_records`: a report, resend or void for the cloud, in the outbox's seq order. */
export interface RecordRow {
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

/** Every statement of the batch tables, by name. */
export const BATCH_SQL = {
  openBatch: "SELECT * FROM batches WHERE state = 'open'",
  batchById: 'SELECT * FROM batches WHERE id = ?',
  listBatches: 'SELECT * FROM batches ORDER BY opened_at DESC, id DESC LIMIT ?',
  // In creation order: the first is the one migration 5 opened.
  allBatches: 'SELECT * FROM batches ORDER BY rowid',
  lastClosed: `SELECT * FROM batches WHERE state = 'closed'
    ORDER BY closed_at DESC, id DESC LIMIT 1`,
  recentClosed: `SELECT * FROM batches WHERE state = 'closed'
    ORDER BY closed_at DESC, id DESC LIMIT ?`,
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

/** {@link BATCH_SQL} prepared on one connection. */
export type BatchStmts = { [K in keyof typeof BATCH_SQL]: Database.Statement };

/** Prepares {@link BATCH_SQL} on `db`. */
export function prepareBatchStatements(db: Database.Database): BatchStmts {
  return prepareAll(db, BATCH_SQL);
}

/** A hash as unpadded base64url, the way events and records carry it. */
export const b64url = (hash: Uint8Array): string => Buffer.from(hash).toString('base64url');

/** The fold of a batch as its rows hold it (to compare with, or to apply the next event to). */
export function foldOfRows(row: BatchRow, exceptions: readonly ExceptionRow[]): BatchFold {
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
    exceptions: new Map(exceptions.map((e) => [e.id, exceptionOfRow(e)])),
  };
}

/** The fields of a `batches` row that differ from the fold of its events. */
export function batchDifferences(row: BatchRow, fold: BatchFold): string[] {
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

/** The fields of a `batch_exceptions` row that differ from the fold of its events. */
export function exceptionDifferences(row: ExceptionRow, fold: ExceptionFold): string[] {
  const stored = exceptionOfRow(row);
  return (Object.keys(fold) as (keyof ExceptionFold)[]).filter(
    (f) => canonicalJson(stored[f] ?? null) !== canonicalJson(fold[f] ?? null),
  );
}

/** An exception as its row holds it. */
export function exceptionOfRow(e: ExceptionRow): ExceptionFold {
  return {
    id: e.id,
    kind: e.kind,
    foundBy: e.found_by,
    idempotencyKey: e.idempotency_key,
    paymentId: e.payment_id,
    detail: JSON.parse(e.detail) as Record<string, unknown>,
    raisedSeq: e.raised_seq,
    raisedAt: e.raised_at,
    state: e.state,
    resolution: e.resolution,
    note: e.note,
    resolvedSeq: e.resolved_seq,
    resolvedAt: e.resolved_at,
  };
}

/** An exception as the agent prints it (`pos-agent batch exceptions`, the API). */
export function toException(row: ExceptionRow): BatchException {
  const { id, ...fold } = exceptionOfRow(row);
  return { id, batchId: row.batch_id, ...fold, allowed: ALLOWED_RESOLUTIONS[row.kind] };
}
