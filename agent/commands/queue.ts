/**
 * `pos-agent queue [--config FILE] [--retry] [--watch] [--json]`: the outbox for a field tech
 * (architecture.md §4; issues 3 §6, 12) — depth, oldest age, offline exposure per currency, the dead
 * records with their reasons; `--retry` puts every dead record back to pending (a `requeued`
 * event each); `--watch` shows a progress bar with the drain rate and the time left until the
 * backlog has drained (plain progress lines when the output is not a terminal).
 *
 * Without `--retry` the database is opened read-only and never created (issue 12): on a terminal
 * without one the command fails with POS201. It works beside a running agent (WAL), which then
 * sends the requeued records.
 *
 * `--json` prints one object, version 1 of a stable shape ({@link QueueReport}):
 *
 * ```json
 * { "version": 1, "config": "/etc/pos-agent/config.json", "requeued": 0,
 *   "queue": { "depth": 2, "pending": 2, "inFlight": 0, "acked": 40, "dead": 1,
 *              "oldestAt": "2026-11-21T09:00:00.000Z", "oldestAgeSeconds": 3600 },
 *   "offlineExposure": { "count": 2, "byCurrency": { "EUR": { "amountMinor": 2500, "count": 2 } },
 *                        "earliestDeadlineAt": "2026-11-24T09:00:00.000Z" },
 *   "dead": [ { "seq": 7, "type": "payment", "key": "…", "paymentId": "…", "attempts": 3,
 *               "reason": "…", "updatedAt": "…" } ] }
 * ```
 *
 * With `--watch --json`, the report is followed by one JSON line per progress step:
 * `{ "progress": { "depth": 12, "acked": 88, "ratePerSecond": 40.5, "secondsLeft": 0.3 } }`
 * (`ratePerSecond` and `secondsLeft` are null until a record has drained).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { AgentError } from '../../common/agent-error.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { loadConfig } from '../config.js';

/** What `pos-agent queue --json` prints (version 1; fields are only ever added). */
export interface QueueReport {
  version: 1;
  /** The config file used. */
  config: string;
  /** Dead records put back to pending by `--retry` (0 without it). */
  requeued: number;
  queue: {
    /** Records still to deliver: pending + in flight. */
    depth: number;
    pending: number;
    inFlight: number;
    acked: number;
    dead: number;
    /** ISO 8601 UTC of the oldest record still to deliver, or null. */
    oldestAt: string | null;
    /** Its age in whole seconds, or null. */
    oldestAgeSeconds: number | null;
  };
  /** Payments approved offline and not yet acknowledged; amounts in integer minor units. */
  offlineExposure: {
    count: number;
    byCurrency: Record<string, { amountMinor: number; count: number }>;
    earliestDeadlineAt: string | null;
  };
  /** The dead records, in `seq` order, with the cloud's reason. */
  dead: Array<{
    seq: number;
    type: 'payment' | 'void';
    key: string;
    paymentId: string;
    attempts: number;
    reason: string;
    updatedAt: string;
  }>;
}

/** One progress step of `--watch`. */
export interface DrainProgress {
  /** Records still to deliver. */
  depth: number;
  /** Records acknowledged so far (all time). */
  acked: number;
  /** Records drained per second since the watch began; null before the first one drained. */
  ratePerSecond: number | null;
  /** Seconds until the backlog is drained at that rate; null while the rate is unknown. */
  secondsLeft: number | null;
}

/**
 * The drain rate and the time left, from the depth at the start and now.
 *
 * @param startDepth — records to deliver when the watch began.
 * @param depth — records to deliver now.
 * @param elapsedMs — ms since the watch began.
 */
export function drainProgress(
  startDepth: number,
  depth: number,
  acked: number,
  elapsedMs: number,
): DrainProgress {
  const drained = startDepth - depth;
  if (drained <= 0 || elapsedMs <= 0)
    return { depth, acked, ratePerSecond: null, secondsLeft: null };
  const ratePerSecond = drained / (elapsedMs / 1000);
  return {
    depth,
    acked,
    ratePerSecond: Math.round(ratePerSecond * 10) / 10,
    secondsLeft: Math.round((depth / ratePerSecond) * 10) / 10,
  };
}

/** `12 s`, `3 min 20 s`, `1 h 05 min`; `unknown` for null. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return 'unknown';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * Prints the queue report; with `retry` requeues the dead records first.
 *
 * @param options.config — the config file (resolved by agent/config-path.ts).
 * @param options.json — print the {@link QueueReport} (and progress lines) as JSON.
 * @param options.now — epoch ms for ages and rates (injected for tests).
 * @param options.sleep — the pause between progress steps (default a real timer); tests inject one.
 * @param options.watchIntervalMs — pause between progress steps with `watch`, ms. Default 1000.
 * @returns the exit code: 0, or 1 when dead records remain.
 * @throws AgentError POS501 bad config; POS201 no database at the configured dataDir (nothing is
 *   created); POS203/POS204/POS208 from the read-only open.
 */
export async function runQueue(options: {
  config: string;
  retry: boolean;
  watch: boolean;
  json?: boolean;
  out: NodeJS.WritableStream & { isTTY?: boolean };
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  watchIntervalMs?: number;
}): Promise<number> {
  const config = loadConfig(options.config);
  const now = options.now ?? Date.now;
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const line = (text: string): void => void options.out.write(`${text}\n`);
  const file = path.join(config.dataDir, 'agent.db');
  if (options.retry && !existsSync(file))
    throw new AgentError(
      'POS201',
      `there is no payment database at ${file}; nothing was created and nothing to retry; fix: check dataDir in ${options.config}`,
    );
  const store = PaymentStore.open({ path: file, readonly: !options.retry });
  try {
    const requeued = options.retry ? store.retryDead() : 0;
    const stats = store.queueStats();
    const exposure = store.offlineExposure();
    const report: QueueReport = {
      version: 1,
      config: options.config,
      requeued,
      queue: {
        ...stats,
        oldestAgeSeconds:
          stats.oldestAt === null ? null : Math.round((now() - Date.parse(stats.oldestAt)) / 1000),
      },
      offlineExposure: exposure,
      dead: store.deadRecords().map((d) => ({
        seq: d.seq,
        type: d.type,
        key: d.key,
        paymentId: d.paymentId,
        attempts: d.attempts,
        reason: d.reason,
        updatedAt: d.updatedAt,
      })),
    };
    if (options.json === true) line(JSON.stringify(report));
    else printReport(report, line, options.retry);
    if (options.watch) await watch(store, options, now, sleep, line);
    return store.queueStats().dead > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}

function printReport(report: QueueReport, line: (text: string) => void, retry: boolean): void {
  const q = report.queue;
  if (retry) line(`requeued ${report.requeued} dead records`);
  line(
    `queue: ${q.depth} to send (${q.pending} pending, ${q.inFlight} in flight), ${q.acked} acknowledged, ${q.dead} dead; oldest ${q.oldestAgeSeconds === null ? '-' : `${q.oldestAgeSeconds} s`}`,
  );
  const e = report.offlineExposure;
  const perCurrency = Object.entries(e.byCurrency)
    .map(([currency, x]) => `${currency} ${x.amountMinor} minor units in ${x.count}`)
    .join(', ');
  line(
    `offline exposure: ${e.count === 0 ? 'none' : perCurrency}${e.earliestDeadlineAt === null ? '' : `; earliest forwarding deadline ${e.earliestDeadlineAt}`}`,
  );
  for (const dead of report.dead)
    line(
      `  dead #${dead.seq} ${dead.type} key ${dead.key} payment ${dead.paymentId} after ${dead.attempts} attempts: ${dead.reason}`,
    );
}

async function watch(
  store: PaymentStore,
  options: {
    json?: boolean;
    out: NodeJS.WritableStream & { isTTY?: boolean };
    watchIntervalMs?: number;
  },
  now: () => number,
  sleep: (ms: number) => Promise<void>,
  line: (text: string) => void,
): Promise<void> {
  const first = store.queueStats();
  const startDepth = first.depth;
  const startedAt = now();
  if (startDepth === 0) {
    if (options.json !== true) line('nothing to drain');
    return;
  }
  const bar =
    options.json !== true && options.out.isTTY === true
      ? new SingleBar({
          stream: options.out as NodeJS.WritableStream as NodeJS.WriteStream,
          format: 'draining [{bar}] {value}/{total} sent | {rate}/s | {left} left',
          hideCursor: true,
          etaBuffer: 1,
        })
      : undefined;
  bar?.start(startDepth, 0, { rate: '-', left: 'unknown' });
  let depth = startDepth;
  try {
    while (depth > 0) {
      await sleep(options.watchIntervalMs ?? 1000);
      const current = store.queueStats();
      depth = current.depth;
      const p = drainProgress(startDepth, depth, current.acked, now() - startedAt);
      if (options.json === true) line(JSON.stringify({ progress: p }));
      else if (bar !== undefined)
        bar.update(Math.max(0, startDepth - depth), {
          rate: p.ratePerSecond ?? '-',
          left: formatDuration(p.secondsLeft),
        });
      else
        line(
          `  draining: ${depth} left, ${current.acked} acknowledged, ${p.ratePerSecond === null ? '-' : p.ratePerSecond}/s, ${formatDuration(p.secondsLeft)} left`,
        );
    }
  } finally {
    bar?.stop();
  }
  if (options.json !== true) line('drained');
}
