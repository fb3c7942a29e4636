/**
 * Structured JSON logs (DESIGN §8) with pino. Correlation ids (`paymentId`, `idempotencyKey`)
 * go in the log object. The redaction guard rewrites every line on its way to the stream: a
 * Luhn-valid run of 13–19 digits becomes first 6 + `*` + last 4, so a PAN-shaped string in a log
 * line is impossible even if a bug put one into a message (PCI DSS 4.0.1 req. 3.4.1).
 */
import { chmodSync } from 'node:fs';
import { destination as pinoDestination, pino, stdTimeFunctions } from 'pino';
import { redactPanShapedRuns } from '../common/luhn-scan.js';

import type { Logger } from 'pino';
export type { Logger };

/**
 * Creates the agent's logger.
 *
 * @param options.level — lowest level written (`info` by default).
 * @param options.file — append JSON lines to this file (created) instead of standard output.
 * @param options.name — the component name put on every line.
 */
export function createLogger(
  options: { level?: string; file?: string | undefined; name?: string } = {},
): Logger {
  const destination =
    options.file === undefined
      ? pinoDestination({ fd: 1, sync: true })
      : pinoDestination({ dest: options.file, mkdir: true, sync: true, mode: 0o600 });
  // Created 0600 above; a log file left by an older version may still be 0644 (issue 11).
  if (options.file !== undefined) chmodSync(options.file, 0o600);
  return pino(
    {
      level: options.level ?? 'info',
      name: options.name ?? 'pos-agent',
      base: { pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      hooks: { streamWrite: redactPanShapedRuns },
    },
    destination,
  );
}
