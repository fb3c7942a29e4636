/**
 * The cloud core simulator's ledger (issue 10): what it knows per idempotency key, kept in a
 * SQLite file so its dedupe survives a restart — a restarted cloud core that forgot a key would
 * charge it again when the agent resends the record (the agent resends whatever was not acked).
 *
 * ```
 * entries(key TEXT PRIMARY KEY, entry TEXT)   one CloudRecordEntry as JSON per key
 * voids  (key TEXT PRIMARY KEY, result TEXT)  the answer given to a void record, as JSON
 * batches(key TEXT PRIMARY KEY, answer TEXT)  the answer given to a batch record (issue 17)
 * ```
 * Every change is written through with `synchronous=FULL` before the cloud core answers, as a
 * real cloud's ledger commits before it acknowledges: the changes a whole `up/records` message
 * makes share ONE commit ({@link CloudLedger.transaction}), not one (and an fsync) per write.
 * Without a file the ledger lives in memory only (fast tests and the benchmark).
 *
 * The simulator is the one place outside store-forward/ allowed better-sqlite3 (eslint.config.js):
 * it stands in for the cloud's own database, not for the agent's store.
 */
import Database from 'better-sqlite3';

/** How a {@link DurableMap} reaches its SQLite table. */
interface TableAccess {
  /** Insert or replace the value of a key. */
  put(key: string, json: string): void;
  /** Insert the value of a key unless the key exists; true when this call inserted it. */
  claim(key: string, json: string): boolean;
  /** The stored value of a key, or undefined. */
  get(key: string): string | undefined;
  /** Every row, in insertion order. */
  all(): Array<[string, string]>;
}

/**
 * A map of JSON-serializable values by key, optionally written through to a SQLite table.
 *
 * Shared (several cloud core instances on one ledger file, issue 16): the table is the truth, so
 * every read goes to it (another instance may have written the key a moment ago) and a first
 * arrival is booked with {@link claim}, whose `INSERT … ON CONFLICT DO NOTHING` lets exactly one
 * instance win a key; the others answer `duplicate`. Unshared, the memory copy is the truth and
 * the table only makes it survive a restart.
 */
export class DurableMap<V> {
  #memory = new Map<string, V>();
  #table: TableAccess | undefined;
  #shared: boolean;

  /** @internal built by {@link CloudLedger}. */
  constructor(table: TableAccess | undefined, shared = false) {
    this.#table = table;
    this.#shared = shared && table !== undefined;
    this.#load();
  }

  #load(): void {
    if (this.#table === undefined) return;
    this.#memory.clear();
    for (const [key, json] of this.#table.all()) this.#memory.set(key, JSON.parse(json) as V);
  }

  /** A fresh view: re-read from the table when shared. */
  #view(): Map<string, V> {
    if (this.#shared) this.#load();
    return this.#memory;
  }

  get(key: string): V | undefined {
    if (!this.#shared) return this.#memory.get(key);
    const json = this.#table?.get(key);
    if (json === undefined) return undefined;
    const value = JSON.parse(json) as V;
    this.#memory.set(key, value);
    return value;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Stores `value` (again, after an in-place change) and writes it through. */
  set(key: string, value: V): this {
    this.#memory.set(key, value);
    this.#table?.put(key, JSON.stringify(value));
    return this;
  }

  /**
   * Books `value` under a key that must be new: true when this call stored it, false when the key
   * was there already (in a shared ledger: written by another instance, which won the key).
   */
  claim(key: string, value: V): boolean {
    if (this.#table === undefined || !this.#shared) {
      if (this.#memory.has(key)) return false;
      this.set(key, value);
      return true;
    }
    if (!this.#table.claim(key, JSON.stringify(value))) return false;
    this.#memory.set(key, value);
    return true;
  }

  get size(): number {
    return this.#view().size;
  }

  keys(): IterableIterator<string> {
    return this.#view().keys();
  }

  values(): IterableIterator<V> {
    return this.#view().values();
  }

  entries(): IterableIterator<[string, V]> {
    return this.#view().entries();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.#view().entries();
  }

  /** A read-only view for callers that expect a `ReadonlyMap` (a snapshot when shared). */
  asReadonlyMap(): ReadonlyMap<string, V> {
    return this.#view();
  }
}

/**
 * The tables of the cloud core's ledger.
 *
 * @typeParam E — the entry type (CloudRecordEntry); R — the void answer type (AckResult);
 *   B — the batch answer type (issue 17).
 */
export class CloudLedger<E, R, B = unknown> {
  readonly entries: DurableMap<E>;
  readonly voids: DurableMap<R>;
  readonly batches: DurableMap<B>;
  #db: Database.Database | undefined;
  #tx: Database.Transaction<(fn: () => unknown) => unknown> | undefined;

  /**
   * Opens (creates) the ledger in `file`, or an in-memory one when `file` is undefined.
   * `shared`: several cloud core instances use this file at once (see {@link DurableMap}).
   *
   * @throws SqliteError when the file cannot be opened or is not a ledger.
   */
  constructor(file: string | undefined, options: { shared?: boolean } = {}) {
    if (file === undefined) {
      this.entries = new DurableMap<E>(undefined);
      this.voids = new DurableMap<R>(undefined);
      this.batches = new DurableMap<B>(undefined);
      return;
    }
    const shared = options.shared === true;
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // Several instances write one file: a writer waits for another's commit instead of failing.
    db.pragma('busy_timeout = 5000');
    db.exec(
      'CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, entry TEXT NOT NULL) STRICT;' +
        'CREATE TABLE IF NOT EXISTS voids (key TEXT PRIMARY KEY, result TEXT NOT NULL) STRICT;' +
        'CREATE TABLE IF NOT EXISTS batches (key TEXT PRIMARY KEY, answer TEXT NOT NULL) STRICT;',
    );
    const access = (table: 'entries' | 'voids' | 'batches', column: string): TableAccess => {
      const put = db.prepare(
        `INSERT INTO ${table} (key, ${column}) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET ${column} = excluded.${column}`,
      );
      const claim = db.prepare(
        `INSERT INTO ${table} (key, ${column}) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
      );
      const get = db.prepare(`SELECT ${column} FROM ${table} WHERE key = ?`).pluck();
      const all = db.prepare(`SELECT key, ${column} FROM ${table} ORDER BY rowid`).raw();
      return {
        put: (key, json) => void put.run(key, json),
        claim: (key, json) => claim.run(key, json).changes === 1,
        get: (key) => get.get(key) as string | undefined,
        all: () => all.all() as Array<[string, string]>,
      };
    };
    this.entries = new DurableMap<E>(access('entries', 'entry'), shared);
    this.voids = new DurableMap<R>(access('voids', 'result'), shared);
    this.batches = new DurableMap<B>(access('batches', 'answer'), shared);
    this.#db = db;
    this.#tx = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Runs `fn` in one `BEGIN IMMEDIATE` transaction of the ledger file, committed (FULL) before it
   * returns: every write `fn` makes is durable together, or (when `fn` throws) none is in the
   * file. The memory copy of an unshared ledger keeps what `fn` set before it threw (nothing was
   * answered for it; a resend books it again after a restart). Without a file, just `fn()`.
   * Nested calls join the outer transaction (a savepoint).
   */
  transaction<T>(fn: () => T): T {
    if (this.#tx === undefined || this.#db?.open !== true) return fn();
    return this.#tx.immediate(fn) as T;
  }

  /** Closes the file (an in-memory ledger has nothing to close). Idempotent. */
  close(): void {
    if (this.#db?.open === true) this.#db.close();
  }
}
