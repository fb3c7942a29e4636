/**
 * The read-only open used by the field tech's commands (`doctor`, `verify`, `queue`; issue 12):
 * it never creates a database, never migrates, never writes, and never checkpoints or deletes
 * the WAL a stopped (or crashed) agent left behind.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { openDatabase } from '../../store-forward/database.js';
import { SCHEMA_VERSION } from '../../store-forward/migrations/index.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { newPayment, tempDir } from './helpers.js';

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});
function freshDir(): string {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  return dir;
}
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isAgentError(error)) return error.code;
    throw error;
  }
  throw new Error('expected an AgentError, nothing was thrown');
}

describe('openDatabase({ readonly: true })', () => {
  it('refuses a missing file with POS201 and creates nothing', () => {
    const dir = freshDir();
    const path = join(dir, 'agent.db');
    // Control: the ordinary open does create the file.
    const control = join(freshDir(), 'agent.db');
    openDatabase(control).close();
    expect(existsSync(control)).toBe(true);

    expect(codeOf(() => PaymentStore.open({ path, readonly: true }))).toBe('POS201');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reads a current database and refuses every write (POS207)', () => {
    const path = join(freshDir(), 'agent.db');
    const writer = PaymentStore.open({ path });
    writer.createPayment(newPayment('key-ro-1'));
    writer.close();
    const reader = PaymentStore.open({ path, readonly: true });
    try {
      expect(reader.queueStats().depth).toBe(1);
      expect(reader.verifyChain().ok).toBe(true);
      expect(codeOf(() => reader.createPayment(newPayment('key-ro-2')))).toBe('POS207');
    } finally {
      reader.close();
    }
  });

  it('never checkpoints or deletes the WAL a crashed agent left behind', () => {
    const live = freshDir();
    const path = join(live, 'agent.db');
    const writer = PaymentStore.open({ path });
    writer.createPayment(newPayment('key-wal-1'));
    // A snapshot of the files while the writer is open is what a crash leaves: the payment is
    // only in the WAL until a checkpoint.
    const crashed = join(freshDir(), 'crashed');
    mkdirSync(crashed);
    for (const f of ['agent.db', 'agent.db-wal', 'agent.db-shm'])
      copyFileSync(join(live, f), join(crashed, f));
    writer.close();
    const copy = join(crashed, 'agent.db');
    const walBefore = readFileSync(`${copy}-wal`);
    const dbBefore = readFileSync(copy);
    expect(walBefore.length).toBeGreaterThan(0);

    const reader = PaymentStore.open({ path: copy, readonly: true });
    expect(reader.queueStats().depth).toBe(1);
    reader.close();

    expect(readFileSync(`${copy}-wal`).equals(walBefore)).toBe(true);
    expect(readFileSync(copy).equals(dbBefore)).toBe(true);
  });

  it('refuses a newer schema (POS203) and an older one (POS208) without touching either', () => {
    const newer = join(freshDir(), 'agent.db');
    openDatabase(newer).close();
    const raw = new Database(newer);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(codeOf(() => openDatabase(newer, { readonly: true }))).toBe('POS203');

    const older = join(freshDir(), 'agent.db');
    openDatabase(older).close();
    const raw2 = new Database(older);
    raw2.pragma(`user_version = ${SCHEMA_VERSION - 1}`);
    raw2.close();
    expect(codeOf(() => openDatabase(older, { readonly: true }))).toBe('POS208');
    const check = new Database(older, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION - 1);
    check.close();
  });

  it('refuses a file that is not a pos-agent database (POS204)', () => {
    const path = join(freshDir(), 'other.db');
    const raw = new Database(path);
    raw.exec('CREATE TABLE t (x INTEGER)');
    raw.pragma('user_version = 3');
    raw.close();
    expect(codeOf(() => openDatabase(path, { readonly: true }))).toBe('POS204');
  });
});
