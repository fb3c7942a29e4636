/**
 * DESIGN §9 target 1 — durable enqueue of a payment: `PaymentStore.createPayment` (payments row +
 * hash-chained event + outbox row + sealed card row, one synchronous=FULL transaction) against a
 * bare better-sqlite3 single-row insert with `journal_mode=WAL` and `synchronous=FULL`, both
 * files in the same directory (same disk). The two are interleaved one call at a time, and the
 * order within a pair alternates, so drift of the disk or the machine hits both alike.
 *
 * bench/ is a measurement tool outside the product layers (DESIGN §1); it imports
 * `better-sqlite3` directly for the baseline.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { PaymentStore } from '../store-forward/payment-store.js';
import { type BenchKeys, makeCardTokens, newPayment } from './fixtures.js';
import { type Summary, summarize } from './stats.js';

/** Result of the enqueue benchmark, durations in milliseconds. */
export interface EnqueueResult {
  dir: string;
  iterations: number;
  warmup: number;
  createPayment: Summary;
  bareInsert: Summary;
  /** Bytes of the baseline row's blob. */
  bareRowBytes: number;
}

/**
 * Runs `warmup` unmeasured then `iterations` measured pairs in `dir`.
 *
 * @throws Error when the baseline pragmas do not read back as set (the comparison would lie).
 */
export function benchEnqueue(options: {
  dir: string;
  iterations: number;
  warmup: number;
  keys: BenchKeys;
}): EnqueueResult {
  const { dir, iterations, warmup } = options;
  const tokens = makeCardTokens(options.keys, 16);
  const store = PaymentStore.open({ path: path.join(dir, 'agent.db') });
  const bare = new Database(path.join(dir, 'bare.db'));
  const bareRowBytes = 256;
  try {
    bare.pragma('journal_mode = WAL');
    bare.pragma('synchronous = FULL');
    const journal = bare.pragma('journal_mode', { simple: true });
    const sync = bare.pragma('synchronous', { simple: true });
    if (journal !== 'wal' || sync !== 2)
      throw new Error(`baseline pragmas did not take: journal_mode=${journal} synchronous=${sync}`);
    bare.exec(
      'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BLOB NOT NULL) STRICT',
    );
    const insert = bare.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    const blob = randomBytes(bareRowBytes);

    const created: number[] = [];
    const inserted: number[] = [];
    let i = 0;
    const enqueue = (): number => {
      const payment = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
      const t0 = performance.now();
      store.createPayment(payment);
      return performance.now() - t0;
    };
    const bareInsert = (): number => {
      const key = uuidv7();
      const t0 = performance.now();
      insert.run(key, blob);
      return performance.now() - t0;
    };
    for (; i < warmup + iterations; i++) {
      const measured = i >= warmup;
      let a: number;
      let b: number;
      if (i % 2 === 0) {
        a = enqueue();
        b = bareInsert();
      } else {
        b = bareInsert();
        a = enqueue();
      }
      if (measured) {
        created.push(a);
        inserted.push(b);
      }
    }
    return {
      dir,
      iterations,
      warmup,
      createPayment: summarize(created),
      bareInsert: summarize(inserted),
      bareRowBytes,
    };
  } finally {
    store.close();
    bare.close();
  }
}
