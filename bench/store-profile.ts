/**
 * A measuring tool for issue 9 (not a bench row): the offline payment's store work exactly as
 * bench/enqueue.ts does it (startPayment → recordCardRead → storeOffline, one FULL commit), run
 * `n` times in one process so that `node --cpu-prof` or callgrind sees it, and the WAL bytes one
 * such commit writes against the bare better-sqlite3 single-row commit of the baseline.
 *
 * ```
 *  npm run build && node --cpu-prof dist/bench/store-profile.js [n] [dir] [backlog] [online]
 * ```
 *
 * Prints one JSON line: CPU µs per payment (user + system, process.cpuUsage), wall µs per
 * payment, WAL frames and bytes per payment and per bare row; then `floor`: `n` rounds of
 * (payment, bare row, bare row as big as the payment's commit) interleaved, p50 and p99 in µs —
 * the bare row whose commit writes as many WAL frames as the payment's (one blob spilling into
 * overflow pages) is the I/O part of the payment's ratio to the bare commit, with none of its
 * CPU: what no code change short of fewer pages (a schema change) can take away. `dir` defaults to a fresh temp
 * directory (use /dev/shm to take fsync out of the wall time). `backlog` (default 0) stores that
 * many unsettled offline payments first, as an outage would. `online` times the online payment's
 * store work instead (authorization_requested, then the approval: two commits).
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1); the baseline and
 * the WAL counts come from bench/fixtures.ts.
 */
import path from 'node:path';
import { PaymentStore } from '../store-forward/payment-store.js';
import { payThroughStore } from './enqueue.js';
import {
  blobForFrames,
  commitFrameCounts,
  makeCardTokens,
  makeKeys,
  newPayment,
  openBareBaseline,
  tempDir,
} from './fixtures.js';
import { summarize } from './stats.js';

function main(): void {
  const n = Number(process.argv[2] ?? 2000);
  const dir = process.argv[3] ?? tempDir('store-profile');
  const backlog = Number(process.argv[4] ?? 0);
  const mode = process.argv[5] === 'online' ? 'online' : 'offline';
  const tokens = makeCardTokens(makeKeys(), 16);
  const dbPath = path.join(dir, `agent-${process.pid}.db`);
  const barePath = path.join(dir, `bare-${process.pid}.db`);
  const store = PaymentStore.open({ path: dbPath });
  const bare = openBareBaseline(barePath);
  const bigPath = path.join(dir, `bare-frames-${process.pid}.db`);
  const big = openBareBaseline(bigPath);
  let i = 0;
  const pay = (kind: 'force_offline' | 'prefer_online') => (): void => {
    const input = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
    i += 1;
    payThroughStore(store, input, kind);
  };
  const offline = pay('force_offline');
  const online = pay('prefer_online');
  const payment = mode === 'online' ? online : offline;
  // The agent's timer between payments (bench/enqueue.ts does the same).
  const measured = (): void => {
    payment();
    store.maintenance();
  };
  try {
    for (let b = 0; b < backlog; b++) {
      offline();
      store.maintenance();
    }
    for (let w = 0; w < 200; w++) measured();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let k = 0; k < n; k++) measured();
    const wallUs = ((performance.now() - t0) * 1000) / n;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = (cpu.user + cpu.system) / n;

    const bareCpu0 = process.cpuUsage();
    const b0 = performance.now();
    for (let k = 0; k < n; k++) bare.insert();
    const bareWallUs = ((performance.now() - b0) * 1000) / n;
    const bareCpuD = process.cpuUsage(bareCpu0);
    const bareCpuUs = (bareCpuD.user + bareCpuD.system) / n;

    const samples = 20;
    const sum = (counts: number[]): number => counts.reduce((a, c) => a + c, 0);
    const frames = sum(commitFrameCounts(dbPath, payment, samples));
    const bareFrames = sum(commitFrameCounts(barePath, () => bare.insert(), samples));
    const pageSize = bare.db.pragma('page_size', { simple: true }) as number;
    // One row whose commit writes about as many WAL frames as the payment's (fixtures.ts).
    const bigBlob = blobForFrames(big, bigPath, Math.round(frames / samples)).blob;
    const bigFrames = sum(
      commitFrameCounts(bigPath, () => big.insert(undefined, bigBlob), samples),
    );
    const floor = { payment: [] as number[], bare: [] as number[], sameFrames: [] as number[] };
    const timed = (into: number[], fn: () => void): void => {
      const t = performance.now();
      fn();
      into.push((performance.now() - t) * 1000);
    };
    for (let k = 0; k < n; k++) {
      timed(floor.payment, payment);
      store.maintenance(); // untimed, as in bench/enqueue.ts
      timed(floor.bare, () => bare.insert());
      timed(floor.sameFrames, () => big.insert(undefined, bigBlob));
      // The bare connections keep SQLite's auto-checkpoint; the big one checkpoints as the
      // store's maintenance does, every 32 commits, so its WAL does not grow past the others'.
      if (k % 32 === 31) big.db.pragma('wal_checkpoint(PASSIVE)');
    }
    const p = (samples: number[]): { p50: number; p99: number } => {
      const s = summarize(samples);
      return { p50: Math.round(s.p50), p99: Math.round(s.p99) };
    };
    console.log(
      JSON.stringify({
        n,
        mode,
        backlog,
        dir,
        payment: {
          cpuUs: Math.round(cpuUs),
          wallUs: Math.round(wallUs),
          walFrames: frames / samples,
          walBytes: Math.round((frames / samples) * (pageSize + 24)),
        },
        bare: {
          cpuUs: Math.round(bareCpuUs),
          wallUs: Math.round(bareWallUs),
          walFrames: bareFrames / samples,
          walBytes: Math.round((bareFrames / samples) * (pageSize + 24)),
        },
        floor: {
          sameFramesWalFrames: bigFrames / samples,
          paymentUs: p(floor.payment),
          bareUs: p(floor.bare),
          sameFramesUs: p(floor.sameFrames),
        },
      }),
    );
  } finally {
    store.close();
    bare.close();
    big.close();
  }
}

main();
