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
 * Every change is written through at once with `synchronous=FULL` (before the cloud core
 * answers), as a real cloud's ledger commits before it acknowledges. Without a file the ledger
 * lives in memory only (fast tests and the benchmark).
 *
 * The simulator is the one place outside store-forward/ allowed better-sqlite3 (eslint.config.js):
 * it stands in for the cloud's own database, not for the agent's store.
 */
import Database from 'better-sqlite3';

/** A map of JSON-serializable values by key, optionally written through to a SQLite table. */
export class DurableMap<V> {
  #memory = new Map<string, V>();
  #put: ((key: string, json: string) => void) | undefined;

  /** @internal built by {@link CloudLedger}. */
  constructor(
    rows: Iterable<[string, string]>,
    put: ((key: string, json: string) => void) | undefined,
  ) {
    for (const [key, json] of rows) this.#memory.set(key, JSON.parse(json) as V);
    this.#put = put;
  }

  get(key: string): V | undefined {
    return this.#memory.get(key);
  }

  has(key: string): boolean {
    return this.#memory.has(key);
  }

  /** Stores `value` (again, after an in-place change) and writes it through. */
  set(key: string, value: V): this {
    this.#memory.set(key, value);
    this.#put?.(key, JSON.stringify(value));
    return this;
  }

  get size(): number {
    return this.#memory.size;
  }

  keys(): IterableIterator<string> {
    return this.#memory.keys();
  }

  values(): IterableIterator<V> {
    return this.#memory.values();
  }

  entries(): IterableIterator<[string, V]> {
    return this.#memory.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.#memory.entries();
  }

  /** A read-only view for callers that expect a `ReadonlyMap`. */
  asReadonlyMap(): ReadonlyMap<string, V> {
    return this.#memory;
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

  /**
   * Opens (creates) the ledger in `file`, or an in-memory one when `file` is undefined.
   *
   * @throws SqliteError when the file cannot be opened or is not a ledger.
   */
  constructor(file: string | undefined) {
    if (file === undefined) {
      this.entries = new DurableMap<E>([], undefined);
      this.voids = new DurableMap<R>([], undefined);
      this.batches = new DurableMap<B>([], undefined);
      return;
    }
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(
      'CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, entry TEXT NOT NULL) STRICT;' +
        'CREATE TABLE IF NOT EXISTS voids (key TEXT PRIMARY KEY, result TEXT NOT NULL) STRICT;' +
        'CREATE TABLE IF NOT EXISTS batches (key TEXT PRIMARY KEY, answer TEXT NOT NULL) STRICT;',
    );
    const rows = (
      table: 'entries' | 'voids' | 'batches',
      column: string,
    ): Array<[string, string]> =>
      (
        db.prepare(`SELECT key, ${column} AS json FROM ${table}`).all() as Array<{
          key: string;
          json: string;
        }>
      ).map((r) => [r.key, r.json]);
    const putEntry = db.prepare(
      'INSERT INTO entries (key, entry) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET entry = excluded.entry',
    );
    const putVoid = db.prepare(
      'INSERT INTO voids (key, result) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET result = excluded.result',
    );
    const putBatch = db.prepare(
      'INSERT INTO batches (key, answer) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET answer = excluded.answer',
    );
    this.entries = new DurableMap<E>(rows('entries', 'entry'), (k, j) => void putEntry.run(k, j));
    this.batches = new DurableMap<B>(rows('batches', 'answer'), (k, j) => void putBatch.run(k, j));
    this.voids = new DurableMap<R>(rows('voids', 'result'), (k, j) => void putVoid.run(k, j));
    this.#db = db;
  }

  /** Closes the file (an in-memory ledger has nothing to close). Idempotent. */
  close(): void {
    if (this.#db?.open === true) this.#db.close();
  }
}
