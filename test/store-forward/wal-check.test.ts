/**
 * The WAL check (issue 10, fault 3): a damaged WAL frame with committed transactions after it
 * silently dropped acknowledged payments, because SQLite stops reading a WAL at the first frame
 * that fails its checksum. The WALs here are written by SQLite itself (so the checksum code is
 * checked against the real format), copied while the database is open — as a kill -9 leaves them.
 */
import Database from 'better-sqlite3';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkWal } from '../../store-forward/wal-check.js';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const PAGE = 4096;
const FRAME = 24 + PAGE;

/**
 * A database in WAL mode with `rows` single-row transactions that are only in the WAL, copied
 * to `crashed.db` / `crashed.db-wal` while still open (no checkpoint, no WAL deletion).
 */
function crashedWal(rows: number): { db: string; wal: string } {
  dir = mkdtempSync(path.join(tmpdir(), 'pos-walcheck-'));
  const live = path.join(dir, 'live.db');
  const db = new Database(live);
  db.pragma(`page_size = ${PAGE}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE payments (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, note TEXT)');
  const insert = db.prepare('INSERT INTO payments (amount, note) VALUES (?, ?)');
  for (let i = 1; i <= rows; i++) insert.run(i * 100, 'x'.repeat(600));
  const crashed = path.join(dir, 'crashed.db');
  copyFileSync(live, crashed);
  copyFileSync(`${live}-wal`, `${crashed}-wal`);
  db.close();
  return { db: crashed, wal: `${crashed}-wal` };
}

/** Rows SQLite sees in a copy (read through a scratch copy, so the files under test stay as they are). */
function rowsSeenBySqlite(files: { db: string; wal: string }): number {
  const scratch = `${files.db}.scratch`;
  copyFileSync(files.db, scratch);
  copyFileSync(files.wal, `${scratch}-wal`);
  const db = new Database(scratch);
  const n = (db.prepare('SELECT count(*) AS n FROM payments').get() as { n: number }).n;
  db.close();
  return n;
}

function flipBytes(file: string, offset: number, count: number): void {
  const bytes = readFileSync(file);
  for (let i = 0; i < count; i++) bytes[offset + i] = (bytes[offset + i] ?? 0) ^ 0xff;
  writeFileSync(file, bytes);
}

describe('checkWal', () => {
  it('a WAL written by SQLite verifies: every frame, every committed transaction', () => {
    const files = crashedWal(12);
    const report = checkWal(files.wal);
    expect(report.condition).toBe('ok');
    expect(report.pageSize).toBe(PAGE);
    expect(report.frames).toBeGreaterThanOrEqual(13);
    expect(report.replayableFrames).toBe(report.frames);
    // One transaction for CREATE TABLE, one per row.
    expect(report.replayableTransactions).toBe(13);
    expect(rowsSeenBySqlite(files)).toBe(12);
  });

  it('32 flipped bytes in an early frame are damage: the committed transactions after it are counted, and SQLite indeed drops them', () => {
    const files = crashedWal(12);
    const before = checkWal(files.wal);
    // Frame 3 (1-based): inside its page.
    flipBytes(files.wal, 32 + 2 * FRAME + 24 + 1000, 32);
    const report = checkWal(files.wal);
    expect(report.condition).toBe('damaged');
    expect(report.firstBadFrame).toBe(3);
    expect(report.transactionsAfterBad).toBeGreaterThan(0);
    expect(report.replayableTransactions + report.transactionsAfterBad).toBeLessThanOrEqual(
      before.replayableTransactions,
    );
    expect(report.summary).toContain('fails its checksum');
    // What the check protects against: SQLite itself silently sees fewer rows.
    expect(rowsSeenBySqlite(files)).toBeLessThan(12);
  });

  it('a frame torn at the end, with no commit after it, is a torn tail, not damage', () => {
    const files = crashedWal(5);
    const frames = checkWal(files.wal).frames;
    // The last frame's page is garbage (written halfway when the power went).
    flipBytes(files.wal, 32 + (frames - 1) * FRAME + 24 + 10, 200);
    const report = checkWal(files.wal);
    expect(report.condition).toBe('torn_tail');
    expect(report.firstBadFrame).toBe(frames);
    expect(report.transactionsAfterBad).toBe(0);
  });

  it('a partial last frame (the file cut mid-frame) is ignored like SQLite does', () => {
    const files = crashedWal(5);
    const full = checkWal(files.wal);
    truncateSync(files.wal, full.bytes - 100);
    const report = checkWal(files.wal);
    expect(report.condition).toBe('ok');
    expect(report.frames).toBe(full.frames - 1);
  });

  it('a damaged WAL header with frames after it is damage (SQLite would drop the whole WAL)', () => {
    const files = crashedWal(4);
    flipBytes(files.wal, 16, 4); // salt-1
    const report = checkWal(files.wal);
    expect(report.condition).toBe('damaged');
    expect(report.firstBadFrame).toBe(0);
    expect(report.transactionsAfterBad).toBe(5);
    // Even the table, created in the WAL only, is gone for SQLite.
    expect(() => rowsSeenBySqlite(files)).toThrow(/no such table/);
  });

  it('no WAL, or a WAL without frames, is nothing to worry about', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-walcheck-'));
    expect(checkWal(path.join(dir, 'none.db-wal')).condition).toBe('absent');
    writeFileSync(path.join(dir, 'zero.db-wal'), Buffer.alloc(0));
    expect(checkWal(path.join(dir, 'zero.db-wal')).condition).toBe('empty');
  });
});
