/**
 * Opening the SQLite file of store-and-forward (architecture.md §4), the only place that sets pragmas and
 * runs migrations. Only `store-forward/` imports `better-sqlite3` (architecture.md §1).
 *
 * Pragmas, each read back after it is set:
 * - `journal_mode=WAL` — readers do not block the writer;
 * - `synchronous=FULL` (reads back 2) — better-sqlite3 builds SQLite with WAL databases
 *   defaulting to NORMAL, which may lose the last commits on power loss; a stored payment that
 *   the POS app was told about must survive a pulled plug;
 * - `foreign_keys=ON` — off by default in SQLite, per connection;
 * - `secure_delete=ON` — deleted sealed card data is overwritten, not left in free pages
 *   (PCI DSS 4.0.1 req. 3.3.1);
 * - `temp_store=MEMORY` (reads back 2) — statement journals, the sorters and the scratch tables of
 *   set-based statements stay in memory: a temp file per write statement cost ~4× the CPU of the
 *   UPDATE itself (issue 9), and sealed card data never reaches a temp file on disk;
 * - `busy_timeout` — a second connection (e.g. `pos-agent queue` while the agent runs) waits
 *   instead of failing at once.
 *
 * The file is marked with `PRAGMA application_id = 0x504F5341` ("POSA"), so another
 * application's SQLite file is refused instead of being migrated.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { isAgentError } from '../common/agent-error.js';
import { storeError } from './errors.js';
import { MIGRATIONS, type Migration } from './migrations/index.js';

/** The better-sqlite3 connection type, for the files of store-forward only. */
export type SqliteDatabase = Database.Database;

/** `PRAGMA application_id` of a pos-agent database: ASCII "POSA". */
export const APPLICATION_ID = 0x504f5341;

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** How long a locked database is waited for; ≥ 0, default: 5000 ms. */
  busyTimeoutMs?: number;
  /** The migrations to apply; default: {@link MIGRATIONS}. Tests pass their own. */
  migrations?: readonly Migration[];
  /**
   * Open for reading only (`pos-agent doctor`, `verify`, `queue`): the file must exist (nothing
   * is created), no pragma is written, no migration runs, and closing never checkpoints or
   * deletes the WAL (SQLite refuses a checkpoint on a read-only connection). SQLite may add the
   * empty `-wal`/`-shm` side files a WAL reader needs; as root it gives them the database file's
   * owner. Default false.
   */
  readonly?: boolean;
}

/**
 * Opens (creating if needed) the database at `path`, sets and verifies the pragmas, and applies
 * every pending migration in ONE immediate transaction.
 *
 * @param path — a file path; its directory must exist. `:memory:` and `''` are refused, since an
 *   in-memory database has no WAL and loses every stored payment with the process.
 * @returns the open connection; the caller closes it.
 * @throws AgentError POS201 the file cannot be opened or created (names the path and the fix);
 *   POS204 the file is not a pos-agent SQLite database; POS205 a pragma did not read back as set;
 *   POS203 the database was written by a newer agent (its `user_version` is higher than the
 *   latest migration); POS202 a migration failed (the transaction is rolled back, the file is
 *   left at its previous version). With `readonly` (see {@link OpenDatabaseOptions.readonly}):
 *   POS201 also when the file does not exist, POS208 when the database needs a migration.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): SqliteDatabase {
  const migrations = options.migrations ?? MIGRATIONS;
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw storeError(
      'POS213',
      `busyTimeoutMs is ${String(busyTimeoutMs)}; it must be an integer ≥ 0 (milliseconds)`,
    );
  }
  checkMigrationList(migrations);
  if (path === '' || path === ':memory:' || path.startsWith('file::memory:')) {
    throw storeError(
      'POS205',
      `database path "${path}" is in memory, which has no WAL and loses stored payments on exit; ` +
        'fix: give a file path (tests use a fresh temporary directory)',
    );
  }

  if (options.readonly === true) return openReadonly(path, busyTimeoutMs, migrations);
  let db: SqliteDatabase;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
  } catch (cause) {
    throw storeError(
      'POS201',
      `cannot open the payment database at ${path}: ${messageOf(cause)}; ` +
        'fix: check that the directory exists and is writable by the agent user, and that the disk is not full',
      { cause, details: { path } },
    );
  }
  try {
    applyPragmas(db, path, busyTimeoutMs);
    migrate(db, path, migrations);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * The read-only open of {@link openDatabase}: POS201 when the file does not exist (nothing is
 * created), POS204 not a pos-agent database, POS203 newer than this agent, POS208 older than
 * this agent (a read-only open cannot migrate it; the agent does at its next start).
 */
function openReadonly(
  path: string,
  busyTimeoutMs: number,
  migrations: readonly Migration[],
): SqliteDatabase {
  if (!existsSync(path)) {
    throw storeError(
      'POS201',
      `there is no payment database at ${path}; nothing was created (this command only reads); ` +
        'fix: check dataDir in the config, or start the agent once (systemctl start pos-agent), which creates it',
      { details: { path } },
    );
  }
  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true, timeout: busyTimeoutMs });
  } catch (cause) {
    throw storeError(
      'POS201',
      `cannot open the payment database at ${path} for reading: ${messageOf(cause)}; ` +
        'fix: run the command as root or as the agent user (pos-agent)',
      { cause, details: { path } },
    );
  }
  try {
    const latest = migrations[migrations.length - 1]?.version ?? 0;
    let current: number, appId: number;
    try {
      current = db.pragma('user_version', { simple: true }) as number;
      appId = db.pragma('application_id', { simple: true }) as number;
    } catch (cause) {
      throw storeError(
        'POS204',
        `${path} is not an SQLite database (${String((cause as { code?: unknown }).code)}); ` +
          'fix: point the agent at its own database file',
        { cause, details: { path } },
      );
    }
    checkHeader(path, { appId, current, latest, empty: appId === 0 && current === 0 });
    if (current < latest) {
      throw storeError(
        'POS208',
        `${path} has schema version ${current}, older than the ${latest} this agent knows, and this command only reads; ` +
          'fix: start the agent once (systemctl start pos-agent), which migrates it, then run the command again',
        { details: { path, userVersion: current, latest } },
      );
    }
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

function applyPragmas(db: SqliteDatabase, path: string, busyTimeoutMs: number): void {
  let journalMode: unknown;
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    journalMode = db.pragma('journal_mode = WAL', { simple: true });
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw storeError(
        'POS204',
        `${path} is not an SQLite database (${String(code)}); ` +
          "fix: point the agent at its own database file; if this is the terminal's agent.db it is damaged: keep it and its -wal and -shm files (they may hold unsent payments), run `pos-agent doctor` and restore from backup — start a new database only after its unsent payments are recovered",
        { cause, details: { path } },
      );
    }
    throw storeError(
      'POS201',
      `cannot use the payment database at ${path}: ${messageOf(cause)}; ` +
        'fix: check file permissions, free disk space, and that no other program holds an exclusive lock',
      { cause, details: { path } },
    );
  }
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('secure_delete = ON');
  db.pragma('temp_store = MEMORY');
  const readBack = {
    journal_mode: journalMode,
    synchronous: db.pragma('synchronous', { simple: true }),
    foreign_keys: db.pragma('foreign_keys', { simple: true }),
    secure_delete: db.pragma('secure_delete', { simple: true }),
    temp_store: db.pragma('temp_store', { simple: true }),
    busy_timeout: db.pragma('busy_timeout', { simple: true }),
  };
  const expected = {
    journal_mode: 'wal',
    synchronous: 2,
    foreign_keys: 1,
    secure_delete: 1,
    temp_store: 2,
    busy_timeout: busyTimeoutMs,
  };
  for (const [name, want] of Object.entries(expected)) {
    const got = readBack[name as keyof typeof readBack];
    if (got !== want) {
      throw storeError(
        'POS205',
        `PRAGMA ${name} reads back ${String(got)} instead of ${String(want)} on ${path}; ` +
          'fix: put the database on a local file system that supports WAL (not a network share)',
        { details: { path, pragma: name } },
      );
    }
  }
}

/**
 * The database header's checks, for the reader and for the migration: the file must be this
 * agent's (`application_id`), or a new empty one, and not from a newer agent (`user_version`).
 *
 * @throws AgentError POS204 another application's file; POS203 a schema newer than `latest`.
 */
function checkHeader(
  path: string,
  header: { appId: number; current: number; latest: number; empty: boolean },
): void {
  const { appId, current, latest } = header;
  if (appId !== APPLICATION_ID && !header.empty) {
    throw storeError(
      'POS204',
      `${path} belongs to another application (application_id ${appId}, user_version ${current}); ` +
        'fix: point the agent at its own database file',
      { details: { path, applicationId: appId } },
    );
  }
  if (current > latest) {
    throw storeError(
      'POS203',
      `${path} has schema version ${current}, newer than the ${latest} this agent knows; ` +
        'fix: install the agent version that wrote it (or newer); never downgrade over a store with unsent payments',
      { details: { path, userVersion: current, latest } },
    );
  }
}

function migrate(db: SqliteDatabase, path: string, migrations: readonly Migration[]): void {
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  const current = db.pragma('user_version', { simple: true }) as number;
  const appId = db.pragma('application_id', { simple: true }) as number;
  const objects = (
    db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'").get() as {
      n: number;
    }
  ).n;
  checkHeader(path, {
    appId,
    current,
    latest,
    empty: appId === 0 && current === 0 && objects === 0,
  });
  if (current === latest) return;

  let running: Migration | undefined;
  try {
    db.transaction(() => {
      // Read again under the write lock: another process (e.g. `pos-agent queue` started at the
      // same moment) may have migrated between the first read and BEGIN IMMEDIATE.
      const locked = db.pragma('user_version', { simple: true }) as number;
      for (const migration of migrations.filter((m) => m.version > locked)) {
        running = migration;
        db.exec(migration.sql);
      }
      running = undefined;
      const problems = db.pragma('foreign_key_check') as unknown[];
      if (problems.length > 0) {
        throw new Error(`${problems.length} foreign key violations after migrating`);
      }
      db.pragma(`user_version = ${latest}`);
      db.pragma(`application_id = ${APPLICATION_ID}`);
    }).immediate();
  } catch (cause) {
    if (isAgentError(cause)) throw cause;
    const which = running
      ? `migration ${running.version} (${running.name})`
      : 'the migration check';
    throw storeError(
      'POS202',
      `${which} failed on ${path}: ${messageOf(cause)}; nothing was changed, the database stays at ` +
        `version ${current}; fix: free disk space if it is full, otherwise keep the file and report this error`,
      { cause, details: { path, userVersion: current, failedVersion: running?.version } },
    );
  }
}

function checkMigrationList(migrations: readonly Migration[]): void {
  migrations.forEach((migration, i) => {
    if (migration.version !== i + 1) {
      throw storeError(
        'POS202',
        `migration "${migration.name}" has version ${migration.version} at position ${i + 1}; ` +
          'fix: number migrations 1, 2, 3, … without gaps',
      );
    }
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
