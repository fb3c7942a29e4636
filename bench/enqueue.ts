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
import path from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import type { NewPayment } from '../store-forward/model.js';
import type { OfflinePolicy } from '../store-forward/offline-policy.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import {
  BARE_ROW_BYTES,
  type BareBaseline,
  type BenchKeys,
  makeCardTokens,
  newPayment,
  openBareBaseline,
} from './fixtures.js';
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
 * One payment through the PaymentService's store calls, as the agent makes them: start, card
 * read, then stored offline (`force_offline`: one FULL commit) or authorization requested and
 * approved (`prefer_online`: two). `betweenCommits` runs between the online payment's two
 * commits (bench/wal-pages.ts reads the first one's pages there).
 *
 * @returns the payment's id.
 * @throws AgentError from the store (a bug: every call here is valid).
 */
export function payThroughStore(
  store: PaymentStore,
  input: NewPayment,
  mode: 'force_offline' | 'prefer_online',
  options: { keyPrefix?: string; betweenCommits?: () => void } = {},
): string {
  const { payment } = store.startPayment({
    idempotencyKey: `${options.keyPrefix ?? ''}${input.idempotencyKey}`,
    amountMinor: input.amountMinor,
    currency: input.currency,
    offlineMode: mode,
  });
  store.recordCardRead(payment.id, input.card, { sealed: input.sealed });
  if (mode === 'force_offline') {
    store.storeOffline(payment.id, POLICY, { ambiguous: false });
  } else {
    store.recordStep(payment.id, 'authorization_requested');
    options.betweenCommits?.();
    store.recordOnlineOutcome(payment.id, { outcome: 'approved', authCode: 'A1B2C3' });
  }
  return payment.id;
}

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
  let bare: BareBaseline | undefined;
  try {
    bare = openBareBaseline(path.join(dir, 'bare.db'));
    const baseline = bare;

    const offline: number[] = [];
    const online: number[] = [];
    const inserted: number[] = [];
    let i = 0;
    const timed = (fn: () => void): number => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    // Timed from the payment's input on (newPayment included), as the bare row's key is not.
    const payment = (mode: 'force_offline' | 'prefer_online') => (): number =>
      timed(() => {
        const input = newPayment(i, tokens[i % tokens.length] as (typeof tokens)[number]);
        payThroughStore(store, input, mode, { keyPrefix: `${mode}-` });
      });
    const offlinePayment = payment('force_offline');
    const onlinePayment = payment('prefer_online');
    const bareInsert = (): number => {
      const key = uuidv7();
      return timed(() => baseline.insert(key));
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
      bareRowBytes: BARE_ROW_BYTES,
    };
  } finally {
    store.close();
    bare?.close();
  }
}
