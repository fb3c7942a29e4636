/**
 * architecture.md §9 target 1 — a real payment's store work: the exact store calls the agent's
 * `PaymentService` makes for one payment, timed as one unit, against a bare better-sqlite3
 * single-row insert with `journal_mode=WAL` and `synchronous=FULL`, both files in the same
 * directory (same disk):
 *
 * - offline (force_offline): `startPayment` → `recordCardRead` (token + sealed card; both a draft
 *   in memory) → `storeOffline`: ONE FULL commit (policy decided in the transaction; payment,
 *   card token, its events, approval, outbox row, sealed data);
 * - online: `startPayment` → `recordCardRead` → `recordStep(authorization_requested)` (FULL
 *   commit: durable before the request leaves) → `recordOnlineOutcome(approved)` (FULL commit).
 *
 * The three are interleaved one unit at a time and the order rotates, so drift of the disk or the
 * machine hits all alike. Between rounds, untimed, the store's maintenance runs as the agent's
 * timer runs it between requests (it moves the WAL into the database file off the payment path;
 * the bare connection keeps SQLite's auto-checkpoint, which its 2-page commits reach every ~400
 * rows). Targets (issue 9): offline p99 ≤ 1.5×, online p99 ≤ 2.5× the bare
 * commit's p99.
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1); it imports
 * `better-sqlite3` directly for the baseline.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import type { OfflinePolicy } from '../store-forward/offline-policy.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { type BenchKeys, makeCardTokens, newPayment } from './fixtures.js';
import { type Summary, summarize } from './stats.js';

/** Result of the enqueue benchmark, durations in milliseconds. */
export interface EnqueueResult {
  dir: string;
  iterations: number;
  warmup: number;
  /** A real offline payment's store work (3 calls, one commit, issue 9 §2). */
  offline: Summary;
  /** A real online payment's store work (4 calls, two commits). */
  online: Summary;
  bareInsert: Summary;
  /** Bytes of the baseline row's blob. */
  bareRowBytes: number;
}

/** Caps no bench payment reaches: the policy is decided, never refused. */
export const POLICY: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 1_000_000_000 },
  totalLimitMinor: { EUR: Number.MAX_SAFE_INTEGER },
  maxCount: 1_000_000_000,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

/**
 * Runs `warmup + iterations` rounds of (offline payment, online payment, bare insert) in rotating
 * order and summarizes the measured rounds.
 *
 * @throws AgentError from the store (a bug: every call here is valid); Error when the baseline's
 *   pragmas do not take.
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

    const offline: number[] = [];
    const online: number[] = [];
    const inserted: number[] = [];
    let i = 0;
    const begin = (mode: 'force_offline' | 'prefer_online') => {
      const input = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
      const { payment } = store.startPayment({
        idempotencyKey: `${mode}-${input.idempotencyKey}`,
        amountMinor: input.amountMinor,
        currency: input.currency,
        offlineMode: mode,
      });
      store.recordCardRead(payment.id, input.card, { sealed: input.sealed });
      return payment.id;
    };
    const offlinePayment = (): number => {
      const t0 = performance.now();
      const id = begin('force_offline');
      store.storeOffline(id, POLICY, { ambiguous: false });
      return performance.now() - t0;
    };
    const onlinePayment = (): number => {
      const t0 = performance.now();
      const id = begin('prefer_online');
      store.recordStep(id, 'authorization_requested');
      store.recordOnlineOutcome(id, { outcome: 'approved', authCode: 'A1B2C3' });
      return performance.now() - t0;
    };
    const bareInsert = (): number => {
      const key = uuidv7();
      const t0 = performance.now();
      insert.run(key, blob);
      return performance.now() - t0;
    };
    const steps = [
      (): void => void offline.push(offlinePayment()),
      (): void => void online.push(onlinePayment()),
      (): void => void inserted.push(bareInsert()),
    ];
    for (; i < warmup + iterations; i++) {
      for (let k = 0; k < steps.length; k++) (steps[(i + k) % steps.length] as () => void)();
      // The agent's maintenance timer (agent/start-steps.ts, every second) between payments,
      // untimed like the event loop's turn it runs in: it checkpoints the WAL once enough commits
      // piled up, so no payment's commit does (StoreKernel.checkpointIfDue), and then starts the
      // WAL over itself, so no payment's commit syncs a new WAL header (StoreKernel.restartWal).
      store.maintenance();
      if (i < warmup) {
        offline.pop();
        online.pop();
        inserted.pop();
      }
    }
    return {
      dir,
      iterations,
      warmup,
      offline: summarize(offline),
      online: summarize(online),
      bareInsert: summarize(inserted),
      bareRowBytes,
    };
  } finally {
    store.close();
    bare.close();
  }
}
