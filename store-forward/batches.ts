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
 * `applyBatchEvent` on the write path and again by {@link BatchBook.checkProjection}, like the
 * payments (projection.ts). The events are on the one hash chain (kernel.ts).
 *
 * The parts, one job a file (issue 15):
 * - batch-types.ts — the shapes the agent prints and the cloud answers (types only);
 * - batch-compare.ts — the comparison rules with the cloud's answer, and totals (pure);
 * - batch-fold.ts — the fold of batch events (pure);
 * - batch-rows.ts — rows, SQL and the mappers between rows and folds (pure);
 * - batch-tables.ts — reads of the rows and the two writes every change goes through;
 * - batch-exceptions.ts — raising exceptions on an answer, and resolving them;
 * - this file — the book: reading, close, drift check, the outbox's record kind, the integrity
 *   check.
 */
import { v7 as uuidv7 } from 'uuid';
import { answerProblem } from './batch-compare.js';
import { ExceptionDesk } from './batch-exceptions.js';
import { applyBatchEvent, openBatchFold } from './batch-fold.js';
import {
  b64url,
  batchDifferences,
  exceptionDifferences,
  type BatchRow,
  type ExceptionRow,
  type RecordRow,
  toException,
} from './batch-rows.js';
import { BatchTables } from './batch-tables.js';
import type { Batch, BatchException, BatchStatus, CloseResult, Resolution } from './batch-types.js';
import { canonicalJson } from './hash-chain.js';
import type { StoreKernel } from './kernel.js';
import type {
  AckResult,
  AppliedAck,
  BatchReportRecord,
  BatchTotals,
  UplinkRecord,
} from './model.js';
import type { RecordKind, SqliteOutbox } from './outbox.js';
import { reconError } from './reconciliation-errors.js';
import { safeReason } from './validate.js';

/** The batches of this terminal; see the file comment. Obtain from `PaymentStore.batches`. */
export class BatchBook implements RecordKind {
  readonly #t: BatchTables;
  readonly #desk: ExceptionDesk;

  constructor(kernel: StoreKernel, outbox: SqliteOutbox) {
    this.#t = new BatchTables(kernel);
    this.#desk = new ExceptionDesk(this.#t, outbox);
  }

  // ------------------------------------------------------------------ reading

  /** The open batch with its running totals. */
  current(): Batch {
    return this.#t.k.read(() => this.#t.toBatch(this.#t.openRow()));
  }

  /**
   * A batch by id, or the open one without an id.
   *
   * @throws AgentError POS603 no batch with this id.
   */
  get(id?: string): Batch {
    return this.#t.k.read(() =>
      this.#t.toBatch(id === undefined ? this.#t.openRow() : this.#t.row(id)),
    );
  }

  /**
   * The newest closed batches first (at most `limit`, 1–1000), with their stored totals. Unlike
   * {@link list} it never sums the open batch's payments, so its cost does not grow with the
   * open batch: the reconciliation reads it after every ack message and at start-up (issue 9).
   */
  listClosed(limit: number): Batch[] {
    const n = Math.max(1, Math.min(1000, Math.floor(limit)));
    return this.#t.k.read(() =>
      (this.#t.s.recentClosed.all(n) as BatchRow[]).map((row) => this.#t.toBatch(row)),
    );
  }

  /** The newest batches first (at most `limit`, 1–1000, default 20). */
  list(limit = 20): Batch[] {
    const n = Math.max(1, Math.min(1000, Math.floor(limit)));
    return this.#t.k.read(() =>
      (this.#t.s.listBatches.all(n) as BatchRow[]).map((row) => this.#t.toBatch(row)),
    );
  }

  /**
   * Exceptions, oldest first: the open ones (default), or every one newest first (`all`),
   * or those of one batch.
   */
  exceptions(filter: { all?: boolean; batchId?: string; limit?: number } = {}): BatchException[] {
    const limit = Math.max(1, Math.min(10_000, Math.floor(filter.limit ?? 1000)));
    return this.#t.k.read(() => {
      const rows =
        filter.batchId !== undefined
          ? (this.#t.s.exceptionsOfBatch.all(filter.batchId) as ExceptionRow[])
          : filter.all === true
            ? (this.#t.s.allExceptions.all(limit) as ExceptionRow[])
            : (this.#t.s.openExceptions.all(limit) as ExceptionRow[]);
      return rows.map(toException);
    });
  }

  /** The batch part of `/v1/status` and the status page. */
  status(): BatchStatus {
    return this.#t.k.read(() => {
      const open = this.#t.openRow();
      const last = this.#t.s.lastClosed.get() as BatchRow | undefined;
      const counts = this.#t.openCounts();
      const check = this.#t.s.lastAnsweredCheck.get() as RecordRow | undefined;
      let lastCheck: BatchStatus['lastCheck'] = null;
      if (check !== undefined) {
        const raised = (this.#t.s.exceptionsOfBatch.all(check.batch_id) as ExceptionRow[]).some(
          (e) => e.found_by === 'drift' && e.raised_at >= (check.acked_at ?? ''),
        );
        lastCheck = {
          at: check.acked_at ?? check.created_at,
          result: raised ? 'exceptions' : 'matched',
        };
      }
      return {
        open: { id: open.id, openedAt: open.opened_at, totals: this.#t.liveTotals(open.id) },
        lastClosed:
          last === undefined
            ? null
            : {
                id: last.id,
                closedAt: last.closed_at as string,
                reconciliation: last.reconciliation,
                totals: JSON.parse(last.totals as string) as BatchTotals,
              },
        openExceptions: counts.total,
        exceptionsByKind: counts.byKind,
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
    const result = this.#t.k.write(() => {
      const open = this.#t.openRow();
      const inProgress = this.#t.s.inProgressOfBatch.all(open.id) as {
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
        this.#t.s.unforwardedOfBatch.all(open.id) as {
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
      const now = this.#t.k.now();
      const at = now < open.opened_at ? open.opened_at : now;
      const report = this.#t.liveReport(open.id);
      const recordKey = this.#t.nextReportKey(open.id, 'close');
      const nextBatch = {
        id: `bat_${uuidv7({ msecs: this.#t.k.clock.now() })}`,
        terminal: options.terminal ?? open.terminal,
        openedAt: at,
      };
      const data = {
        terminal: open.terminal,
        openedAt: open.opened_at,
        closedAt: at,
        forced: options.force === true,
        unforwarded,
        totals: report.totals,
        firstEventSeq: report.firstEventSeq,
        lastEventSeq: report.lastEventSeq,
        chainHead: report.chainHead,
        recordKey,
        next: nextBatch,
      };
      const event = this.#t.append(open.id, 'batch_closed', at, data);
      this.#t.s.insertBatch.run({
        id: nextBatch.id,
        terminal: nextBatch.terminal,
        opened_at: nextBatch.openedAt,
      });
      this.#t.queueReport(open, 'close', recordKey, at, {
        ...report,
        closedAt: at,
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
    return this.#t.k.write(() => {
      const open = this.#t.openRow();
      const head = this.#t.k.head();
      const last = this.#t.lastReport(open.id, 'check');
      if (last !== undefined) {
        if (last.state === 'pending' || (last.state === 'acked' && last.matched === 0)) {
          return undefined;
        }
        const body = JSON.parse(last.body) as BatchReportRecord;
        if (body.batch.lastEventSeq >= head.seq) return undefined;
      }
      const lines = this.#t.lines(open.id);
      if (lines.length === 0) return undefined;
      const key = this.#t.nextReportKey(open.id, 'check');
      this.#t.queueReport(open, 'check', key, this.#t.k.now(), this.#t.liveReport(open.id, lines));
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
    return this.#desk.resolve(exceptionId, resolution, note);
  }

  // ------------------------------------------------------------------ RecordKind (outbox.ts)

  /** See {@link RecordKind.pending}. */
  pending(limit: number, afterSeq: number): UplinkRecord[] {
    return (this.#t.s.pendingRecords.all(afterSeq, limit) as RecordRow[]).map(
      (row) => ({ ...(JSON.parse(row.body) as object), seq: row.seq }) as UplinkRecord,
    );
  }

  /** See {@link RecordKind.depth}. */
  depth(): number {
    return (this.#t.s.pendingCount.get() as { n: number }).n;
  }

  /** See {@link RecordKind.applyAcks}: the cloud's answer is kept; matching is in afterAcks. */
  applyAcks(results: readonly AckResult[], at: string): Map<number, AppliedAck> {
    const out = new Map<number, AppliedAck>();
    const pending = this.#t.s.allPendingRecords.all() as RecordRow[];
    if (pending.length === 0) return out;
    const byKey = new Map<string, RecordRow>();
    for (const row of pending) if (!byKey.has(row.wire_key)) byKey.set(row.wire_key, row);
    results.forEach((result, index) => {
      const row = typeof result?.key === 'string' ? byKey.get(result.key) : undefined;
      if (row === undefined) return;
      byKey.delete(result.key);
      const deadLetter = (text: string): void => {
        const reason = safeReason(text);
        this.#t.s.deadRecord.run({ key: row.key, reason });
        out.set(index, {
          key: result.key,
          action: 'dead_lettered',
          outboxState: 'dead',
          detail: reason,
        });
      };
      if (result.status === 'rejected') {
        const text = [result.code, result.reason].filter((p) => p !== undefined).join(': ');
        deadLetter(text === '' ? 'rejected by the cloud without a reason' : text);
        return;
      }
      let answer: string | null = null;
      if (row.kind === 'close' || row.kind === 'check') {
        const given = (result as { batch?: unknown }).batch;
        const problem = answerProblem(given);
        if (problem !== undefined) {
          deadLetter(`${problem} (POS607)`);
          return;
        }
        answer = canonicalJson(given);
      }
      this.#t.s.ackRecord.run({ key: row.key, at, answer });
      out.set(index, { key: result.key, action: 'acked', outboxState: 'acked' });
    });
    return out;
  }

  /** See {@link RecordKind.afterAcks}: matches every answered report whose batch is ready. */
  afterAcks(at: string): void {
    for (const row of this.#t.s.unmatched.all() as RecordRow[]) this.#desk.match(row, at);
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
    return this.#t.k.read(() => {
      const problems: string[] = [];
      const rows = this.#t.s.allBatches.all() as BatchRow[];
      rows.forEach((row, index) => {
        let fold = openBatchFold();
        for (const e of this.#t.s.eventsOfBatch.all(row.id) as {
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
        const exRows = this.#t.s.exceptionsOfBatch.all(row.id) as ExceptionRow[];
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
        if (index > 0 && (this.#t.s.namedAsNext.get(row.id) as { n: number }).n === 0) {
          problems.push(`batch ${row.id} was opened by no batch_closed event (POS221)`);
        }
      });
      return problems;
    });
  }
}
