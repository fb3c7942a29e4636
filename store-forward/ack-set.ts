/**
 * An acknowledgement message applied as ONE set (issue 9 §3, architecture.md §4/§9): the part of
 * the outbox ({@link SqliteOutbox.applyAcks}) that runs inside the ack transaction.
 *
 * ```
 *  results ──ackTargets (one read: outbox row + the 6 payment fields an ack can change)
 *          ──fold each result in order (applyEvent on those fields)
 *          ──► ONE ack event (hash chain) + its members
 *          ──► DELETE sealed card data of the set ─► UPDATE outbox (acked, one per status)
 *          ──► UPDATE payments (only the columns the set changes; updated_at bound once)
 * ```
 *
 * Statements per message, not per record: the drain's cost per record is a few rows of SQLite
 * B-tree work and no JavaScript object per column. Rejections (rare) still write one
 * `dead_lettered` event each, on the full payment row.
 */
import type Database from 'better-sqlite3';
import { isAgentError } from '../common/agent-error.js';
import { storeError } from './errors.js';
import { ackEventText, type AckEntryData, type TypedAckEntry } from './ack-event-text.js';
import type { AckEntry, StoreKernel } from './kernel.js';
import { toAgentError } from './kernel.js';
import type { AckResult, AppliedAck, OutboxState, Payment, PaymentState } from './model.js';
import { applyEvent } from './projection.js';
import { toPayment, type PaymentRow } from './rows.js';
import { ACK_PAYMENT_COLUMNS, type AckPaymentColumn } from './sql.js';
import { safeReason } from './validate.js';

/**
 * The columns of a raw `ackTargets` row (sql.ts), by position: the outbox record of a key and
 * the payment fields an acknowledgement reads or changes.
 */
const T = {
  key: 0,
  paymentId: 1,
  recordType: 2,
  outboxState: 3,
  state: 4,
  approval: 5,
  authCode: 6,
  declineCode: 7,
  reason: 8,
  updatedAt: 9,
} as const;

/** A raw `ackTargets` row; see {@link T}. */
type TargetRow = [
  key: string,
  paymentId: string,
  recordType: 'payment' | 'void',
  outboxState: OutboxState,
  state: PaymentState,
  approval: 'online' | 'offline' | null,
  authCode: string | null,
  declineCode: string | null,
  reason: string | null,
  updatedAt: string,
];

/**
 * The fields of a payment that an acknowledgement folds and the set-based UPDATE writes. For
 * `cloud_approved`, `cloud_declined` and `confirmed` events `applyEvent` reads only these (the
 * machine state from `state`/`approval`; `authCode`, `declineCode`, `reason`) and copies the rest,
 * so the fold runs on this part of the row instead of the whole payment.
 */
type AckFold = Pick<
  Payment,
  'id' | 'state' | 'approval' | 'authCode' | 'declineCode' | 'reason' | 'updatedAt'
>;

/** What the set needs from the outbox: its statements and the other record kinds. */
export interface AckSetDeps {
  kernel: StoreKernel;
  /** `SQL.ackTargets` prepared in raw mode (rows as arrays). */
  ackTargets: Database.Statement;
  /** `applyPaymentRowsSql(columns)` prepared (sql.ts; the caller caches one per column set). */
  paymentUpdate(columns: readonly AckPaymentColumn[]): Database.Statement;
  /** The other kinds of records in the outbox's seq space (issue 17); see `RecordKind`. */
  kinds: readonly {
    applyAcks(results: readonly AckResult[], at: string): Map<number, AppliedAck>;
    afterAcks(at: string): void;
  }[];
}

/**
 * Applies `results` as one set inside the caller's write transaction; the contract is
 * {@link SqliteOutbox.applyAcks}'s.
 *
 * @returns one {@link AppliedAck} per result, in order.
 * @throws AgentError POS2xx when SQLite refuses a statement (the caller's transaction rolls back).
 */
export function applyAckSet(
  deps: AckSetDeps,
  results: readonly AckResult[],
  batches: readonly string[],
): AppliedAck[] {
  const k = deps.kernel;
  const at = k.now();
  const out: AppliedAck[] = [];
  const keys = new Set<string>();
  for (const result of results) {
    if (ackProblem(result) === undefined) keys.add(result.key);
  }
  const targets = new Map<string, TargetRow>();
  if (keys.size > 0) {
    for (const row of deps.ackTargets.all(JSON.stringify([...keys])) as TargetRow[]) {
      targets.set(row[T.key], row);
    }
  }
  // Each payment as the results before it in this set leave it, and as its row now holds it.
  const folds = new Map<string, AckFold>();
  const stored = new Map<string, AckFold>();
  const current = (row: TargetRow): AckFold => {
    const known = folds.get(row[T.paymentId]);
    if (known !== undefined) return known;
    const fold = foldOf(row);
    folds.set(row[T.paymentId], fold);
    stored.set(row[T.paymentId], fold);
    return fold;
  };
  const entries: TypedAckEntry[] = [];
  // The acknowledged keys by status (one UPDATE each).
  const acked = new Map<'accepted' | 'duplicate', string[]>();
  // The payments of the acknowledged records: their rows change, their sealed card data goes.
  const changed = new Set<string>();
  // Each key's outbox state as the results before it in this set leave it: the set has the
  // meaning of applying its results one by one, in order. A rejection's dead_lettered event is
  // written at once and the acceptances go into the ack event at the end; the fold does not
  // depend on that order (dead_lettered leaves the state as it is).
  const keyState = new Map<string, OutboxState>();
  // Results for the other record kinds' records (batch records, issue 17) are theirs.
  const own = new Map<number, AppliedAck>();
  for (const kind of deps.kinds) {
    for (const [index, applied] of kind.applyAcks(results, at)) own.set(index, applied);
  }
  for (let index = 0; index < results.length; index++) {
    const result = results[index] as AckResult;
    const key = typeof result?.key === 'string' ? result.key : String(result?.key);
    const taken = own.get(index);
    if (taken !== undefined) {
      out[index] = taken;
      continue;
    }
    const problem = ackProblem(result);
    if (problem !== undefined) {
      out[index] = { key, action: 'invalid', detail: problem };
      continue;
    }
    const row = targets.get(key);
    if (row === undefined) {
      out[index] = { key, action: 'unknown_key' };
      continue;
    }
    const paymentId = row[T.paymentId];
    const state = keyState.get(key) ?? row[T.outboxState];
    if (state === 'acked' || (state === 'dead' && result.status === 'rejected')) {
      out[index] = { key, action: 'already', paymentId, outboxState: state };
      continue;
    }
    const deadLetter = (reason: string, code: string | undefined): AppliedAck => {
      const full = fullPayment(k, paymentId, folds.get(paymentId));
      const written = deadLetterRecord(k, { key, payment_id: paymentId }, reason, at, code, full);
      folds.set(paymentId, written);
      // The dead_lettered event wrote the whole row: the set's UPDATE compares with this one.
      stored.set(paymentId, written);
      keyState.set(key, 'dead');
      return { key, action: 'dead_lettered', paymentId, outboxState: 'dead', detail: reason };
    };
    if (result.status === 'rejected') {
      const text = [result.code, result.reason].filter((part) => part !== undefined).join(': ');
      const reason = safeReason(text === '' ? 'rejected by the cloud without a reason' : text);
      out[index] = deadLetter(reason, result.code);
      continue;
    }
    const entry = ackEntry(row, result);
    let next: AckFold;
    try {
      // Only AckFold's fields are read for these event types (see AckFold).
      next = applyEvent(current(row) as Payment, { type: entry.type, at, data: entry.data });
      refuseOutsideSchema(next);
    } catch (error) {
      const agentError = toAgentError(error);
      if (!isAgentError(agentError, 'POS212') && !isAgentError(agentError, 'POS213')) {
        throw agentError;
      }
      const reason = safeReason(
        `cloud ${result.status}${result.outcome === undefined ? '' : ` (${result.outcome})`} ` +
          `could not be applied: ${agentError.reason}`,
      );
      if (state === 'dead') {
        out[index] = { key, action: 'already', paymentId, outboxState: 'dead', detail: reason };
        continue;
      }
      out[index] = deadLetter(reason, agentError.code);
      continue;
    }
    folds.set(paymentId, next);
    keyState.set(key, 'acked');
    changed.add(paymentId);
    entries.push(entry);
    const sameStatus = acked.get(result.status);
    if (sameStatus === undefined) acked.set(result.status, [key]);
    else sameStatus.push(key);
    out[index] = {
      key,
      action: 'acked',
      paymentId,
      paymentState: next.state,
      outboxState: 'acked',
    };
  }
  if (entries.length > 0) {
    k.appendAckEvent(
      at,
      { batches: [...batches], results: entries },
      ackEventText(batches, entries),
    );
    k.stmts.deleteSealedOfPayments.run(JSON.stringify([...changed]));
    for (const [status, keys] of acked) {
      k.stmts.ackKeys.run({ a: JSON.stringify(keys), s: status, b: at });
    }
    writePayments(deps, changed, folds, stored, at);
  }
  for (const kind of deps.kinds) kind.afterAcks(at);
  return out;
}

/** The value of each column of {@link ACK_PAYMENT_COLUMNS} in a fold. */
const COLUMN_OF: Record<AckPaymentColumn, (p: AckFold) => string | null> = {
  state: (p) => p.state,
  auth_code: (p) => p.authCode ?? null,
  decline_code: (p) => p.declineCode ?? null,
  reason: (p) => p.reason ?? null,
  approval: (p) => p.approval ?? null,
  updated_at: (p) => p.updatedAt,
};

/**
 * Writes the new projection of the `changed` payments with one set-based UPDATE that sets only
 * the columns the set changed in at least one of them (the others keep their value in every
 * row); `updated_at` is bound once as `at`, what `applyEvent` sets for every event.
 */
function writePayments(
  deps: AckSetDeps,
  changed: ReadonlySet<string>,
  folds: ReadonlyMap<string, AckFold>,
  stored: ReadonlyMap<string, AckFold>,
  at: string,
): void {
  const columns = ACK_PAYMENT_COLUMNS.filter((column) => {
    const value = COLUMN_OF[column];
    for (const id of changed) {
      const after = value(folds.get(id) as AckFold);
      // updated_at: `@b` unless a fold left another time (applyEvent sets the event's).
      if (after !== (column === 'updated_at' ? at : value(stored.get(id) as AckFold))) return true;
    }
    return false;
  });
  const rows: (string | null)[][] = [];
  for (const id of changed) {
    const p = folds.get(id) as AckFold;
    const row: (string | null)[] = [id];
    for (const column of columns) row.push(COLUMN_OF[column](p));
    rows.push(row);
  }
  deps.paymentUpdate(columns).run({ a: JSON.stringify(rows), b: at });
}

/**
 * Moves the outbox record `row.key` to `dead` with `reason` and appends a `dead_lettered` event
 * to its payment, inside the caller's transaction.
 *
 * @param current — the payment as this transaction has it (a full payment), when the caller
 *   has it; otherwise it is read.
 * @returns the payment after the event.
 */
export function deadLetterRecord(
  k: StoreKernel,
  row: { key: string; payment_id: string },
  reason: string,
  at: string,
  code: string | undefined,
  current?: Payment,
): Payment {
  k.stmts.setDead.run(reason, at, row.key);
  return k.record(
    row.payment_id,
    'dead_lettered',
    at,
    { key: row.key, reason, code: code === undefined ? undefined : safeReason(code).slice(0, 64) },
    current,
  );
}

function foldOf(row: TargetRow): AckFold {
  const fold: AckFold = { id: row[T.paymentId], state: row[T.state], updatedAt: row[T.updatedAt] };
  const approval = row[T.approval];
  const authCode = row[T.authCode];
  const declineCode = row[T.declineCode];
  const reason = row[T.reason];
  if (approval !== null) fold.approval = approval;
  if (authCode !== null) fold.authCode = authCode;
  if (declineCode !== null) fold.declineCode = declineCode;
  if (reason !== null) fold.reason = reason;
  return fold;
}

/**
 * The whole payment (for a `dead_lettered` event, which writes the full row): the stored row
 * with what the results before it in this set folded into it.
 */
function fullPayment(k: StoreKernel, paymentId: string, fold: AckFold | undefined): Payment {
  const payment = toPayment(k.stmts.paymentById.get(paymentId) as PaymentRow);
  if (fold === undefined) return payment;
  payment.state = fold.state;
  payment.updatedAt = fold.updatedAt;
  delete payment.approval;
  delete payment.authCode;
  delete payment.declineCode;
  delete payment.reason;
  if (fold.approval !== undefined) payment.approval = fold.approval;
  if (fold.authCode !== undefined) payment.authCode = fold.authCode;
  if (fold.declineCode !== undefined) payment.declineCode = fold.declineCode;
  if (fold.reason !== undefined) payment.reason = fold.reason;
  return payment;
}

/**
 * The ack event entry of one accepted/duplicate result: which payment event it stands for and
 * that event's canonical data (exactly what the projection check folds again).
 */
function ackEntry(row: TargetRow, result: AckResult): TypedAckEntry {
  const recordType = row[T.recordType];
  // A void record's acknowledgement changes no state: the payment is already declined or
  // canceled. What the cloud had done under the key is kept in the entry as the recorded
  // difference.
  const type: AckEntry['type'] =
    recordType === 'void'
      ? 'confirmed'
      : result.outcome === 'approved'
        ? 'cloud_approved'
        : result.outcome === 'declined'
          ? 'cloud_declined'
          : 'confirmed';
  // Strings only, absent fields left out: what canonicalJson + JSON.parse made of it before,
  // without that round trip per record (the ack event's canonical text is made once, for the set).
  const data: AckEntryData = { key: row[T.key], record: recordType, status: result.status };
  if (recordType === 'void') data.cloudOutcome = result.outcome ?? 'none';
  if (result.authCode !== undefined) data.authCode = result.authCode;
  if (result.declineCode !== undefined) data.declineCode = result.declineCode;
  if (result.reason !== undefined) data.reason = safeReason(result.reason);
  return { key: row[T.key], paymentId: row[T.paymentId], type, data };
}

/**
 * POS213 when the projected row breaks a rule of the `payments` schema (migration 1's CHECKs on
 * the fields an acknowledgement sets): the set-based UPDATE would fail for the whole set, so the
 * one result is dead-lettered instead, as a single-row write refused by the CHECK would be.
 */
function refuseOutsideSchema(payment: AckFold): void {
  const problem =
    payment.authCode !== undefined && !/^[0-9A-Za-z]{1,16}$/.test(payment.authCode)
      ? 'authCode must be 1–16 letters or digits'
      : payment.declineCode !== undefined && !/^[0-9A-Za-z_.-]{1,32}$/.test(payment.declineCode)
        ? 'declineCode must be 1–32 letters, digits, "_", "." or "-"'
        : payment.reason !== undefined && (payment.reason.length < 1 || payment.reason.length > 500)
          ? 'reason must be 1–500 characters'
          : undefined;
  if (problem !== undefined) {
    throw storeError('POS213', `the schema refuses the acknowledged payment: ${problem}`);
  }
}

/** Why a result from the wire cannot be applied at all, or `undefined`. */
function ackProblem(result: AckResult): string | undefined {
  if (typeof result !== 'object' || result === null) return 'the result is not an object';
  if (typeof result.key !== 'string' || result.key.length < 1 || result.key.length > 255) {
    return 'key must be 1–255 characters';
  }
  if (
    result.status !== 'accepted' &&
    result.status !== 'duplicate' &&
    result.status !== 'rejected'
  ) {
    return 'status must be accepted, duplicate or rejected';
  }
  if (
    result.outcome !== undefined &&
    result.outcome !== 'approved' &&
    result.outcome !== 'declined'
  ) {
    return 'outcome must be approved or declined';
  }
  for (const field of ['code', 'reason', 'authCode', 'declineCode'] as const) {
    const value = result[field];
    if (value !== undefined && typeof value !== 'string') return `${field} must be text`;
  }
  return undefined;
}
