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
 * A fourth step, shown but not judged, is the disk's floor under the offline commit: the same bare
 * insert with a blob that spills into overflow pages, so that its commit writes as many WAL
 * frames as the offline payment's commit does (counted from the WAL at the end of the warm-up and
 * every {@link FRAMES_EVERY} rounds, as the tables deepen; bench/commit-floor.ts). Its file is
 * checkpointed and its WAL restarted untimed, as the store's maintenance does. The offline
 * payment's p99 over this floor's p99 is the store's own share (CPU, locks, the chain), apart from
 * the I/O every commit of that many pages pays.
 *
 * bench/ is a measurement tool outside the product layers (architecture.md §1); it imports
 * `better-sqlite3` directly for the baseline.
 */
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { v7 as uuidv7 } from 'uuid';
import type { NewPayment } from '../store-forward/model.js';
import type { OfflinePolicy } from '../store-forward/offline-policy.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { WAL_CHECKPOINT_WRITES, restartWalOf } from '../store-forward/kernel.js';
import {
  BARE_ROW_BYTES,
  type BareBaseline,
  type BenchKeys,
  makeCardTokens,
  newPayment,
  blobForFrames,
  commitFrameCounts,
  openBareBaseline,
} from './fixtures.js';
import { countOverlapping, median, type Span, type Summary, summarize } from './stats.js';

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
  /**
   * The bare insert made as large as the offline payment's commit: as many WAL frames (not
   * judged; see the file comment).
   */
  sameFrames: Summary;
  /**
   * WAL frames per commit, each time they were counted (end of warm-up, then every
   * {@link FRAMES_EVERY} rounds): the offline payment's commit, the bare insert's, and the
   * same-frames insert's after its blob was sized.
   */
  frames: { offline: number; bare: number; sameFrames: number }[];
  /** The garbage collector's pauses during the measured rounds ({@link benchEnqueueObserved}). */
  gc?: GcPauses;
}

/**
 * The garbage collector's pauses (`PerformanceObserver` entries of type `gc`) while the measured
 * rounds ran, and how many timed samples of each kind one of them fell into. A payment's store
 * work allocates (~30 KiB), so one payment in a few hundred meets a young-generation pause of
 * 1-2 ms: near the p99 the targets judge (issue 9), which is why the bench shows them. (Before
 * the hash chain stopped making a Hash object per event, they were ~4 ms.)
 */
export interface GcPauses {
  count: number;
  /** Pause durations in ms. */
  pauseP50: number;
  pauseMax: number;
  /** Timed samples a pause overlapped, per kind, of `iterations` each. */
  during: { offline: number; online: number; bareInsert: number; sameFrames: number };
}

/** Start and end (performance.now()) of each measured sample, per kind. */
interface Windows {
  offline: Span[];
  online: Span[];
  bareInsert: Span[];
  sameFrames: Span[];
}

/** Measured rounds between two countings of the offline commit's WAL frames. */
export const FRAMES_EVERY = 500;

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
  /** Filled with each measured sample's span, when given. */
  windows?: Windows;
}): EnqueueResult {
  const { dir, iterations, warmup } = options;
  const tokens = makeCardTokens(options.keys, 16);
  const storePath = path.join(dir, 'agent.db');
  const store = PaymentStore.open({ path: storePath });
  let bare: BareBaseline | undefined;
  let floor: BareBaseline | undefined;
  try {
    bare = openBareBaseline(path.join(dir, 'bare.db'));
    const baseline = bare;
    const floorPath = path.join(dir, 'same-frames.db');
    floor = openBareBaseline(floorPath);
    const sameFramesDb = floor;
    let floorBlob: Buffer | undefined;
    let floorCommits = 0;
    let counted = 0;
    const frames: EnqueueResult['frames'] = [];
    // Sizes the same-frames blob to the offline commit as the store now writes it (untimed).
    const countFrames = (): void => {
      const payOffline = (): void => {
        counted += 1;
        const input = newPayment(
          counted,
          tokens[counted % tokens.length] as (typeof tokens)[number],
        );
        payThroughStore(store, input, 'force_offline', { keyPrefix: 'frames-' });
      };
      const offlineFrames = median(commitFrameCounts(storePath, payOffline, 5));
      const sized = blobForFrames(sameFramesDb, floorPath, offlineFrames);
      floorBlob = sized.blob;
      frames.push({ offline: offlineFrames, bare: sized.rowFrames, sameFrames: sized.frames });
    };

    const offline: number[] = [];
    const online: number[] = [];
    const inserted: number[] = [];
    const sameFrames: number[] = [];
    let i = 0;
    const spans: Windows = options.windows ?? {
      offline: [],
      online: [],
      bareInsert: [],
      sameFrames: [],
    };
    let last: Span = { start: 0, end: 0 };
    const timed = (fn: () => void): number => {
      const t0 = performance.now();
      fn();
      const t1 = performance.now();
      last = { start: t0, end: t1 };
      return t1 - t0;
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
      (): void => {
        offline.push(offlinePayment());
        if (i >= warmup) spans.offline.push(last);
      },
      (): void => {
        online.push(onlinePayment());
        if (i >= warmup) spans.online.push(last);
      },
      (): void => {
        inserted.push(bareInsert());
        if (i >= warmup) spans.bareInsert.push(last);
      },
      (): void => {
        sameFrames.push(timed(() => sameFramesDb.insert(undefined, floorBlob)));
        if (i >= warmup) spans.sameFrames.push(last);
      },
    ];
    for (; i < warmup + iterations; i++) {
      if (i >= warmup && (i - warmup) % FRAMES_EVERY === 0) countFrames();
      for (let k = 0; k < steps.length; k++) (steps[(i + k) % steps.length] as () => void)();
      // The agent's maintenance timer (agent/start-steps.ts, every second) between payments,
      // untimed like the event loop's turn it runs in: it checkpoints the WAL once enough commits
      // piled up, so no payment's commit does (StoreKernel.checkpointIfDue), and then starts the
      // WAL over itself, so no payment's commit syncs a new WAL header (StoreKernel.restartWal).
      store.maintenance();
      // The same-frames file gets the same maintenance: a checkpoint every WAL_CHECKPOINT_WRITES
      // commits, then the WAL restarted by a write of its own, so no timed commit does either.
      floorCommits += 1;
      if (floorCommits % WAL_CHECKPOINT_WRITES === 0) {
        sameFramesDb.db.pragma('wal_checkpoint(PASSIVE)');
        restartWalOf(sameFramesDb.db);
      }
      if (i < warmup) {
        offline.pop();
        online.pop();
        inserted.pop();
        sameFrames.pop();
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
      sameFrames: summarize(sameFrames),
      frames,
    };
  } finally {
    store.close();
    bare?.close();
    floor?.close();
  }
}

/**
 * {@link benchEnqueue} with the garbage collector watched: its pauses while the rounds ran and the
 * timed samples they overlapped (`gc` of the result). The observer's entries arrive after the
 * synchronous rounds, on the next turns of the event loop.
 *
 * @throws as {@link benchEnqueue}.
 */
export async function benchEnqueueObserved(
  options: Omit<Parameters<typeof benchEnqueue>[0], 'windows'>,
): Promise<EnqueueResult> {
  const pauses: Span[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      pauses.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const windows: Windows = { offline: [], online: [], bareInsert: [], sameFrames: [] };
  try {
    const result = benchEnqueue({ ...options, windows });
    await nextTurn();
    await nextTurn();
    const from = Math.min(
      ...[windows.offline, windows.online, windows.bareInsert, windows.sameFrames].map(
        (w) => w[0]?.start ?? Infinity,
      ),
    );
    const measured = pauses.filter((p) => p.end > from);
    const durations = measured.map((p) => p.end - p.start);
    return {
      ...result,
      gc: {
        count: measured.length,
        pauseP50: durations.length === 0 ? 0 : summarize(durations).p50,
        pauseMax: durations.length === 0 ? 0 : Math.max(...durations),
        during: {
          offline: countOverlapping(windows.offline, measured),
          online: countOverlapping(windows.online, measured),
          bareInsert: countOverlapping(windows.bareInsert, measured),
          sameFrames: countOverlapping(windows.sameFrames, measured),
        },
      },
    };
  } finally {
    observer.disconnect();
  }
}
