/**
 * Storage damage found, never hidden, never made worse (issue 10).
 *
 * - Before the database is opened, its WAL is checked ({@link checkWal}): opening it would let
 *   SQLite replay the WAL only up to a damaged frame and, at the next checkpoint, delete the
 *   frames after it — acknowledged payments gone without a trace. On damage the agent copies the
 *   files aside, logs, and refuses to start (POS230); it never opens the database.
 * - After opening, a failed hash-chain or projection check (POS220/POS221 in `verify`) stops new
 *   payments: `POST /v1/payments` answers 503 POS231 while everything else (status, forwarding of
 *   what is stored) goes on.
 *
 * The codes POS230 and POS231 are store-area codes (`POS2xx`) raised by the agent at start-up.
 *
 * Copies go to `<dataDir>/damaged-<what>-<when>/` and hold `agent.db`, `agent.db-wal` and
 * `agent.db-shm` as they were; the originals are left where they are, untouched.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../common/agent-error.js';
import { checkWal, type WalReport } from '../store-forward/wal-check.js';
import type { Logger } from './logger.js';

/** The files of one SQLite database in WAL mode. */
const SUFFIXES = ['', '-wal', '-shm'] as const;

/**
 * Copies `dbPath` and its `-wal`/`-shm` files into a new folder `damaged-<label>` next to it.
 * When a folder with that label exists already (a restart loop), nothing is copied again.
 *
 * @returns the folder.
 * @throws Error for I/O errors (disk full): the caller logs it; the originals are never touched.
 */
export function keepDamagedCopy(dbPath: string, label: string): string {
  const folder = path.join(path.dirname(dbPath), `damaged-${label}`);
  if (existsSync(folder)) return folder;
  mkdirSync(`${folder}.partial`, { recursive: true, mode: 0o700 });
  for (const suffix of SUFFIXES) {
    const file = `${dbPath}${suffix}`;
    if (existsSync(file))
      copyFileSync(file, path.join(`${folder}.partial`, `${path.basename(dbPath)}${suffix}`));
  }
  // Renamed once complete, so a folder named damaged-… always holds a whole copy.
  renameSync(`${folder}.partial`, folder);
  return folder;
}

/** What to tell a field tech when the WAL is damaged (doctor and the start-up error share it). */
export function walDamageFix(dbPath: string, copy?: string): string {
  return (
    `do not delete or move ${path.basename(dbPath)} or ${path.basename(dbPath)}-wal: they may hold unsent payments` +
    `${copy === undefined ? '' : ` (a copy is in ${copy})`}; ` +
    'restore the database from backup with support, who can recover the transactions after the damaged frame from the copy, then start the agent again'
  );
}

/**
 * Checks the WAL of `dbPath` before it is opened; on damage copies the files aside, logs, and
 * throws, so the database is never opened (opening and checkpointing would drop the payments
 * after the damaged frame for good).
 *
 * @returns the report (`ok`, `torn_tail`, `empty`, `absent`): a torn tail is logged as a warning.
 * @throws AgentError POS230 when the WAL is damaged (see {@link WalReport}).
 */
export function refuseDamagedWal(dbPath: string, logger: Logger, now: () => number): WalReport {
  const report = checkWal(`${dbPath}-wal`);
  if (report.condition === 'torn_tail') {
    logger.warn(
      { wal: report.path, firstBadFrame: report.firstBadFrame, frames: report.frames },
      `${report.summary}; SQLite ignores the uncommitted tail`,
    );
  }
  if (report.condition !== 'damaged') return report;
  let copy: string | undefined;
  try {
    copy = keepDamagedCopy(
      dbPath,
      `wal-${report.bytes}-${new Date(now()).toISOString().slice(0, 10)}`,
    );
  } catch (error) {
    logger.error({ err: error }, 'could not copy the damaged database files aside');
  }
  const error = new AgentError(
    'POS230',
    `the payment database's write-ahead log is damaged: ${report.summary}; no payment is taken; fix: ${walDamageFix(dbPath, copy)}`,
    {
      details: {
        wal: report.path,
        firstBadFrame: report.firstBadFrame,
        transactionsAfterBad: report.transactionsAfterBad,
        ...(copy === undefined ? {} : { copy }),
      },
    },
  );
  logger.fatal({ err: error, code: error.code }, error.reason);
  throw error;
}

/**
 * The error every `POST /v1/payments` gets while the store failed its start-up integrity check.
 *
 * @param problems — the checks' messages (no card data: the checks name event ids and fields).
 */
export function integrityRefusal(problems: string[], copy: string | undefined): AgentError {
  return new AgentError(
    'POS231',
    `the payment store failed its integrity check at start-up (${problems.slice(0, 3).join('; ')}): ` +
      'no new payment is taken; stored payments are still forwarded; fix: keep the database files' +
      `${copy === undefined ? '' : ` (a copy is in ${copy})`}, run "pos-agent verify" and "pos-agent doctor", and call support to restore from backup — never delete the database, it may hold unsent payments`,
    { details: { problems: problems.slice(0, 10), ...(copy === undefined ? {} : { copy }) } },
  );
}

/** The store methods that only read: their success says nothing about whether writes work again. */
const READ_ONLY = /^(queueStats|nextPending|get|list|find|count|offlineExposure|deadlineWarnings)/;

/** Whether forwarding is paused by storage, for `/v1/status` and metrics. */
export interface StoragePauseState {
  paused: boolean;
  /** ISO 8601 UTC, while paused. */
  since?: string;
  /** The error code that paused it (POS207 for a full disk or an I/O error). */
  code?: string;
  /** Pauses since start. */
  pauses: number;
}

/**
 * Watches the store as the sync worker uses it (issue 10): when a store call fails with a storage
 * error (POS207: disk full, I/O error) forwarding stops until a write succeeds again, and until
 * now nothing said so. Each pause and each resume is one log line; {@link state} feeds
 * `/v1/status` and the `pos_agent_forwarding_paused_by_storage` metric.
 *
 * The worker keeps its own retry; this only observes (errors are rethrown unchanged).
 */
export class StoragePauseWatch {
  #logger: Logger;
  #now: () => number;
  #since: number | undefined;
  #code: string | undefined;
  #pauses = 0;

  constructor(logger: Logger, now: () => number) {
    this.#logger = logger;
    this.#now = now;
  }

  /** The state now (a copy). */
  state(): StoragePauseState {
    return {
      paused: this.#since !== undefined,
      pauses: this.#pauses,
      ...(this.#since === undefined ? {} : { since: new Date(this.#since).toISOString() }),
      ...(this.#code === undefined ? {} : { code: this.#code }),
    };
  }

  /**
   * `source` with every method observed: a POS207 pauses, a later successful write resumes.
   * The methods run on `source` itself (its `#private` fields keep working).
   */
  wrap<T extends object>(source: T): T {
    return new Proxy(source, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        return (...args: unknown[]): unknown => {
          let result: unknown;
          try {
            result = (value as (...a: unknown[]) => unknown).apply(target, args);
          } catch (error) {
            this.#failed(property, error);
            throw error;
          }
          if (!READ_ONLY.test(property)) this.#succeeded();
          return result;
        };
      },
    });
  }

  #failed(method: string, error: unknown): void {
    const code = (error as { code?: unknown }).code;
    if (code !== 'POS207' || this.#since !== undefined) return;
    this.#since = this.#now();
    this.#code = code;
    this.#pauses += 1;
    const sqlite = (error as { details?: { sqlite?: unknown } }).details?.sqlite;
    this.#logger.error(
      { code, sqlite, method },
      `forwarding paused by storage: the outbox cannot be written (${String(sqlite ?? code)}); stored payments wait and are sent once the write succeeds again; fix: free disk space in the data directory${sqlite === 'SQLITE_FULL' ? '' : ' and check the storage for I/O errors'}`,
    );
  }

  #succeeded(): void {
    if (this.#since === undefined) return;
    const pausedMs = this.#now() - this.#since;
    this.#since = undefined;
    this.#code = undefined;
    this.#logger.info({ pausedMs }, 'forwarding resumed: the outbox can be written again');
  }
}
