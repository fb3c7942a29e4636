/**
 * Structured JSON logs (architecture.md §8) with pino. Correlation ids (`paymentId`, `idempotencyKey`)
 * go in the log object. The redaction guard rewrites every line on its way to the stream: a
 * Luhn-valid run of 13–19 digits becomes first 6 + `*` + last 4, so a PAN-shaped string in a log
 * line is impossible even if a bug put one into a message (PCI DSS 4.0.1 req. 3.4.1). A run in a
 * bare number turns the number into a string, so that the line still parses as JSON.
 *
 * Where `pos-agent run` writes (issue 12), chosen by {@link chooseLogTarget}:
 *
 * | situation | target |
 * |-----------|--------|
 * | under systemd (`INVOCATION_ID` or `JOURNAL_STREAM` set) | JSON lines on standard output, so journald keeps every line (`journalctl -u pos-agent -o cat`); `log.file` is ignored, and the first line says so |
 * | `log.file` set, not under systemd | that file, rotated by size with pino-roll (`log.rotateBytes`, `log.keepFiles`): `agent.1.log`, `agent.2.log`, … (highest number = newest) plus a `current.log` symlink to the file in use |
 * | neither | standard output |
 *
 * pino-roll rotates on its own, so no logrotate and no SIGHUP reopen are needed (or wanted: a
 * logrotate `copytruncate` would race with it). It rotates when a write completes with nothing
 * else queued, so under a continuous burst a file may pass `rotateBytes` until the burst ends.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { destination as pinoDestination, pino, stdTimeFunctions } from 'pino';
import type { DestinationStream } from 'pino';
import pinoRoll from 'pino-roll';
import { redactPanShapedRunsInJson } from '../common/luhn-scan.js';

import type { Logger } from 'pino';
export type { Logger };

function loggerOptions(level: string | undefined, name: string | undefined) {
  return {
    level: level ?? 'info',
    name: name ?? 'pos-agent',
    base: { pid: process.pid },
    timestamp: stdTimeFunctions.isoTime,
    hooks: { streamWrite: redactPanShapedRunsInJson },
  };
}

/**
 * Creates a logger on standard output or on a plain file (tests, the demo, the simulator).
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
  return pino(loggerOptions(options.level, options.name), destination);
}

/** Where the service logs; see the table in the file header. */
export type LogTarget =
  { kind: 'journald'; reason: string } | { kind: 'file'; file: string } | { kind: 'stdout' };

/**
 * Chooses where `pos-agent run` logs.
 *
 * @param file — `log.file` of the config (absolute), if any.
 * @param env — the environment; systemd sets `INVOCATION_ID` for every unit and
 *   `JOURNAL_STREAM` when standard output is connected to the journal (systemd.exec(5)).
 */
export function chooseLogTarget(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): LogTarget {
  const systemd =
    env.JOURNAL_STREAM !== undefined && env.JOURNAL_STREAM !== ''
      ? 'JOURNAL_STREAM is set'
      : env.INVOCATION_ID !== undefined && env.INVOCATION_ID !== ''
        ? 'INVOCATION_ID is set'
        : undefined;
  if (systemd !== undefined)
    return { kind: 'journald', reason: `running under systemd (${systemd})` };
  if (file !== undefined) return { kind: 'file', file };
  return { kind: 'stdout' };
}

/** The log settings of the config (agent/config.ts `log`). */
export interface ServiceLogSettings {
  /** Lowest level written. */
  level: string;
  /** The log file, absolute; ignored under systemd. */
  file?: string | undefined;
  /** Size at which the file is rotated, bytes. */
  rotateBytes: number;
  /** Rotated files kept besides the current one. */
  keepFiles: number;
}

/**
 * Creates the service's logger (see the file header) and says on its first line where it logs.
 *
 * @param options.stdout — the stream for standard output (tests); default fd 1.
 * @returns the logger, where it writes, and `close()` that flushes and closes a file.
 */
export async function createServiceLogger(
  settings: ServiceLogSettings,
  options: { env?: NodeJS.ProcessEnv; stdout?: DestinationStream; name?: string } = {},
): Promise<{ logger: Logger; target: LogTarget; close: () => Promise<void> }> {
  const target = chooseLogTarget(settings.file, options.env);
  const stdout = (): DestinationStream => options.stdout ?? pinoDestination({ fd: 1, sync: true });
  if (target.kind !== 'file') {
    const logger = pino(loggerOptions(settings.level, options.name), stdout());
    if (target.kind === 'journald')
      logger.info(
        { logTarget: 'journald', ignoredLogFile: settings.file },
        `logging JSON lines to standard output for journald: ${target.reason}${settings.file !== undefined ? `; log.file ${settings.file} is not used` : ''}`,
      );
    return { logger, target, close: async () => undefined };
  }
  // pino-roll makes its current.log symlink before sonic-boom's mkdir has run.
  mkdirSync(path.dirname(target.file), { recursive: true });
  // sonic-boom takes `mode` (its typings omit it): the log is private to the service user.
  const rollOptions = {
    file: target.file,
    size: `${settings.rotateBytes}b`,
    limit: { count: settings.keepFiles },
    symlink: true,
    mkdir: true,
    mode: 0o600,
  };
  const stream = await pinoRoll(rollOptions);
  const logger = pino(loggerOptions(settings.level, options.name), stream);
  logger.info(
    { logTarget: 'file', file: target.file },
    `logging to ${target.file} as numbered files (${path.basename(target.file).replace(/(\.[^.]*)?$/, '.N$1')}, current.log points at the newest), rotated at ${settings.rotateBytes} bytes, ${settings.keepFiles} old files kept`,
  );
  return {
    logger,
    target,
    close: () =>
      new Promise<void>((resolve) => {
        stream.once('close', () => resolve());
        stream.end();
      }),
  };
}
