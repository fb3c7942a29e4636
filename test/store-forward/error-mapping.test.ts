/**
 * Regression (issue 10 item 6): b-tree damage was reported as POS207 "free disk space", advice
 * that fixes nothing; damage is POS209 with advice that keeps the files (they may hold unsent
 * payments). A full disk stays POS207.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { toAgentError } from '../../store-forward/kernel.js';

describe('SQLite errors as store codes', () => {
  it('damage is POS209 and never advises freeing disk space or deleting the database', () => {
    for (const code of ['SQLITE_CORRUPT', 'SQLITE_CORRUPT_INDEX', 'SQLITE_NOTADB']) {
      const error = toAgentError(
        new Database.SqliteError('database disk image is malformed', code),
      );
      expect(error.code).toBe('POS209');
      expect(error.message).toMatch(/keep agent\.db, agent\.db-wal and agent\.db-shm/);
      expect(error.message).not.toMatch(/free disk space|move this file away/);
    }
  });

  it('a full disk is POS207 with the advice to free space', () => {
    const error = toAgentError(new Database.SqliteError('database or disk is full', 'SQLITE_FULL'));
    expect(error.code).toBe('POS207');
    expect(error.message).toMatch(/free disk space/);
  });
});
