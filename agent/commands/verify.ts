/**
 * `pos-agent verify [--config FILE] [--json]`: rebuilds the payments projection from the events
 * and checks the event hash chain (architecture.md §4; issue 3 §1). The agent runs the same checks at
 * start-up. Read-only (issue 12): the database is opened read-only and never created, so it
 * works beside a running agent (WAL) and fails with POS201 on a terminal that has none.
 *
 * Exit code: 0 when both agree, 1 when a difference or a broken link was found (each is listed).
 *
 * `--json` prints one object, version 1 of a stable shape ({@link VerifyReport}):
 *
 * ```json
 * { "version": 1, "config": "/etc/pos-agent/config.json", "ok": true,
 *   "chain": { "ok": true, "events": 120, "problems": [] },
 *   "projection": { "ok": true, "payments": 40, "problems": [] } }
 * ```
 */
import path from 'node:path';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { loadConfig } from '../config.js';

/** What `pos-agent verify --json` prints (version 1; fields are only ever added). */
export interface VerifyReport {
  version: 1;
  /** The config file used. */
  config: string;
  /** True when the chain verifies and the projection equals the fold of the events. */
  ok: boolean;
  /** The hash chain: events verified, or the problems found (each ends with `(POS220)`). */
  chain: { ok: boolean; events: number | null; problems: string[] };
  /** The projection: payments compared, or the differences (each ends with `(POS221)`). */
  projection: { ok: boolean; payments: number | null; problems: string[] };
}

/**
 * Runs the check and prints the report.
 *
 * @param options.json — print the {@link VerifyReport} as JSON instead of text.
 * @returns the process exit code.
 * @throws AgentError POS501 bad config; POS201 no database (nothing is created);
 *   POS203/POS204/POS208 from the read-only open.
 */
export function runVerify(
  configFile: string,
  out: NodeJS.WritableStream,
  options: { json?: boolean } = {},
): number {
  const config = loadConfig(configFile);
  const store = PaymentStore.open({ path: path.join(config.dataDir, 'agent.db'), readonly: true });
  try {
    const chain = store.verifyChain();
    const projection = store.checkProjection();
    const report: VerifyReport = {
      version: 1,
      config: configFile,
      ok: chain.ok && projection.ok,
      chain: chain.ok
        ? { ok: true, events: chain.events, problems: [] }
        : { ok: false, events: null, problems: chain.problems },
      projection: projection.ok
        ? { ok: true, payments: projection.payments, problems: [] }
        : { ok: false, payments: null, problems: projection.problems },
    };
    const line = (text: string): void => void out.write(`${text}\n`);
    if (options.json === true) {
      line(JSON.stringify(report, null, 2));
      return report.ok ? 0 : 1;
    }
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
    return report.ok ? 0 : 1;
  } finally {
    store.close();
  }
}
