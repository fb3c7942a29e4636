/**
 * The batch tables on one connection (issue 17): reads of a batch and its live totals, and the
 * two writes every batch change goes through — {@link BatchTables.append} (a batch event and
 * what its fold makes of the rows) and {@link BatchTables.insertRecord} (a record for the cloud
 * in the outbox's seq order). Used by `BatchBook` (batches.ts) and `ExceptionDesk`
 * (batch-exceptions.ts), inside their transactions.
 */
import type Database from 'better-sqlite3';
import type { StoreKernel } from './kernel.js';
import type { Batch, ExceptionKind } from './batch-types.js';
import { applyBatchEvent } from './batch-fold.js';
import { totalsOf } from '../common/reconciliation.js';
import { reconStateOf } from './batch-compare.js';
import {
  b64url,
  foldOfRows,
  prepareBatchStatements,
  type BatchRow,
  type BatchStmts,
  type ExceptionRow,
  type RecordRow,
} from './batch-rows.js';
import { canonicalJson } from './hash-chain.js';
import type {
  BatchReportLine,
  BatchReportRecord,
  BatchTotals,
  CardBrand,
  PaymentState,
} from './model.js';
import { reconError } from './reconciliation-errors.js';
import type { PaymentRow } from './rows.js';

/**
 * A batch report's content: what `<batch>.close.<n>` and `<batch>.check.<n>` carry (the fields
 * of {@link BatchReportRecord} the report makes; the record adds its id, kind and terminal).
 */
export type BatchReport = Pick<
  BatchReportRecord['batch'],
  'closedAt' | 'firstEventSeq' | 'lastEventSeq' | 'chainHead' | 'totals' | 'payments'
> &
  Pick<BatchReportRecord, 'chain'>;

/** The batch tables; see the file comment. */
export class BatchTables {
  /** The store's kernel (transactions, clock, chain). */
  readonly k: StoreKernel;
  /** The prepared batch statements (batch-rows.ts). */
  readonly s: BatchStmts;

  constructor(kernel: StoreKernel) {
    this.k = kernel;
    this.s = prepareBatchStatements(kernel.db);
    this.#totalChanges = kernel.db.prepare('SELECT total_changes()').pluck();
  }

  /**
   * The open batch's row.
   *
   * @throws AgentError POS603 there is no open batch (the store is damaged).
   */
  openRow(): BatchRow {
    const row = this.s.openBatch.get() as BatchRow | undefined;
    if (row === undefined) {
      throw reconError(
        'POS603',
        'there is no open batch; fix: run `pos-agent verify` and report (the close opens the next one)',
      );
    }
    return row;
  }

  /**
   * A batch's row by id.
   *
   * @throws AgentError POS603 no batch with this id.
   */
  row(id: string): BatchRow {
    const row = this.s.batchById.get(id) as BatchRow | undefined;
    if (row === undefined) {
      throw reconError(
        'POS603',
        `batch ${JSON.stringify(String(id).slice(0, 64))} not found; fix: list the batches with \`pos-agent batch show --all\``,
        { details: { batchId: id } },
      );
    }
    return row;
  }

  /** A batch as the agent prints it; the open one with its running totals. */
  toBatch(row: BatchRow): Batch {
    const openExceptions = (this.s.exceptionsOfBatch.all(row.id) as ExceptionRow[]).filter(
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
        row.totals === null ? this.liveTotals(row.id) : (JSON.parse(row.totals) as BatchTotals),
      firstEventSeq: row.state === 'open' ? this.firstEventSeq(row.id) : row.first_event_seq,
      lastEventSeq: row.last_event_seq,
      chainHead: row.chain_head,
      closeSeq: row.close_seq,
      reconciliation: row.reconciliation,
      reconciledAt: row.reconciled_at,
      openExceptions,
    };
  }

  /** Seq of the first event of a payment of the batch, or null when it has none. */
  firstEventSeq(batchId: string): number | null {
    return (this.s.firstEventSeqOfBatch.get(batchId) as { seq: number | null }).seq;
  }

  /**
   * What changed the database last: rows changed by this connection (`total_changes()`), the
   * commits of other connections (`PRAGMA data_version`, e.g. `pos-agent batch resolve` from
   * another process) and this kernel's rollbacks (which undo rows without lowering
   * `total_changes()`). Equal marks = no row of any table changed in between.
   */
  #changeMark(): string {
    const changes = this.#totalChanges.get() as number;
    const version = this.k.db.pragma('data_version', { simple: true }) as number;
    return `${changes}/${version}/${this.k.rollbacks}`;
  }

  readonly #totalChanges: Database.Statement;
  #totalsCache: { batchId: string; mark: string; json: string } | undefined;

  /**
   * The totals of the batch's payments now (grouped in SQL: flat in memory). Summing them costs
   * a pass over the batch's payments, and `/v1/status`, the status page and every metrics scrape
   * ask for the open batch's totals: the answer is kept until a row changes (issue 9: reads that
   * do not grow with the stored history), and each caller gets its own copy.
   */
  liveTotals(batchId: string): BatchTotals {
    const mark = this.#changeMark();
    const cached = this.#totalsCache;
    if (cached !== undefined && cached.batchId === batchId && cached.mark === mark)
      return JSON.parse(cached.json) as BatchTotals;
    const totals = this.#sumTotals(batchId);
    this.#totalsCache = { batchId, mark, json: JSON.stringify(totals) };
    return totals;
  }

  #sumTotals(batchId: string): BatchTotals {
    const groups = this.s.batchGroups.all(batchId) as {
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

  /** One report line per payment of the batch, in creation order. */
  lines(batchId: string): BatchReportLine[] {
    return (this.s.paymentsOfBatch.all(batchId) as PaymentRow[]).map((row) => {
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

  /** A report of the batch as it is now, up to the chain head (a check, or a rematch). */
  liveReport(batchId: string, lines = this.lines(batchId)): BatchReport {
    const head = this.k.head();
    return {
      firstEventSeq: this.firstEventSeq(batchId),
      lastEventSeq: head.seq,
      chainHead: b64url(head.hash),
      totals: this.liveTotals(batchId),
      payments: lines,
      chain: b64url(head.hash),
    };
  }

  /** The key of the batch's next report of `kind`: `<batch>.<kind>.<n>`. */
  nextReportKey(batchId: string, kind: 'close' | 'check'): string {
    const n = (this.s.countRecords.get(batchId, kind) as { n: number }).n + 1;
    return `${batchId}.${kind}.${n}`;
  }

  /** The batch's last report of `kind`, or undefined. */
  lastReport(batchId: string, kind: 'close' | 'check'): RecordRow | undefined {
    return this.s.lastReport.get(batchId, kind) as RecordRow | undefined;
  }

  /** Appends a batch event and writes what the fold makes of it (inside the transaction). */
  append(
    batchId: string,
    type: 'batch_closed' | 'batch_reconciled' | 'exception_resolved',
    at: string,
    data: Record<string, unknown>,
  ): { seq: number; hash: Buffer } {
    const row = this.row(batchId);
    const before = foldOfRows(row, this.s.exceptionsOfBatch.all(batchId) as ExceptionRow[]);
    const appended = this.k.appendBatchEvent(batchId, type, at, data);
    const parsed = JSON.parse(canonicalJson(data)) as Record<string, unknown>;
    const after = applyBatchEvent(before, { seq: appended.seq, type, at, data: parsed });
    if (before.state === 'open' && after.state === 'closed') {
      this.s.closeBatch.run({
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
      this.s.setReconciliation.run(after.reconciliation, after.reconciledAt, batchId);
    }
    for (const [id, ex] of after.exceptions) {
      const old = before.exceptions.get(id);
      if (old === undefined) {
        this.s.insertException.run({
          id,
          batch_id: batchId,
          kind: ex.kind,
          found_by: ex.foundBy,
          idempotency_key: ex.idempotencyKey,
          payment_id: ex.paymentId,
          detail: canonicalJson(ex.detail),
          raised_seq: ex.raisedSeq,
          raised_at: ex.raisedAt,
        });
      } else if (old.state === 'open' && ex.state === 'resolved') {
        this.s.resolveException.run({
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

  /**
   * Queues a record for the cloud at the outbox's next seq (inside the transaction).
   *
   * @param key — the record's key in `batch_records`; `wireKey` is the key the cloud sees.
   */
  insertRecord(
    batchId: string,
    kind: RecordRow['kind'],
    key: string,
    wireKey: string,
    body: object,
    at: string,
  ): void {
    this.s.insertRecord.run({
      key,
      seq: (this.k.stmts.nextOutboxSeq.get() as { seq: number }).seq,
      batch_id: batchId,
      kind,
      wire_key: wireKey,
      body: JSON.stringify(body),
      created_at: at,
    });
  }

  /** Queues a report of the batch (`close` or `check`) under `key`. */
  queueReport(
    batch: BatchRow,
    kind: 'close' | 'check',
    key: string,
    at: string,
    report: BatchReport,
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
    this.insertRecord(batch.id, kind, key, key, body, at);
  }

  /** Counts of open exceptions by kind, and their sum. */
  openCounts(): { byKind: Partial<Record<ExceptionKind, number>>; total: number } {
    const byKind: Partial<Record<ExceptionKind, number>> = {};
    let total = 0;
    for (const row of this.s.openCountByKind.all() as { kind: ExceptionKind; n: number }[]) {
      byKind[row.kind] = row.n;
      total += row.n;
    }
    return { byKind, total };
  }
}
