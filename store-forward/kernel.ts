/**
 * The store kernel: one SQLite connection, its prepared statements, its transactions, and the one
 * way a payment changes — {@link StoreKernel.record}, which folds an event into the projection and
 * appends it to the hash chain in the caller's transaction (architecture.md §4). The lifecycle
 * (payment-store.ts), the outbox (outbox.ts) and the integrity checks (integrity.ts) are built on
 * it; {@link PaymentStore.open} hands them out over one kernel.
 *
 * ```
 *  write(fn) = BEGIN IMMEDIATE … fn … COMMIT   (synchronous=FULL: durable when it returns)
 *  record(payment, event) ─► payments row (applyEvent) + events row (seq, prev_hash, hash)
 *  appendAckEvent(results) ─► ack_events row (one per acknowledgement message) + members
 * ```
 *
 * Synchronous on purpose (better-sqlite3): a transaction function must not be async.
 */
import Database from 'better-sqlite3';
import { AgentError } from '../common/agent-error.js';
import { isoAt, type Clock } from '../common/clock.js';
import type { SqliteDatabase } from './database.js';
import { storeError, type StoreErrorCode } from './errors.js';
import { GENESIS_HASH, canonicalJson, eventHash } from './hash-chain.js';
import type { EventType, Payment } from './model.js';
import { applyEvent, type ProjectionEvent } from './projection.js';
import { toPayment, toRow, type PaymentRow } from './rows.js';
import { ACK_EVENT_TYPE, prepareStatements, type Statements } from './sql.js';

/**
 * One cloud result as an ack event holds it: the payment it changed, the event type it stands
 * for (`cloud_approved`, `cloud_declined` or `confirmed`) and that event's data. The projection
 * check folds it into the payment exactly like a payment event of that type.
 */
export interface AckEntry {
  key: string;
  paymentId: string;
  type: Extract<EventType, 'cloud_approved' | 'cloud_declined' | 'confirmed'>;
  data: Record<string, unknown>;
}

/** The `data` of an `ack_events` row: the batch id(s) of the acknowledgement and its results. */
export interface AckEventData {
  batches: string[];
  results: AckEntry[];
}

/**
 * Committed write transactions after which {@link StoreKernel.checkpointIfDue} checkpoints: an
 * offline payment's commit writes ~20 WAL pages since migration 7 (bench/wal-pages.ts), so 32 of
 * them are ~640 pages, under SQLite's default auto-checkpoint of 1000 pages.
 */
export const WAL_CHECKPOINT_WRITES = 32;

/**
 * Starts the WAL of `db` over, off the payment path (issue 9: the p99 of a payment's store work).
 * After a checkpoint that copied every frame, the next write transaction rewrites the WAL from its
 * start: it writes a new WAL header and, with `synchronous=FULL`, syncs that header before its
 * own frames (SQLite wal.c `sqlite3WalFrames`: an out-of-order write after a WAL restart could
 * corrupt the database, ticket ff5be73dee). That is a second fsync in one commit: with a
 * checkpoint every {@link WAL_CHECKPOINT_WRITES} commits, one payment commit in 32 (the p97 and
 * up of the store work) paid two. Run right after a checkpoint, this writes that transaction
 * itself: the schema version as it is (`PRAGMA user_version`: page 1, no row, no trigger), so
 * the next commit finds the WAL restarted and syncs once. The bench's same-frames floor
 * (bench/enqueue.ts) gets the same treatment through it.
 *
 * Never throws: when it cannot write (a closed or read-only connection, another process holding
 * the write lock, an I/O error), the next commit restarts the WAL as it did before, and reports
 * its own error.
 */
export function restartWalOf(db: SqliteDatabase): void {
  if (!db.open || db.readonly) return;
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    db.pragma(`user_version = ${version}`);
  } catch {
    // See above: nothing depends on this write.
  }
}

/**
 * `PRAGMA wal_autocheckpoint` of the store's connection, in pages (4 KiB each: 40 MiB). SQLite
 * checkpoints inside the commit that takes the WAL past it; maintenance checkpoints long before
 * (every second in the agent), so this only bounds the WAL of a store nobody maintains.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/** One row of `PRAGMA wal_checkpoint`: frames in the WAL and frames copied into the database. */
interface WalCheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/** The store kernel; see the file comment. One per database file per process. */
export class StoreKernel {
  readonly db: SqliteDatabase;
  readonly stmts: Statements;
  readonly clock: Clock;
  /** Path of the database file. */
  readonly path: string;
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(db: SqliteDatabase, path: string, clock: Clock) {
    this.db = db;
    this.path = path;
    this.clock = clock;
    this.stmts = prepareStatements(db);
    this.#tx = db.transaction((fn: () => unknown) => fn());
    // The checkpoint belongs to maintenance (checkpointIfDue), not to a payment's commit; this
    // only bounds the WAL when no maintenance runs (see WAL_AUTOCHECKPOINT_PAGES).
    if (!db.readonly) db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  }

  /** The clock's now as ISO 8601 UTC. */
  now(): string {
    return isoAt(this.clock.now());
  }

  /**
   * Runs `fn` in one `BEGIN IMMEDIATE` transaction, committed (synchronous=FULL) before it
   * returns. Nested inside another transaction it becomes a savepoint.
   *
   * @throws AgentError POS206 closed; POS207 SQLite could not write; POS213 / POS2xx the schema
   *   refused a value (see {@link toAgentError}).
   */
  write<T>(fn: () => T): T {
    this.#live();
    try {
      const result = this.#tx.immediate(fn) as T;
      this.#writesSinceCheckpoint += 1;
      return result;
    } catch (error) {
      this.#rollbacks += 1;
      throw toAgentError(error);
    }
  }

  /** Runs `fn` in one read transaction (a consistent snapshot). Errors as {@link write}. */
  read<T>(fn: () => T): T {
    this.#live();
    try {
      return this.#tx.deferred(fn) as T;
    } catch (error) {
      throw toAgentError(error);
    }
  }

  /** A savepoint inside the caller's transaction: `fn`'s writes are undone if it throws. */
  savepoint<T>(fn: () => T): T {
    try {
      return this.#tx(fn) as T;
    } catch (error) {
      this.#rollbacks += 1;
      throw error;
    }
  }

  /**
   * How many transactions or savepoints of this kernel were rolled back: with SQLite's
   * `total_changes()` and `PRAGMA data_version` it tells a reader whether rows may differ from
   * what it saw before (a rollback undoes rows without lowering `total_changes()`).
   */
  get rollbacks(): number {
    return this.#rollbacks;
  }

  #rollbacks = 0;

  /**
   * THE payment state change: folds the event into the payment with `applyEvent`, writes the
   * projection row (insert for a creating event), and appends the event to the hash chain. Runs
   * inside the caller's transaction.
   *
   * @param current — the payment as read in this transaction, when the caller has it (saves a
   *   read); otherwise it is read here.
   * @throws AgentError POS212 the state machine refuses the event; POS222 data not canonical.
   */
  record(
    paymentId: string,
    type: EventType,
    at: string,
    data: Record<string, unknown>,
    current?: Payment,
  ): Payment {
    const dataText = canonicalJson(data);
    const parsed = JSON.parse(dataText) as Record<string, unknown>;
    let before = current;
    if (before === undefined) {
      const row = this.stmts.paymentById.get(paymentId) as PaymentRow | undefined;
      before = row === undefined ? undefined : toPayment(row);
    }
    const next = applyEvent(before, { type, at, data: parsed });
    if (before === undefined) this.stmts.insertPayment.run(toRow(next));
    else this.stmts.updatePayment.run(toRow(next));
    const { seq, prevHash } = this.#nextLink();
    this.stmts.insertEvent.run({
      seq,
      payment_id: paymentId,
      type,
      at,
      data: dataText,
      prev_hash: prevHash,
      hash: eventHash(prevHash, { seq, paymentId, type, at, data: dataText }),
    });
    return next;
  }

  /**
   * Creates a payment from its first events (issue 9 §2: a payment's in-memory draft and its
   * decision become durable in one transaction): folds `events` in order with `applyEvent`,
   * inserts the projection row ONCE in the state they lead to, and appends every event to the
   * hash chain — the same rows a run of {@link record} calls would leave, with one row write.
   * Runs inside the caller's transaction.
   *
   * @param events — the payment's events, its creating event (`payment_started`) first. An
   *   event with `text` (a draft's, payment-drafts.ts) is already canonical: `text` is
   *   `canonicalJson(data)` and `data` is `JSON.parse(text)`, so neither is made again.
   * @throws AgentError POS212 the state machine refuses an event (nothing is written);
   *   POS213 a payment with this id or idempotency key exists already (the schema refuses it).
   */
  recordNew(
    paymentId: string,
    events: readonly (ProjectionEvent & { readonly text?: string })[],
  ): Payment {
    const texts = events.map((event) => event.text ?? canonicalJson(event.data));
    let payment: Payment | undefined;
    events.forEach((event, i) => {
      const data =
        event.text !== undefined
          ? event.data
          : (JSON.parse(texts[i] as string) as Record<string, unknown>);
      payment = applyEvent(payment, { type: event.type, at: event.at, data });
    });
    if (payment === undefined) throw storeError('POS212', 'a payment needs at least one event');
    this.stmts.insertPayment.run(toRow(payment));
    let { seq, prevHash } = this.#nextLink();
    events.forEach((event, i) => {
      const data = texts[i] as string;
      const { type, at } = event;
      const hash = eventHash(prevHash, { seq, paymentId, type, at, data });
      this.stmts.insertEvent.run({
        seq,
        payment_id: paymentId,
        type,
        at,
        data,
        prev_hash: prevHash,
        hash,
      });
      seq += 1;
      prevHash = hash;
    });
    return payment;
  }

  /**
   * Appends ONE hash-chained event for a set of applied acknowledgements (issue 9 §3) and its
   * member index, inside the caller's transaction. The payments rows are the caller's to update
   * (set-based) with what `applyEvent` makes of each entry.
   *
   * @param dataText — `canonicalJson(data)` when the caller wrote it already (ack-set.ts writes
   *   it directly for the whole message, store-forward/ack-event-text.ts).
   * @returns the event's seq.
   */
  appendAckEvent(at: string, data: AckEventData, dataText = canonicalJson(data)): number {
    const { seq, prevHash } = this.#nextLink();
    this.stmts.insertAckEvent.run({
      seq,
      at,
      data: dataText,
      prev_hash: prevHash,
      hash: eventHash(prevHash, { seq, paymentId: '', type: ACK_EVENT_TYPE, at, data: dataText }),
    });
    const members = [...new Set(data.results.map((r) => r.paymentId))];
    this.stmts.insertAckMembers.run({ a: JSON.stringify(members), b: seq });
    return seq;
  }

  /**
   * Appends one hash-chained batch event (issue 17, migration 5) inside the caller's transaction:
   * the batch id takes the place of the payment id in the hash. The batch rows are the caller's
   * to update (store-forward/batches.ts folds the event the same way the check does).
   *
   * @returns the event's seq and hash.
   */
  appendBatchEvent(
    batchId: string,
    type: string,
    at: string,
    data: Record<string, unknown>,
  ): { seq: number; hash: Buffer } {
    const dataText = canonicalJson(data);
    const { seq, prevHash } = this.#nextLink();
    const hash = eventHash(prevHash, { seq, paymentId: batchId, type, at, data: dataText });
    this.stmts.insertBatchEvent.run({
      seq,
      batch_id: batchId,
      type,
      at,
      data: dataText,
      prev_hash: prevHash,
      hash,
    });
    return { seq, hash };
  }

  /** The chain head: seq and hash (seq 0 and the genesis hash before the first event). */
  head(): { seq: number; hash: Buffer } {
    const head = this.stmts.chainHead.get() as { seq: number; hash: Buffer } | undefined;
    return { seq: head?.seq ?? 0, hash: head?.hash ?? GENESIS_HASH };
  }

  /** The seq of the newest event (0 before the first). */
  headSeq(): number {
    const head = this.stmts.chainHead.get() as { seq: number } | undefined;
    return head?.seq ?? 0;
  }

  /**
   * Moves the WAL's content into the database file and truncates the WAL. `secure_delete` zeroes
   * deleted sealed data in the database file; this makes the WAL forget the frames that wrote it
   * (PCI DSS 4.0.1 req. 3.3.1). A reader holding the WAL only makes it partial: the next one, or
   * `close()`, completes it.
   *
   * @throws AgentError POS207 SQLite could not checkpoint.
   */
  checkpointWal(): void {
    this.#live();
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (error) {
      throw toAgentError(error);
    }
    this.#writesSinceCheckpoint = 0;
  }

  /**
   * Maintenance's checkpoint (issue 9): when {@link WAL_CHECKPOINT_WRITES} or more transactions
   * committed since the last checkpoint, moves the WAL's content into the database file
   * (`PASSIVE`: never waits for a reader; the WAL is then reused from its start, not truncated,
   * so the next commits overwrite blocks the file already has). Run off the payment path (the
   * agent: a timer), so no payment's commit pays for copying and syncing other payments' pages,
   * which SQLite's own auto-checkpoint made every ~37th offline payment do.
   *
   * @returns whether a checkpoint ran (false when the store is closed).
   * @throws AgentError POS207 SQLite could not checkpoint.
   */
  checkpointIfDue(): boolean {
    // Closed: close() checkpointed already (a maintenance timer may fire once after it).
    if (this.#writesSinceCheckpoint < WAL_CHECKPOINT_WRITES || !this.db.open) return false;
    let result: WalCheckpointResult | undefined;
    try {
      [result] = this.db.pragma('wal_checkpoint(PASSIVE)') as WalCheckpointResult[];
    } catch (error) {
      throw toAgentError(error);
    }
    this.#writesSinceCheckpoint = 0;
    // A reader kept frames the checkpoint could not copy: the WAL goes on where it is, no restart.
    if (result !== undefined && result.busy === 0 && result.checkpointed === result.log) {
      this.restartWal();
    }
    return true;
  }

  /**
   * Starts the WAL over, off the payment path: {@link restartWalOf} on the store's connection.
   * Never throws.
   */
  restartWal(): void {
    restartWalOf(this.db);
  }

  #writesSinceCheckpoint = 0;

  /** Closes the connection (checkpointing the WAL). Harmless twice. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** True until {@link close}. */
  get open(): boolean {
    return this.db.open;
  }

  #nextLink(): { seq: number; prevHash: Buffer } {
    const head = this.stmts.chainHead.get() as { seq: number; hash: Buffer } | undefined;
    return { seq: (head?.seq ?? 0) + 1, prevHash: head?.hash ?? GENESIS_HASH };
  }

  #live(): void {
    if (!this.db.open) {
      throw storeError(
        'POS206',
        `the payment store at ${this.path} is closed; fix: open a new PaymentStore`,
      );
    }
  }
}

/**
 * Maps a SQLite error to a POS2xx `AgentError`; other `AgentError`s pass through, anything else
 * is rethrown.
 *
 * - a trigger's `RAISE(ABORT, '… (POS2xx)')` → that code;
 * - a constraint → POS213 (a value outside the documented rules);
 * - `SQLITE_CORRUPT` / `SQLITE_NOTADB` → POS209: the file is damaged, which no free disk space
 *   fixes (issue 10); the advice keeps the files, which may hold unsent payments;
 * - anything else (disk full, I/O error, locked) → POS207; nothing was changed.
 */
export function toAgentError(error: unknown): AgentError {
  if (error instanceof AgentError) return error;
  if (error instanceof Database.SqliteError) {
    const raised = /\((POS2\d\d)\)$/.exec(error.message)?.[1] as StoreErrorCode | undefined;
    if (raised !== undefined) {
      return storeError(raised, `the schema refused the change: ${error.message.slice(0, -9)}`, {
        cause: error,
      });
    }
    if (error.code.startsWith('SQLITE_CONSTRAINT')) {
      return storeError(
        'POS213',
        `the schema refused a value: ${error.message}; fix: send values within the documented rules`,
        { cause: error, details: { sqlite: error.code } },
      );
    }
    if (error.code.startsWith('SQLITE_CORRUPT') || error.code === 'SQLITE_NOTADB') {
      return storeError(
        'POS209',
        `the payment database is damaged (${error.code}: ${error.message}); nothing was changed; ` +
          'fix: stop the agent, keep agent.db, agent.db-wal and agent.db-shm (they may hold unsent ' +
          'payments), run `pos-agent doctor` and restore from backup with support',
        { cause: error, details: { sqlite: error.code } },
      );
    }
    return storeError(
      'POS207',
      `SQLite could not complete the write (${error.code}: ${error.message}); nothing was changed; ` +
        'fix: free disk space, check the storage for I/O errors, or stop the other program holding the database',
      { cause: error, details: { sqlite: error.code } },
    );
  }
  throw error;
}
