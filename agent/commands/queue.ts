/**
 * `pos-agent queue --config FILE [--retry] [--watch]`: the outbox for a field tech (DESIGN §4;
 * issue 3 §6) — depth, oldest age, offline exposure per currency, the dead records with their
 * reasons; `--retry` puts every dead record back to pending (a `requeued` event each);
 * `--watch` prints progress until the backlog has drained. Opens the SQLite file, so it works on
 * the data directory of a stopped or a running agent (which then sends the requeued records).
 */
import path from 'node:path';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { loadConfig } from '../config.js';

/**
 * Prints the queue report; with `retry` requeues the dead records first.
 *
 * @param options.now — epoch ms for ages (injected for tests).
 * @param options.watchIntervalMs — pause between progress lines with `watch`, ms.
 * @returns the exit code: 0, or 1 when dead records remain.
 * @throws AgentError POS501 bad config; POS2xx when the database cannot be opened.
 */
export async function runQueue(options: {
  config: string;
  retry: boolean;
  watch: boolean;
  out: NodeJS.WritableStream;
  now?: () => number;
  watchIntervalMs?: number;
}): Promise<number> {
  const config = loadConfig(options.config);
  const now = options.now ?? Date.now;
  const line = (text: string): void => void options.out.write(`${text}\n`);
  const store = PaymentStore.open({ path: path.join(config.dataDir, 'agent.db') });
  try {
    if (options.retry) line(`requeued ${store.retryDead()} dead records`);
    const stats = store.queueStats();
    const age =
      stats.oldestAt === null
        ? '-'
        : `${Math.round((now() - Date.parse(stats.oldestAt)) / 1000)} s`;
    line(
      `queue: ${stats.depth} to send (${stats.pending} pending, ${stats.inFlight} in flight), ${stats.acked} acknowledged, ${stats.dead} dead; oldest ${age}`,
    );
    const exposure = store.offlineExposure();
    const perCurrency = Object.entries(exposure.byCurrency)
      .map(([currency, e]) => `${currency} ${e.amountMinor} minor units in ${e.count}`)
      .join(', ');
    line(
      `offline exposure: ${exposure.count === 0 ? 'none' : perCurrency}${exposure.earliestDeadlineAt === null ? '' : `; earliest forwarding deadline ${exposure.earliestDeadlineAt}`}`,
    );
    for (const dead of store.deadRecords()) {
      line(
        `  dead #${dead.seq} ${dead.type} key ${dead.key} payment ${dead.paymentId} after ${dead.attempts} attempts: ${dead.reason}`,
      );
    }
    if (options.watch) {
      let last = stats.depth;
      while (last > 0) {
        await new Promise((resolve) => setTimeout(resolve, options.watchIntervalMs ?? 1000));
        const current = store.queueStats();
        line(`  draining: ${current.depth} left, ${current.acked} acknowledged`);
        last = current.depth;
      }
    }
    return store.queueStats().dead > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}
