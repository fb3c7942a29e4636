/**
 * The cloud core's group commit (simulator/book-queue.ts) on a real ledger file: the `up/records`
 * messages that arrive together are booked in ONE ledger transaction, in arrival order, and a
 * failed commit answers none of them and books nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { BookQueue, type BookRequest } from '../../simulator/book-queue.js';
import { CloudBook } from '../../simulator/cloud-book.js';
import { makeRecord } from '../cloud-sync/fixtures.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function ledgerFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-book-queue-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'ledger.db');
}

/** A queue over a real book that records how many messages each commit held. */
function queueOver(book: CloudBook): { queue: BookQueue; groups: number[]; errors: number[] } {
  const groups: number[] = [];
  const errors: number[] = [];
  const queue = new BookQueue(
    (requests: readonly BookRequest[]) => {
      groups.push(requests.length);
      return book.applyMessages(requests);
    },
    (_error, messages) => errors.push(messages),
  );
  return { queue, groups, errors };
}

describe('BookQueue: one ledger commit for the messages that arrive together', () => {
  it('books three messages of two devices in one commit, in order; a later message in its own', async () => {
    const file = ledgerFile();
    const book = new CloudBook({ ledgerFile: file });
    cleanups.push(() => book.close());
    const { queue, groups } = queueOver(book);
    const [a, b, c] = await Promise.all([
      queue.book({ deviceId: 'lane-1', records: [makeRecord(1), makeRecord(2)] }),
      queue.book({ deviceId: 'lane-2', records: [makeRecord(3)] }),
      // A resend of lane-1's first record within the same group: the first booking wins.
      queue.book({ deviceId: 'lane-1', records: [makeRecord(1)] }),
    ]);
    expect(groups).toEqual([3]);
    expect(queue.commits).toBe(1);
    expect(a?.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(b?.map((r) => r.status)).toEqual(['accepted']);
    expect(c?.map((r) => r.status)).toEqual(['duplicate']);
    const later = await queue.book({ deviceId: 'lane-2', records: [makeRecord(4)] });
    expect(groups).toEqual([3, 1]);
    expect(later?.map((r) => r.status)).toEqual(['accepted']);
    // Committed: a new instance on the file knows every key, each charged once.
    const restarted = new CloudBook({ ledgerFile: file });
    cleanups.push(() => restarted.close());
    expect(restarted.charges().sort()).toEqual(
      [makeRecord(1), makeRecord(2), makeRecord(3), makeRecord(4)].map((r) => r.key).sort(),
    );
  });

  it('a failed commit answers none of the group and books nothing; booked again, each key once', async () => {
    const file = ledgerFile();
    const book = new CloudBook({ ledgerFile: file });
    cleanups.push(() => book.close());
    const { queue, errors } = queueOver(book);
    const other = new Database(file);
    other.exec('BEGIN IMMEDIATE'); // another instance holds the write lock
    let answers: (unknown[] | undefined)[];
    try {
      answers = await Promise.all([
        queue.book({ deviceId: 'lane-1', records: [makeRecord(1)] }),
        queue.book({ deviceId: 'lane-2', records: [makeRecord(2)] }),
      ]);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(answers).toEqual([undefined, undefined]);
    expect(errors).toEqual([2]);
    expect(queue.commits).toBe(0);
    const reader = new CloudBook({ ledgerFile: file });
    cleanups.push(() => reader.close());
    expect(reader.charges()).toEqual([]);
    const again = await Promise.all([
      queue.book({ deviceId: 'lane-1', records: [makeRecord(1)] }),
      queue.book({ deviceId: 'lane-2', records: [makeRecord(2)] }),
    ]);
    expect(again.map((r) => r?.map((x) => x.status))).toEqual([['accepted'], ['accepted']]);
    expect(book.charges().sort()).toEqual([makeRecord(1).key, makeRecord(2).key].sort());
  }, 20_000);
});
