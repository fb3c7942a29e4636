/**
 * Per-record cost of the agent's own drain work, without the broker or the cloud: read pending
 * records (`nextPending`), pack and sign a batch (`packBatch`), apply the cloud's acks as a set
 * (`applyAcks`), on a seeded database on a RAM disk when there is one. Prints µs of CPU per
 * record for each part (process.cpuUsage, so a busy shared machine skews it less than wall
 * time; for stable figures run it under `valgrind --tool=callgrind` and compare instruction
 * counts). A tool for decisions about store-forward/ and cloud-sync/ code, not a bench target.
 *
 * Usage: `node dist/bench/drain-micro.js [records=20000] [batch=180]`; `DRAIN_WARMUP=N` records
 * (default 2000) are drained first without being counted.
 */
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { packBatch } from '../cloud-sync/pack.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import {
  makeCardTokens,
  makeKeys,
  removeDir,
  seedStore,
  tempDir,
  templateDir,
} from './fixtures.js';

const records = Number(process.argv[2] ?? 20_000);
const batch = Number(process.argv[3] ?? 180);
const keys = makeKeys();
// The run's directory, inside a template directory (RAM disk when there is one) whose fallback is
// on the disk: all three are removed at the end (they were left behind, empty, after every run).
const fallback = tempDir('drain-micro-fallback');
const parent = templateDir(fallback);
const dir = tempDir('drain-micro', parent);
// DRAIN_TEMPLATE=FILE keeps the seeded database there and reuses it, so a run under
// `valgrind --tool=callgrind` counts the drain and not the seeding (compare against a run with
// DRAIN_LIMIT=0 for node's own start-up).
const kept = process.env.DRAIN_TEMPLATE;
const template = kept ?? path.join(dir, 'template.db');
if (!existsSync(template)) seedStore(template, records, makeCardTokens(keys, 16));
const drainLimit = Number(process.env.DRAIN_LIMIT ?? Number.POSITIVE_INFINITY);
const dbPath = path.join(dir, 'agent.db');
copyFileSync(template, dbPath);
const store = PaymentStore.open({ path: dbPath });
const cpu = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
// DRAIN_WARMUP=N: the first N records (default 2000) are drained but not counted, so the figures
// are the JIT-compiled code's and not the interpreter's (they moved by ~10 % between two runs).
const warmup = Number(process.env.DRAIN_WARMUP ?? 2000);
let readUs = 0;
let packUs = 0;
let ackUs = 0;
let done = 0;
let measured = 0;
let cursor = 0;
try {
  while (done < drainLimit) {
    if (done < warmup) {
      readUs = 0;
      packUs = 0;
      ackUs = 0;
      measured = 0;
    }
    let t = cpu();
    const pending = store.outbox.nextPending(batch, cursor);
    readUs += cpu() - t;
    if (pending.length === 0) break;
    t = cpu();
    const packed = packBatch(pending, {
      batchId: `b-${done}`,
      signer: { secretKey: keys.device.secretKey },
      maxMessageBytes: 1 << 24,
      trusted: true,
    });
    packUs += cpu() - t;
    cursor = Math.max(...packed.records.map((r) => r.seq));
    t = cpu();
    store.outbox.applyAcks(
      packed.records.map((r) => ({
        key: r.key,
        status: 'accepted' as const,
        outcome: 'approved' as const,
        authCode: 'A1B2C3',
      })),
      [`b-${done}`],
    );
    ackUs += cpu() - t;
    done += packed.records.length;
    measured += packed.records.length;
  }
} finally {
  store.close();
  removeDir(dir);
  removeDir(parent);
  removeDir(fallback);
}
const per = (us: number): string => (us / Math.max(1, measured)).toFixed(1);
console.log(
  `${measured} records counted (of ${done}), batches of ${batch}: µs CPU per record — ` +
    `nextPending ${per(readUs)}, ` +
    `packBatch ${per(packUs)}, applyAcks ${per(ackUs)}, total ${per(readUs + packUs + ackUs)}`,
);
