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
 * - An acknowledgement message is applied as a set ({@link SqliteOutbox.applyAcks}, the set logic
 *   in ack-set.ts): one hash-chained `ack_events` row with the cloud's results, one DELETE of the
 *   set's sealed card data, one UPDATE of the outbox per ack status, one UPDATE of the payments
 *   whose projection changed, in one transaction (the outbox trigger would delete each
 *   acknowledged payment's sealed card data too) (PCI DSS 4.0.1 req. 3.3.1); the WAL frames that
 *   held it are truncated by the next {@link PaymentStore.maintenance} pass (at most a second
 *   later in the agent), not on the ack path.
 * - Records are validated once, when the lifecycle creates them; {@link SqliteOutbox.validatesRecords}
 *   tells the sync worker it need not check them again on every send.
 */
import type Database from 'better-sqlite3';
import { isAgentError, type AgentError } from '../common/agent-error.js';
import { applyAckSet, deadLetterRecord } from './ack-set.js';
import { storeError } from './errors.js';
import type { StoreKernel } from './kernel.js';
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
import { toOutboxRecord, type OutboxRow, type PendingRow } from './rows.js';
import { SQL, applyPaymentRowsSql, type AckPaymentColumn } from './sql.js';
import { checkInteger, safeReason } from './validate.js';

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
  /** The drain's reads in raw mode (rows as arrays: no object per row built by SQLite's side). */
  readonly #raw: { nextPending: Database.Statement; ackTargets: Database.Statement };

  /**
   * True: every record this outbox hands out was checked against the wire rules when it was
   * created (`checkNewPayment`, the schema's CHECKs), so the sync worker sends it without
   * validating it again.
   */
  readonly validatesRecords = true;

  constructor(kernel: StoreKernel) {
    this.#k = kernel;
    this.#raw = {
      nextPending: kernel.db.prepare(SQL.nextPending).raw(true),
      ackTargets: kernel.db.prepare(SQL.ackTargets).raw(true),
    };
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
      const rows = this.#k.read(() => this.#raw.nextPending.all(afterSeq, limit)) as RawPending[];
      const records: OutboxRecord[] = [];
      const unbuildable: { key: string; error: AgentError }[] = [];
      for (const raw of rows) {
        try {
          records.push(toOutboxRecord(pendingRow(raw)));
        } catch (error) {
          if (!isAgentError(error)) throw error;
          unbuildable.push({ key: raw[0], error });
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
            this.#k.savepoint(() => deadLetterRecord(this.#k, row, reason, at, error.code));
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
   *   the outbox is updated by one statement per status (accepted, duplicate), the payments by
   *   one statement that writes only the columns the set changes. A result the state machine
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
    const applied = this.#k.write(() =>
      applyAckSet(
        {
          kernel: this.#k,
          ackTargets: this.#raw.ackTargets,
          paymentUpdate: (columns) => this.#paymentUpdate(columns),
          kinds: this.#kinds,
        },
        results,
        batches,
      ),
    );
    if (applied.some((a) => a.action === 'acked')) this.#sealedDeleted = true;
    return applied;
  }

  /** The set-based payment UPDATE for `columns`, prepared once per column set (at most 64). */
  #paymentUpdate(columns: readonly AckPaymentColumn[]): Database.Statement {
    const name = columns.join(',');
    let statement = this.#paymentUpdates.get(name);
    if (statement === undefined) {
      statement = this.#k.db.prepare(applyPaymentRowsSql(columns));
      this.#paymentUpdates.set(name, statement);
    }
    return statement;
  }

  readonly #paymentUpdates = new Map<string, Database.Statement>();

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

/** A raw `nextPending` row (sql.ts), by position. */
type RawPending = [
  key: string,
  seq: number,
  type: 'payment' | 'void',
  at: string,
  id: string,
  amountMinor: number,
  currency: string,
  reference: string | null,
  paymentCreatedAt: string,
  cardToken: string | null,
  cardBrand: string | null,
  cardFirst6: string | null,
  cardLast4: string | null,
  cardExpiryMonth: number | null,
  cardExpiryYear: number | null,
  cardEntryMode: string | null,
  sealed: string | null,
  sredKsn: string | null,
  sredCiphertext: string | null,
  chain: Buffer,
];

/** The named row of a raw `nextPending` row: one object literal, one hidden class. */
function pendingRow(r: RawPending): PendingRow {
  return {
    key: r[0],
    seq: r[1],
    type: r[2],
    at: r[3],
    id: r[4],
    amount_minor: r[5],
    currency: r[6],
    reference: r[7],
    payment_created_at: r[8],
    card_token: r[9],
    card_brand: r[10],
    card_first6: r[11],
    card_last4: r[12],
    card_expiry_month: r[13],
    card_expiry_year: r[14],
    card_entry_mode: r[15],
    sealed: r[16],
    sred_ksn: r[17],
    sred_ciphertext: r[18],
    chain: r[19],
  };
}
