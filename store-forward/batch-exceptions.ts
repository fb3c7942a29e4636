/**
 * Reconciliation exceptions (issue 17, docs/reconciliation.md): raised when an answered batch
 * report is matched ({@link ExceptionDesk.match}), worked by a person
 * ({@link ExceptionDesk.resolve}: requeue, void or accept). Every change is one batch event
 * written through `BatchTables.append`; `BatchBook` (batches.ts) is the public face.
 */
import {
  ALLOWED_RESOLUTIONS,
  RESOLUTIONS,
  type BatchException,
  type CloudBatchAnswer,
  type Resolution,
} from './batch-types.js';
import { compareBatch, reconStateOf } from './batch-compare.js';
import {
  b64url,
  toException,
  type BatchRow,
  type ExceptionRow,
  type RecordRow,
} from './batch-rows.js';
import type { BatchTables } from './batch-tables.js';
import {
  APPROVED_STATES,
  type BatchReportRecord,
  type OutboxRecord,
  type Payment,
} from './model.js';
import type { SqliteOutbox } from './outbox.js';
import { reconError } from './reconciliation-errors.js';
import { toPayment, type PaymentRow } from './rows.js';
import { safeReason } from './validate.js';

/** Raises and resolves exceptions; see the file comment. Obtain through `BatchBook`. */
export class ExceptionDesk {
  readonly #t: BatchTables;
  readonly #outbox: SqliteOutbox;

  constructor(tables: BatchTables, outbox: SqliteOutbox) {
    this.#t = tables;
    this.#outbox = outbox;
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
    const records = this.#t.k.write(() => {
      const row = this.#t.s.exceptionById.get(exceptionId) as ExceptionRow | undefined;
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
      const at = this.#t.k.now();
      const queued: string[] = [];
      const batch = this.#t.row(row.batch_id);
      if (resolution === 'requeue') queued.push(this.#queueResend(row, batch, at));
      if (resolution === 'void') queued.push(...this.#voidFor(row, batch, at));
      if (resolution !== 'accept') queued.push(this.#queueRematch(batch, at));
      this.#t.append(row.batch_id, 'exception_resolved', at, {
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
      this.#t.k.read(() => this.#t.s.exceptionById.get(exceptionId)) as ExceptionRow,
    );
    return { exception, records };
  }

  /**
   * Compares an answered report once every record of its batch sent before it is acknowledged,
   * as ONE `batch_reconciled` event raising the findings not already open or accepted; called
   * for every unmatched answered report after acks (inside their transaction).
   */
  match(record: RecordRow, at: string): void {
    const waiting = (
      this.#t.s.earlierUndelivered.get({ batch: record.batch_id, seq: record.seq }) as { n: number }
    ).n;
    if (waiting > 0) return;
    const body = JSON.parse(record.body) as BatchReportRecord;
    const answer = JSON.parse(record.answer as string) as CloudBatchAnswer;
    const current = new Map(
      (this.#t.s.paymentsOfBatch.all(record.batch_id) as PaymentRow[]).map((r) => [
        r.idempotency_key,
        r,
      ]),
    );
    const voidedLater = new Set(
      (this.#t.s.voidsAfter.all(record.batch_id, record.seq) as { id: string }[]).map((r) => r.id),
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
    let nextId = (this.#t.s.nextExceptionId.get() as { id: number }).id;
    const raised: Array<Record<string, unknown>> = [];
    for (const finding of compareBatch(here, answer)) {
      const last = this.#t.s.lastOfKind.get(record.batch_id, finding.kind, finding.key ?? '') as
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
    this.#t.append(record.batch_id, 'batch_reconciled', at, {
      recordKey: record.wire_key,
      kind: body.batch.kind,
      result: raised.length === 0 ? 'matched' : 'exceptions',
      cloudTotals: answer.totals,
      raised,
    });
    this.#t.s.setMatched.run(record.key);
  }

  /** A new report of the batch after a resolution, so the cloud's answer shows its effect. */
  #queueRematch(batch: BatchRow, at: string): string {
    const kind = batch.state === 'closed' ? 'close' : 'check';
    const last = this.#t.lastReport(batch.id, kind);
    const key = this.#t.nextReportKey(batch.id, kind);
    if (kind === 'close' && last !== undefined) {
      const previous = JSON.parse(last.body) as BatchReportRecord;
      this.#t.queueReport(batch, 'close', key, at, {
        ...previous.batch,
        closedAt: previous.batch.closedAt ?? at,
        chain: previous.chain,
      });
      return key;
    }
    this.#t.queueReport(batch, kind, key, at, this.#t.liveReport(batch.id));
    return key;
  }

  #paymentOf(row: ExceptionRow): PaymentRow {
    const payment =
      row.idempotency_key === null
        ? undefined
        : (this.#t.s.paymentByKey.get(row.idempotency_key) as PaymentRow | undefined);
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
    const chainRow = this.#t.s.chainOfPaymentRecord.get(p.id) as { hash: Buffer } | undefined;
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
      chain: b64url(chainRow?.hash ?? this.#t.k.head().hash),
    };
    return record;
  }

  #queueResend(row: ExceptionRow, batch: BatchRow, at: string): string {
    const payment = this.#paymentOf(row);
    const body = this.#wireRecord(payment, payment.idempotency_key, 'payment', at);
    const key = `${batch.id}.resend.${row.id}`;
    this.#t.insertRecord(batch.id, 'resend', key, payment.idempotency_key, body, at);
    return key;
  }

  #voidFor(row: ExceptionRow, batch: BatchRow, at: string): string[] {
    const payment = this.#paymentOf(row);
    const current: Payment = toPayment(payment);
    if (APPROVED_STATES.includes(current.state)) {
      // Charged here: cancel it like the POS app would, which queues its void record.
      const canceled = this.#t.k.record(current.id, 'canceled', at, {
        reason: `voided by a tech resolving reconciliation exception ${row.id} (${row.kind})`,
      });
      this.#outbox.queue(canceled, 'void', at);
      return [`${current.idempotencyKey}.void`];
    }
    // Not charged here, charged there: a void for what the cloud charged.
    const wireKey = `${current.idempotencyKey}.void.r${row.id}`;
    const body = this.#wireRecord(payment, wireKey, 'void', at);
    const key = `${batch.id}.void.${row.id}`;
    this.#t.insertRecord(batch.id, 'void', key, wireKey, body, at);
    return [key];
  }
}
