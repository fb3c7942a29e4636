/**
 * A measuring tool for issue 9 (not a bench row): which b-tree each WAL page of one payment's
 * commit(s) belongs to. Runs `backlog` offline payments first (so the b-trees have depth, as a
 * store in use has), then `samples` payments of the chosen kind, each after a
 * `wal_checkpoint(TRUNCATE)`; reads the frame headers of the WAL (page number at byte 0 of each
 * 24-byte frame header, SQLite file format §4.1) and names each page by `dbstat`.
 *
 * ```
 *  npm run build && node dist/bench/wal-pages.js [offline|online] [samples] [backlog] [dir]
 * ```
 *
 * Prints one JSON line: frames per payment (online: and of its first commit), distinct pages per
 * payment, and pages per b-tree (averaged over the samples). bench/ is a measurement tool outside the product layers
 * (architecture.md §1); it imports `better-sqlite3` directly to read the WAL and `dbstat`.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { PaymentStore } from '../store-forward/payment-store.js';
import { payThroughStore } from './enqueue.js';
import { makeCardTokens, makeKeys, newPayment, tempDir, walPageNumbers } from './fixtures.js';

function main(): void {
  const mode = process.argv[2] === 'online' ? 'online' : 'offline';
  const samples = Number(process.argv[3] ?? 20);
  const backlog = Number(process.argv[4] ?? 2000);
  const dir = process.argv[5] ?? tempDir('wal-pages');
  const tokens = makeCardTokens(makeKeys(), 16);
  const dbPath = path.join(dir, `agent-${process.pid}.db`);
  const store = PaymentStore.open({ path: dbPath });
  let i = 0;
  /** Runs between the online payment's two commits (the sample reads the first one's pages). */
  let betweenCommits = (): void => {};
  const pay = (kind: 'offline' | 'online'): void => {
    const input = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
    i += 1;
    payThroughStore(store, input, kind === 'online' ? 'prefer_online' : 'force_offline', {
      betweenCommits: () => betweenCommits(),
    });
  };
  const side = new Database(dbPath);
  try {
    for (let b = 0; b < backlog; b++) {
      pay(b % 2 === 0 ? 'offline' : 'online');
      if (b % 100 === 0) side.pragma('wal_checkpoint(TRUNCATE)');
    }
    const pageSize = side.pragma('page_size', { simple: true }) as number;
    const byTree = new Map<string, number>();
    let frames = 0;
    let distinct = 0;
    let firstCommitFrames = 0;
    betweenCommits = () => {
      firstCommitFrames += walPageNumbers(`${dbPath}-wal`, pageSize).length;
    };
    for (let k = 0; k < samples; k++) {
      side.pragma('wal_checkpoint(TRUNCATE)');
      pay(mode);
      const pages = walPageNumbers(`${dbPath}-wal`, pageSize);
      frames += pages.length;
      const unique = [...new Set(pages)];
      distinct += unique.length;
      const owner = side.prepare(
        "SELECT name || CASE WHEN pagetype = 'internal' THEN ' (interior)' ELSE '' END FROM dbstat WHERE pageno = ?",
      );
      for (const page of unique) {
        const name = (owner.pluck().get(page) as string | undefined) ?? '(freelist)';
        byTree.set(name, (byTree.get(name) ?? 0) + 1);
      }
    }
    const perTree = Object.fromEntries(
      [...byTree.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([name, n]) => [name, Math.round((n / samples) * 100) / 100]),
    );
    console.log(
      JSON.stringify({
        mode,
        samples,
        backlog,
        framesPerPayment: frames / samples,
        // Online: the frames of the first commit (authorization_requested) of the two.
        ...(mode === 'online' ? { firstCommitFrames: firstCommitFrames / samples } : {}),
        pagesPerPayment: distinct / samples,
        perTree,
      }),
    );
  } finally {
    side.close();
    store.close();
  }
}

main();
