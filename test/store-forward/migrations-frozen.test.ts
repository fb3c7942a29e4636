/**
 * Released migrations never change (store-forward/migrations/index.ts): when migrations.ts was
 * split into one file per migration (issue 15), each migration's SQL had to stay byte for byte
 * what it was, and the schema a fresh database migrates to had to stay the same. The digests
 * below were taken from the single-file migrations.ts before the split.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../store-forward/database.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../store-forward/migrations/index.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** version → [name, SHA-256 of the SQL text], as released. */
const RELEASED: Record<number, [string, string]> = {
  1: [
    'payments, events, outbox, sealed_cards',
    'fc21cf35374c4d2af78089b6a8cf829e2162b5d351aee5c0f97d6c45aebf6e83',
  ],
  2: [
    'payment state machine: transitions, approval, offline mode',
    'cc5fa8d31acefd7fdb8a7821e55ef4bee140b6b9c4162025c1d1a992295fb981',
  ],
  3: [
    'retention: purged payments and kept chain links',
    'c6095c6f73c1004b1a1217a473514c9bd2ab9f093afb609f31535500dd837fa3',
  ],
  4: [
    'store kernel: ack events, chain checkpoints, outbox counts',
    '8c3f273e7516b5a86584316fc77f66274e5e39f29978724ae14b55118aac611e',
  ],
  5: [
    'reconciliation: batches, batch events, exceptions',
    '406809b9f6d230944a35893cb56351e4ec60a8d26569609988796d4325ace387',
  ],
  6: [
    'offline exposure as a running total',
    'cd4e5c870a79bfb934d314105d0e7265e2c773e54a952682b868dbb155ef086e',
  ],
  7: [
    'fewer b-trees per payment commit',
    '14caacd878e6dd822b220c5a8b09be91bc8001665da1212558b0364f1dfc5a30',
  ],
};

describe('released migrations are frozen', () => {
  it('keeps every released migration byte for byte, in order, without gaps', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, index) => index + 1));
    for (const migration of MIGRATIONS) {
      const released = RELEASED[migration.version];
      if (released === undefined) continue; // a new migration: released once it ships
      expect([migration.name, sha256(migration.sql)]).toEqual(released);
    }
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(5);
  });

  it('migrates a fresh database to the schema of version 5 as released', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pos-migrations-'));
    try {
      const db = openDatabase(join(dir, 'agent.db'), { migrations: MIGRATIONS.slice(0, 5) });
      try {
        const schema = db
          .prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name')
          .all();
        expect(schema).toHaveLength(94);
        expect(sha256(JSON.stringify(schema))).toBe(
          '2f748bcece529b7e7b5eca505bcd3de056f2381b5189473ac3461830c21b8568',
        );
        const transitions = db.prepare('SELECT * FROM payment_transitions ORDER BY 1, 2').all();
        expect(sha256(JSON.stringify(transitions))).toBe(
          '3bb311cb0170c41140c450b40820ab48c1672723a04ec8d3e080ee1bbbf0142f',
        );
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
