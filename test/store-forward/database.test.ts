import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { APPLICATION_ID, openDatabase } from '../../store-forward/database.js';
import {
  MIGRATIONS,
  SCHEMA_VERSION,
  type Migration,
} from '../../store-forward/migrations/index.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { newPayment, tempDir } from './helpers.js';

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});
function dbPath(): string {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  return join(dir, 'agent.db');
}
function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (isAgentError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected an AgentError, nothing was thrown');
}
function schemaOf(path: string): unknown[] {
  const raw = new Database(path, { readonly: true });
  try {
    return raw.prepare('SELECT type, name, sql FROM sqlite_schema ORDER BY name').all();
  } finally {
    raw.close();
  }
}

describe('openDatabase pragmas', () => {
  it('reads back WAL, synchronous FULL (2), foreign keys, secure delete, temp store MEMORY (2) and busy timeout', () => {
    const db = openDatabase(dbPath(), { busyTimeoutMs: 1234 });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('synchronous', { simple: true })).toBe(2);
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(db.pragma('secure_delete', { simple: true })).toBe(1);
      // Issue 9: statement journals and set-based scratch tables in memory, never a temp file.
      expect(db.pragma('temp_store', { simple: true })).toBe(2);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    } finally {
      db.close();
    }
  });

  it('leaves the file in WAL mode, as a second connection sees it', () => {
    const path = dbPath();
    const store = PaymentStore.open({ path });
    try {
      const raw = new Database(path);
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      raw.close();
    } finally {
      store.close();
    }
  });

  it('refuses an in-memory database (POS205)', () => {
    expect(errorOf(() => openDatabase(':memory:')).code).toBe('POS205');
  });

  it('names the path and the fix when the directory does not exist (POS201)', () => {
    const path = join(dbPath(), 'no-such-dir', 'agent.db');
    const { code, message } = errorOf(() => openDatabase(path));
    expect(code).toBe('POS201');
    expect(message).toContain(path);
    expect(message).toContain('fix:');
  });

  it('refuses a file that is not SQLite (POS204)', () => {
    const path = dbPath();
    writeFileSync(path, 'this is a receipt printer log, not a database\n'.repeat(200));
    expect(errorOf(() => openDatabase(path)).code).toBe('POS204');
  });

  it("refuses another application's SQLite database (POS204) and leaves it alone", () => {
    const path = dbPath();
    const other = new Database(path);
    other.exec('CREATE TABLE inventory (sku TEXT)');
    other.close();
    expect(errorOf(() => openDatabase(path)).code).toBe('POS204');
    expect(schemaOf(path)).toHaveLength(1);
  });
});

describe('migrations', () => {
  it('gives a fresh database the latest user_version and the application id', () => {
    const path = dbPath();
    openDatabase(path).close();
    const raw = new Database(path);
    expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(raw.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    expect(
      raw
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .all()
        .map((r) => (r as { name: string }).name),
    ).toEqual([
      'ack_event_members',
      'ack_events',
      'batch_events',
      'batch_exceptions',
      'batch_records',
      'batches',
      'chain_checkpoints',
      'chain_head',
      'events',
      'offline_exposure',
      'outbox',
      'payment_transitions',
      'payments',
      'purged_events',
      'purged_payments',
      'sealed_cards',
    ]);
    raw.close();
  });

  it('makes every table STRICT', () => {
    const path = dbPath();
    openDatabase(path).close();
    const raw = new Database(path);
    const tables = raw
      .prepare(
        "SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%'",
      )
      .all() as { name: string; strict: number }[];
    const views = raw
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name")
      .pluck()
      .all();
    raw.close();
    // Migration 7: the queue's counts are columns of chain_head, read through a view.
    expect(views).toEqual(['outbox_counts']);
    expect(tables.length).toBeGreaterThan(0);
    expect(tables.filter((t) => t.strict !== 1)).toEqual([]);
  });

  it('re-opening a current database is a no-op that keeps the data', () => {
    const path = dbPath();
    const store = PaymentStore.open({ path });
    const { payment } = store.createPayment(newPayment('key-1'));
    store.close();
    const before = schemaOf(path);
    const again = PaymentStore.open({ path });
    try {
      expect(schemaOf(path)).toEqual(before);
      expect(again.getPayment(payment.id)).toEqual(payment);
    } finally {
      again.close();
    }
  });

  it('refuses a database with a newer user_version (POS203) without touching it', () => {
    const path = dbPath();
    openDatabase(path).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const { code, message } = errorOf(() => PaymentStore.open({ path }));
    expect(code).toBe('POS203');
    expect(message).toContain(String(SCHEMA_VERSION + 1));
    const check = new Database(path);
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
    check.close();
  });

  it('runs only the pending migrations, all in one transaction', () => {
    const path = dbPath();
    const m1: Migration = { version: 1, name: 'one', sql: 'CREATE TABLE one (x INTEGER) STRICT;' };
    const m2: Migration = { version: 2, name: 'two', sql: 'CREATE TABLE two (x INTEGER) STRICT;' };
    const m3: Migration = {
      version: 3,
      name: 'three',
      sql: 'CREATE TABLE three (x INTEGER) STRICT;',
    };
    openDatabase(path, { migrations: [m1] }).close();
    // m1 would fail if it ran again (table exists): only 2 and 3 run.
    const db = openDatabase(path, { migrations: [m1, m2, m3] });
    expect(db.pragma('user_version', { simple: true })).toBe(3);
    db.close();
    expect(schemaOf(path).map((r) => (r as { name: string }).name)).toEqual([
      'one',
      'three',
      'two',
    ]);
  });

  it('rolls back every pending migration when one fails (POS202) and names it', () => {
    const path = dbPath();
    const good: Migration = {
      version: 1,
      name: 'good',
      sql: 'CREATE TABLE good (x INTEGER) STRICT;',
    };
    const bad: Migration = {
      version: 2,
      name: 'bad',
      sql: 'CREATE TABLE broken (x NOSUCHTYPE) STRICT;',
    };
    const { code, message } = errorOf(() => openDatabase(path, { migrations: [good, bad] }));
    expect(code).toBe('POS202');
    expect(message).toContain('migration 2 (bad)');
    const raw = new Database(path);
    expect(raw.pragma('user_version', { simple: true })).toBe(0);
    expect(
      raw.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'good'").get(),
    ).toEqual({ n: 0 });
    raw.close();
  });

  it('refuses a migration list with a gap (POS202)', () => {
    const m: Migration = { version: 2, name: 'two', sql: 'SELECT 1;' };
    expect(errorOf(() => openDatabase(dbPath(), { migrations: [m] })).code).toBe('POS202');
  });
});
