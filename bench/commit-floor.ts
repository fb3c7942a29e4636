/**
 * A measuring tool for issue 9 (not a bench row): what the disk alone charges a commit for its
 * size. Bare better-sqlite3 single-row commits (WAL, `synchronous=FULL`, fixtures.openBareBaseline)
 * whose blob spills into 0, 2, 5, … overflow pages, so that each commit writes about 3, 5, 8, …
 * WAL frames, interleaved round by round in one directory (same disk, same drift), each file
 * checkpointed every 32 commits as the store's maintenance does. Prints p50 and p99 per size and
 * their ratios to the 3-frame commit: the floor under a payment commit of as many frames, before
 * any CPU (an offline payment's commit writes ~19-20 frames, bench/wal-pages.ts; its store work is
 * judged at p99 ≤ 1.5× the 3-frame commit).
 *
 * ```
 *  npm run build && node dist/bench/commit-floor.js [rounds=3000] [dir]
 * ```
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1).
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { type BareBaseline, openBareBaseline, removeDir, tempDir } from './fixtures.js';
import { fmt, formatTable, summarize } from './stats.js';

/** Overflow pages of each commit's blob (0: the bare 1-row commit, ~3 frames). */
const OVERFLOW_PAGES = [0, 2, 5, 7, 10, 13, 17] as const;
/** Rounds run first and not counted. */
const WARMUP = 200;
/** Commits between checkpoints (StoreKernel's WAL_CHECKPOINT_WRITES). */
const CHECKPOINT_EVERY = 32;

function main(): void {
  const rounds = Number(process.argv[2] ?? 3000);
  const given = process.argv[3];
  const dir = given ?? tempDir('commit-floor');
  const sizes: { pages: number; bare: BareBaseline; blob: Buffer | undefined; ms: number[] }[] = [];
  try {
    for (const pages of OVERFLOW_PAGES) {
      const bare = openBareBaseline(path.join(dir, `floor-${pages}.db`));
      const pageSize = bare.db.pragma('page_size', { simple: true }) as number;
      // 4 bytes of each overflow page hold the next page's number (SQLite file format §1.6).
      const blob = pages === 0 ? undefined : randomBytes(pages * (pageSize - 4));
      sizes.push({ pages, bare, blob, ms: [] });
    }
    for (let i = 0; i < WARMUP + rounds; i++) {
      for (let j = 0; j < sizes.length; j++) {
        // The order rotates, so no size always follows the same one.
        const size = sizes[(i + j) % sizes.length] as (typeof sizes)[number];
        const t0 = performance.now();
        size.bare.insert(undefined, size.blob);
        const ms = performance.now() - t0;
        if (i >= WARMUP) size.ms.push(ms);
        if (i % CHECKPOINT_EVERY === CHECKPOINT_EVERY - 1) {
          size.bare.db.pragma('wal_checkpoint(PASSIVE)');
        }
      }
    }
    const base = summarize((sizes[0] as (typeof sizes)[number]).ms);
    const rows = sizes.map(({ pages, ms }) => {
      const s = summarize(ms);
      return [
        `~${pages + 3}`,
        fmt(s.p50, 3),
        fmt(s.p99, 3),
        fmt(s.p50 / base.p50),
        fmt(s.p99 / base.p99),
      ];
    });
    console.log(
      `bare commits by WAL frames written, ${rounds} interleaved rounds in ${dir} (ms; ratios to ~3 frames)`,
    );
    console.log(formatTable(['frames', 'p50', 'p99', 'p50 ratio', 'p99 ratio'], rows));
  } finally {
    for (const size of sizes) size.bare.close();
    if (given === undefined) removeDir(dir);
  }
}

main();
