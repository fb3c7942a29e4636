/**
 * The transactional outbox (architecture.md §4, §5): the records the cloud must receive, in `seq` order,
 * keyed by idempotency key, on the {@link StoreKernel}.
 *
 * ```
 *  lifecycle ──queue()──► pending ──(sync worker: in flight, in memory only)──► acked
 *                           ▲  └──────────────── applyAcks(rejected) ─────────► dead
 *                           └──────────────── retryDead() ◄─────────────────────┘
 * ```
 *
 * - "In flight" is the sync worker's memory, not durable state: a restart sends every pending
 *   record again and the cloud dedupes by key. So publishing writes nothing; the worker asks for
 *   the records after the last `seq` it holds ({@link SqliteOutbox.nextPending}`(limit, afterSeq)`).
 * - An acknowledgement message is applied as a set ({@link SqliteOutbox.applyAcks}): one
 *   hash-chained `ack_events` row with the cloud's results, one UPDATE of the outbox, one UPDATE of
 *   the payments whose projection changed, in one transaction. The outbox trigger deletes each
 *   acknowledged payment's sealed card data (PCI DSS 4.0.1 req. 3.3.1); the WAL frames that held
 *   it are truncated by the next {@link PaymentStore.maintenance} pass (at most a second later in
 *   the agent), not on the ack path.
 * - Records are validated once, when the lifecycle creates them; {@link SqliteOutbox.validatesRecords}
 *   tells the sync worker it need not check them again on every send.
 */
import { isAgentError, type AgentError } from '../common/agent-error.js';
import { storeError } from './errors.js';
import type { AckEntry, StoreKernel } from './kernel.js';
import { toAgentError } from './kernel.js';
import {
  VOID_KEY_SUFFIX,
  type AckResult,
  type AppliedAck,
  type OutboxRecord,
  type OutboxState,
  type Payment,
  type QueueStats,
  type UplinkRecord,
} from './model.js';
import { applyEvent } from './projection.js';
import {
  toOutboxRecord,
  toPayment,
  toRow,
  type OutboxRow,
  type PaymentRow,
  type PendingRow,
} from './rows.js';
import { checkInteger, safeReason } from './validate.js';

/** A row of the `ackTargets` join: the outbox record of a key and its payment. */
interface AckTargetRow extends PaymentRow {
  key: string;
  seq: number;
  payment_id: string;
  record_type: 'payment' | 'void';
  outbox_state: OutboxState;
}

/** A dead record as `pos-agent queue` lists it. */
export interface DeadRecord {
  key: string;
  seq: number;
  paymentId: string;
  type: 'payment' | 'void';
  reason: string;
  attempts: number;
  updatedAt: string;
}

/**
 * Another kind of record in the outbox's `seq` space (issue 17: the batch records of
 * store-forward/batches.ts), sent by the sync worker with the payment records, in one order, and
 * acknowledged through the same {@link SqliteOutbox.applyAcks}. Every method runs inside the
 * outbox's read or write transaction.
 */
export interface RecordKind {
  /** Up to `limit` of its pending records with `seq > afterSeq`, in `seq` order, wire-shaped. */
  pending(limit: number, afterSeq: number): UplinkRecord[];
  /** How many of its records are still to deliver (for the queue depth). */
  depth(): number;
  /**
   * Inside the ack transaction, before the payment results: takes the results whose keys are its
   * own pending records and returns what it did with each, by index into `results`.
   */
  applyAcks(results: readonly AckResult[], at: string): Map<number, AppliedAck>;
  /** Inside the ack transaction, after every result of the set was applied. */
  afterAcks(at: string): void;
}

/** The SQLite outbox; see the file comment. Obtain it from `PaymentStore.outbox`. */
export class SqliteOutbox {
  readonly #k: StoreKernel;
  #sealedDeleted = false;
  readonly #kinds: RecordKind[] = [];

  /**
   * True: every record this outbox hands out was checked against the wire rules when it was
   * created (`checkNewPayment`, the schema's CHECKs), so the sync worker sends it without
   * validating it again.
   */
  readonly validatesRecords = true;

  constructor(kernel: StoreKernel) {
    this.#k = kernel;
  }

  /** Adds another kind of record to the outbox (issue 17: batch records). */
  addKind(kind: RecordKind): void {
    this.#kinds.push(kind);
  }

  /**
   * Queues the outbox record of `payment`'s latest event, inside the caller's transaction.
   * A void of a payment the cloud already has a record of gets its own key
   * (`<key>.void`); a void of a payment that never had one (declined after an ambiguous timeout)
   * carries the payment's own key, so the cloud finds the authorization it may have made.
   */
  queue(payment: Payment, type: 'payment' | 'void', at: string): void {
    const s = this.#k.stmts;
    const eventSeq = this.#k.headSeq();
    const { seq } = s.nextOutboxSeq.get() as { seq: number };
    const hasPaymentRecord =
      type === 'void' &&
      (s.outboxOfPayment.all(payment.id) as OutboxRow[]).some((row) => row.type === 'payment');
    const key = hasPaymentRecord
      ? `${payment.idempotencyKey}${VOID_KEY_SUFFIX}`
      : payment.idempotencyKey;
    s.insertOutbox.run({ key, seq, payment_id: payment.id, event_seq: eventSeq, type, at });
  }

  /**
   * Up to `limit` pending records with `seq > afterSeq`, in `seq` order, shaped for the wire
   * (architecture.md §5). Nothing is marked: the caller keeps what it sent in memory and asks for the
   * records after the last seq it holds.
   *
   * A pending record that cannot be built (POS221: e.g. its payment has no card) would block the
   * queue forever: it is moved to `dead` with the reason (a `dead_lettered` event; listed by
   * {@link deadRecords}, retried with {@link retryDead}) and the records after it are returned.
   * That is the only write this method makes.
   *
   * @param limit — 1–10000.
   * @param afterSeq — integer ≥ 0; default 0 (from the oldest pending record).
   * @throws AgentError POS213 limit or afterSeq out of range.
   */
  nextPending(limit: number, afterSeq = 0): UplinkRecord[] {
    checkInteger('limit', limit, 1, 10_000);
    checkInteger('afterSeq', afterSeq, 0, Number.MAX_SAFE_INTEGER);
    const records: UplinkRecord[] = this.#nextPaymentRecords(limit, afterSeq);
    if (this.#kinds.length === 0) return records;
    const others = this.#k.read(() => this.#kinds.flatMap((k) => k.pending(limit, afterSeq)));
    if (others.length === 0) return records;
    return [...records, ...others].sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  #nextPaymentRecords(limit: number, afterSeq: number): OutboxRecord[] {
    // Each round dead-letters at least one pending record, so the loop ends.
    for (;;) {
      const rows = this.#k.read(() =>
        this.#k.stmts.nextPending.all(afterSeq, limit),
      ) as PendingRow[];
      const records: OutboxRecord[] = [];
      const unbuildable: { key: string; error: AgentError }[] = [];
      for (const row of rows) {
        try {
          records.push(toOutboxRecord(row));
        } catch (error) {
          if (!isAgentError(error)) throw error;
          unbuildable.push({ key: row.key, error });
        }
      }
      if (unbuildable.length === 0) return records;
      this.#k.write(() => {
        const at = this.#k.now();
        for (const { key, error } of unbuildable) {
          const row = this.#k.stmts.outboxByKey.get(key) as OutboxRow | undefined;
          if (row?.state !== 'pending') continue;
          const reason = safeReason(`the record cannot be built for the wire: ${error.message}`);
          try {
            this.#k.savepoint(() => this.#deadLetter(row, reason, at, error.code));
          } catch {
            // The payment cannot even take its dead_lettered event: the record still leaves the
            // queue, visible as dead with its reason.
            this.#k.stmts.setDead.run(reason, at, key);
          }
        }
      });
    }
  }

  /**
   * Applies the cloud's acknowledgements as ONE set, in one transaction:
   *
   * - `rejected` → outbox `dead` with `code: reason` (PAN-shaped runs redacted, ≤ 500
   *   characters) and a `dead_lettered` event on its payment (rare: one event each).
   * - `accepted`/`duplicate` → outbox `acked` (the trigger deletes the sealed card data), and the
   *   payment → `approved` (`cloud_approved`, `authCode`), `declined`/`reversed`
   *   (`cloud_declined`) or `confirmed`. All of them are recorded in ONE hash-chained ack event;
   *   the outbox and the payments are updated by one statement each. A result the state machine
   *   cannot apply goes to `dead` with the reason instead — never lost silently.
   * - a key already `acked` (or already `dead`, for a rejection), or repeated within the set →
   *   `already`, nothing changes: a second acknowledgement is harmless.
   * - an unknown key → `unknown_key`; a malformed result → `invalid`; neither throws.
   *
   * @param batches — the batch ids the results came in (kept in the ack event); optional.
   * @returns one {@link AppliedAck} per result, in order.
   * @throws AgentError POS206 closed; POS207 SQLite could not write (nothing changed).
   */
  applyAcks(results: readonly AckResult[], batches: readonly string[] = []): AppliedAck[] {
    const applied = this.#k.write(() => this.#applySet(results, batches));
    if (applied.some((a) => a.action === 'acked')) this.#sealedDeleted = true;
    return applied;
  }

  /**
   * True when acknowledgements deleted sealed card data since the last WAL checkpoint: the WAL
   * may still hold the frames that wrote it, so `PaymentStore.maintenance()` checkpoints.
   */
  get walHoldsDeletedCardData(): boolean {
    return this.#sealedDeleted;
  }

  /** Called by the store after a truncating checkpoint. */
  walCheckpointed(): void {
    this.#sealedDeleted = false;
  }

  /**
   * Start-up, for databases written by agents before issue 9: every `in_flight` row back to
   * `pending` (in flight is memory now; the cloud dedupes a resend by key).
   *
   * @returns how many records were released.
   */
  releaseInFlight(): number {
    return this.#k.write(() => this.#k.stmts.releaseInFlight.run(this.#k.now()).changes);
  }

  /**
   * For the field tech: `dead` records back to `pending`, each with a `requeued` event. Records
   * in another state are skipped.
   *
   * @param keys — the records to retry; default: every dead record.
   * @returns how many records were requeued.
   * @throws AgentError POS215 a key that has no outbox record (nothing is changed).
   */
  retryDead(keys?: readonly string[]): number {
    return this.#k.write(() => {
      const at = this.#k.now();
      const rows =
        keys === undefined
          ? (this.#k.stmts.deadOutbox.all() as OutboxRow[])
          : keys.map((key) => this.#outboxRow(key));
      let requeued = 0;
      for (const row of rows) {
        if (row.state !== 'dead') continue;
        this.#k.stmts.setPending.run(at, row.key);
        this.#k.record(row.payment_id, 'requeued', at, { key: row.key });
        requeued++;
      }
      return requeued;
    });
  }

  /**
   * Outbox counts per state (kept by trigger: four rows read, flat in table size) and `oldestAt`:
   * the `at` of the first record, in `seq` order, still to deliver; `null` when there is none.
   */
  queueStats(): QueueStats {
    return this.#k.read(() => {
      const counts: Record<OutboxState, number> = { pending: 0, in_flight: 0, acked: 0, dead: 0 };
      for (const row of this.#k.stmts.countByState.all() as { state: OutboxState; n: number }[]) {
        counts[row.state] = row.n;
      }
      const oldest = this.#k.stmts.oldestQueued.get() as { at: string | null };
      const others = this.#kinds.reduce((n, kind) => n + kind.depth(), 0);
      return {
        depth: counts.pending + counts.in_flight + others,
        pending: counts.pending,
        inFlight: counts.in_flight,
        dead: counts.dead,
        acked: counts.acked,
        oldestAt: oldest.at,
      };
    });
  }

  /** Dead outbox records with their reasons, in `seq` order (for `pos-agent queue`). */
  deadRecords(): DeadRecord[] {
    return (this.#k.read(() => this.#k.stmts.deadOutbox.all()) as OutboxRow[]).map((row) => ({
      key: row.key,
      seq: row.seq,
      paymentId: row.payment_id,
      type: row.type,
      reason: row.dead_reason ?? '',
      attempts: row.attempts,
      updatedAt: row.updated_at,
    }));
  }

  #applySet(results: readonly AckResult[], batches: readonly string[]): AppliedAck[] {
    const k = this.#k;
    const at = k.now();
    const out: AppliedAck[] = [];
    const keys: string[] = [];
    for (const result of results) {
      if (ackProblem(result) === undefined) keys.push(result.key);
    }
    const targets = new Map<string, AckTargetRow>();
    if (keys.length > 0) {
      for (const row of k.stmts.ackTargets.all(
        JSON.stringify([...new Set(keys)]),
      ) as AckTargetRow[]) {
        targets.set(row.key, row);
      }
    }
    const payments = new Map<string, Payment>();
    const current = (row: AckTargetRow): Payment => {
      const known = payments.get(row.payment_id);
      if (known !== undefined) return known;
      const payment = toPayment(row);
      payments.set(row.payment_id, payment);
      return payment;
    };
    const entries: AckEntry[] = [];
    const acked: { key: string; status: string }[] = [];
    // The payments of the acknowledged records: their rows change, their sealed card data goes.
    const changed = new Set<string>();
    // Each key's outbox state as the results before it in this set leave it: the set has the
    // meaning of applying its results one by one, in order. A rejection's dead_lettered event is
    // written at once and the acceptances go into the ack event at the end; the fold does not
    // depend on that order (dead_lettered leaves the state as it is).
    const keyState = new Map<string, OutboxState>();
    // Results for the other record kinds' records (batch records, issue 17) are theirs.
    const own = new Map<number, AppliedAck>();
    for (const kind of this.#kinds) {
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
      const paymentId = row.payment_id;
      const state = keyState.get(key) ?? row.outbox_state;
      if (state === 'acked' || (state === 'dead' && result.status === 'rejected')) {
        out[index] = { key, action: 'already', paymentId, outboxState: state };
        continue;
      }
      const deadLetter = (reason: string, code: string | undefined): AppliedAck => {
        payments.set(paymentId, this.#deadLetter(row, reason, at, code, current(row)));
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
      let next: Payment;
      try {
        next = applyEvent(current(row), { type: entry.type, at, data: entry.data });
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
      payments.set(paymentId, next);
      keyState.set(key, 'acked');
      changed.add(paymentId);
      entries.push(entry);
      acked.push({ key, status: result.status });
      out[index] = {
        key,
        action: 'acked',
        paymentId,
        paymentState: next.state,
        outboxState: 'acked',
      };
    }
    if (entries.length > 0) {
      k.appendAckEvent(at, { batches: [...batches], results: entries });
      k.stmts.deleteSealedOfPayments.run(JSON.stringify([...changed]));
      k.stmts.ackKeys.run({ a: JSON.stringify(acked), b: at });
      const rows = [...changed].map((id) => toRow(payments.get(id) as Payment));
      k.stmts.applyPaymentRows.run({ a: JSON.stringify(rows) });
    }
    for (const kind of this.#kinds) kind.afterAcks(at);
    return out;
  }

  #deadLetter(
    row: { key: string; payment_id: string },
    reason: string,
    at: string,
    code: string | undefined,
    current?: Payment,
  ): Payment {
    this.#k.stmts.setDead.run(reason, at, row.key);
    return this.#k.record(
      row.payment_id,
      'dead_lettered',
      at,
      {
        key: row.key,
        reason,
        code: code === undefined ? undefined : safeReason(code).slice(0, 64),
      },
      current,
    );
  }

  #outboxRow(key: string): OutboxRow {
    const row = this.#k.stmts.outboxByKey.get(key) as OutboxRow | undefined;
    if (row === undefined) {
      throw storeError(
        'POS215',
        `no outbox record has key ${JSON.stringify(String(key).slice(0, 64))}; nothing was changed; ` +
          'fix: use keys from nextPending() or `pos-agent queue`',
        { details: { key } },
      );
    }
    return row;
  }
}

/**
 * The ack event entry of one accepted/duplicate result: which payment event it stands for and
 * that event's canonical data (exactly what the projection check folds again).
 */
function ackEntry(row: AckTargetRow, result: AckResult): AckEntry {
  // A void record's acknowledgement changes no state: the payment is already declined or
  // canceled. What the cloud had done under the key is kept in the entry as the recorded
  // difference.
  const type: AckEntry['type'] =
    row.record_type === 'void'
      ? 'confirmed'
      : result.outcome === 'approved'
        ? 'cloud_approved'
        : result.outcome === 'declined'
          ? 'cloud_declined'
          : 'confirmed';
  // Strings only, absent fields left out: what canonicalJson + JSON.parse made of it before,
  // without that round trip per record (the ack event's canonical text is made once, for the set).
  const data: Record<string, string> = { key: row.key, record: row.record_type };
  if (row.record_type === 'void') data.cloudOutcome = result.outcome ?? 'none';
  data.status = result.status;
  if (result.authCode !== undefined) data.authCode = result.authCode;
  if (result.declineCode !== undefined) data.declineCode = result.declineCode;
  if (result.reason !== undefined) data.reason = safeReason(result.reason);
  return { key: row.key, paymentId: row.payment_id, type, data };
}

/**
 * POS213 when the projected row breaks a rule of the `payments` schema (migration 1's CHECKs on
 * the fields an acknowledgement sets): the set-based UPDATE would fail for the whole set, so the
 * one result is dead-lettered instead, as a single-row write refused by the CHECK would be.
 */
function refuseOutsideSchema(payment: Payment): void {
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
  if (!['accepted', 'duplicate', 'rejected'].includes(result.status)) {
    return 'status must be accepted, duplicate or rejected';
  }
  if (result.outcome !== undefined && !['approved', 'declined'].includes(result.outcome)) {
    return 'outcome must be approved or declined';
  }
  for (const field of ['code', 'reason', 'authCode', 'declineCode'] as const) {
    const value = result[field];
    if (value !== undefined && typeof value !== 'string') return `${field} must be text`;
  }
  return undefined;
}
