/**
 * `pos-agent verify --config FILE`: rebuilds the payments projection from the events and checks
 * the event hash chain (DESIGN §4; issue 3 §1). The agent runs the same checks at start-up.
 * Works on the data directory of a stopped or running agent (it opens the SQLite file; WAL mode
 * lets it read beside a running agent).
 *
 * Exit code: 0 when both agree, 1 when a difference or a broken link was found (each is listed).
 */
import path from 'node:path';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { loadConfig } from '../config.js';

/**
 * Runs the check and prints the report.
 *
 * @returns the process exit code.
 * @throws AgentError POS501 bad config; POS2xx when the database cannot be opened.
 */
export function runVerify(configFile: string, out: NodeJS.WritableStream): number {
  const config = loadConfig(configFile);
  const store = PaymentStore.open({ path: path.join(config.dataDir, 'agent.db') });
  try {
    const chain = store.verifyChain();
    const projection = store.checkProjection();
    const line = (text: string): void => void out.write(`${text}\n`);
    line(
      chain.ok
        ? `hash chain: ok, ${chain.events} events verified`
        : `hash chain: BROKEN\n${chain.problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    line(
      projection.ok
        ? `projection: ok, ${projection.payments} payments equal the fold of their events`
        : `projection: DIFFERS\n${projection.problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    return chain.ok && projection.ok ? 0 : 1;
  } finally {
    store.close();
  }
}
