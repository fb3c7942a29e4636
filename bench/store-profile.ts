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
 * payment, WAL frames and bytes per payment and per bare row. `dir` defaults to a fresh temp
 * directory (use /dev/shm to take fsync out of the wall time). `backlog` (default 0) stores that
 * many unsettled offline payments first, as an outage would. `online` times the online payment's
 * store work instead (authorization_requested, then the approval: two commits).
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1); it imports
 * `better-sqlite3` directly for the baseline and for reading the WAL.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { PaymentStore } from '../store-forward/payment-store.js';
import { POLICY } from './enqueue.js';
import { makeCardTokens, makeKeys, newPayment, tempDir } from './fixtures.js';

/** WAL frames of one commit: the WAL is truncated first, then the commit, then its size read. */
function walFrames(walPath: string, side: Database.Database, commit: () => void): number {
  side.pragma('wal_checkpoint(TRUNCATE)');
  commit();
  const bytes = statSync(walPath).size;
  const pageSize = side.pragma('page_size', { simple: true }) as number;
  return bytes === 0 ? 0 : (bytes - 32) / (pageSize + 24);
}

function main(): void {
  const n = Number(process.argv[2] ?? 2000);
  const dir = process.argv[3] ?? tempDir('store-profile');
  const backlog = Number(process.argv[4] ?? 0);
  const mode = process.argv[5] === 'online' ? 'online' : 'offline';
  const tokens = makeCardTokens(makeKeys(), 16);
  const dbPath = path.join(dir, `agent-${process.pid}.db`);
  const barePath = path.join(dir, `bare-${process.pid}.db`);
  const store = PaymentStore.open({ path: dbPath });
  const bare = new Database(barePath);
  bare.pragma('journal_mode = WAL');
  bare.pragma('synchronous = FULL');
  bare.exec(
    'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BLOB NOT NULL) STRICT',
  );
  const insert = bare.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
  const blob = randomBytes(256);
  let i = 0;
  const offline = (): void => {
    const input = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
    i += 1;
    const { payment } = store.startPayment({
      idempotencyKey: input.idempotencyKey,
      amountMinor: input.amountMinor,
      currency: input.currency,
      offlineMode: 'force_offline',
    });
    store.recordCardRead(payment.id, input.card, { sealed: input.sealed });
    store.storeOffline(payment.id, POLICY, { ambiguous: false });
    store.maintenance(); // the agent's timer between payments (bench/enqueue.ts does the same)
  };
  const online = (): void => {
    const input = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
    i += 1;
    const { payment } = store.startPayment({
      idempotencyKey: input.idempotencyKey,
      amountMinor: input.amountMinor,
      currency: input.currency,
      offlineMode: 'prefer_online',
    });
    store.recordCardRead(payment.id, input.card, { sealed: input.sealed });
    store.recordStep(payment.id, 'authorization_requested');
    store.recordOnlineOutcome(payment.id, { outcome: 'approved', authCode: 'A1B2C3' });
    store.maintenance();
  };
  const measured = mode === 'online' ? online : offline;
  try {
    for (let b = 0; b < backlog; b++) offline();
    for (let w = 0; w < 200; w++) measured();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let k = 0; k < n; k++) measured();
    const wallUs = ((performance.now() - t0) * 1000) / n;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = (cpu.user + cpu.system) / n;

    const bareCpu0 = process.cpuUsage();
    const b0 = performance.now();
    for (let k = 0; k < n; k++) insert.run(uuidv7(), blob);
    const bareWallUs = ((performance.now() - b0) * 1000) / n;
    const bareCpuD = process.cpuUsage(bareCpu0);
    const bareCpuUs = (bareCpuD.user + bareCpuD.system) / n;

    const side = new Database(dbPath);
    const bareSide = new Database(barePath);
    const samples = 20;
    let frames = 0;
    let bareFrames = 0;
    for (let k = 0; k < samples; k++) {
      frames += walFrames(`${dbPath}-wal`, side, measured);
      bareFrames += walFrames(`${barePath}-wal`, bareSide, () => insert.run(uuidv7(), blob));
    }
    side.close();
    bareSide.close();
    const pageSize = bare.pragma('page_size', { simple: true }) as number;
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
      }),
    );
  } finally {
    store.close();
    bare.close();
  }
}

main();
