/**
 * What cloud commands (agent/cloud-commands.ts) keep in the data directory: the offline limits
 * set by `set_offline_limits` (`offline-limits.json`, read at start-up and applied over the config
 * file's `offline` section) and the ids of the commands already seen (`seen-commands.json`, so a
 * replay is refused across restarts). Both files are 0600 and written whole (temp file, rename).
 */

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import { type Clock, systemClock } from '../common/clock.js';
import type { SeenCommand, SeenCommandStore } from '../cloud-sync/commands.js';
import { type CommandBody, CommandBodySchema } from '../cloud-sync/schemas.js';

/** The offline limits the cloud may set (`set_offline_limits`); amounts in integer minor units. */
export type OfflineLimitOverrides = Extract<CommandBody, { type: 'set_offline_limits' }>['limits'];

/** File name of the overrides in the data directory. */
export const OFFLINE_LIMITS_FILE = 'offline-limits.json';

/** Where {@link loadOfflineLimitOverrides} reports a broken overrides file. */
export interface OverridesWarnLogger {
  warn(fields: object, message: string): void;
}

/**
 * The offline limits set by cloud command, or `{}` when none were set. The offline policy
 * applies them over the config's values (a cloud-set value wins over the file's).
 *
 * The file is validated with the `set_offline_limits` wire schema (cloud-sync/schemas.ts): a
 * file that is not JSON or fails it (e.g. `{"maxCount":"x"}`, which would switch the offline caps
 * off) is ignored as a whole and reported to `logger` as a POS507 warning.
 *
 * @param dataDir — the agent's data directory.
 * @param logger — receives the POS507 warning for a broken file; none → silent.
 * @returns e.g. `{ perTransactionLimitMinor: { EUR: 5000 }, maxCount: 50 }`; `{}` when the file is
 *   missing or broken (a broken file is also reported by `pos-agent doctor`).
 */
export function loadOfflineLimitOverrides(
  dataDir: string,
  logger?: OverridesWarnLogger,
): OfflineLimitOverrides {
  const file = path.join(dataDir, OFFLINE_LIMITS_FILE);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      logger?.warn(
        { code: 'POS507', err: error, file },
        `the offline limits file ${file} is not readable JSON; it is ignored and the config's offline limits apply (delete it, the cloud sends set_offline_limits again)`,
      );
    return {};
  }
  if (typeof value === 'object' && value !== null && Object.keys(value).length === 0) return {};
  const parsed = CommandBodySchema.safeParse({ type: 'set_offline_limits', limits: value });
  if (!parsed.success || parsed.data.type !== 'set_offline_limits') {
    const problems = parsed.success
      ? 'not set_offline_limits'
      : parsed.error.issues.map((i) => `${i.path.slice(1).join('.')}: ${i.message}`).join('; ');
    logger?.warn(
      { code: 'POS507', file, problems },
      `the offline limits file ${file} fails the set_offline_limits schema (${problems}); it is ignored and the config's offline limits apply (delete it, the cloud sends set_offline_limits again)`,
    );
    return {};
  }
  return parsed.data.limits;
}

/** The offline policy fields a `set_offline_limits` command may change (config `offline`). */
export interface OfflineLimits {
  perTransactionLimitMinor: Record<string, number>;
  totalLimitMinor: Record<string, number>;
  maxCount: number;
  forwardingDeadlineHours: number;
}

/**
 * Merges `overrides` INTO `policy` (in place, so a payment service holding the same object sees
 * the new limits from the next payment on); per-currency maps are merged by currency.
 * `forwardingDeadlineHours` is read by the store when it opens, so a change of it takes effect
 * at the next start.
 *
 * @returns `policy`.
 */
export function applyOfflineLimitOverrides<P extends OfflineLimits>(
  policy: P,
  overrides: OfflineLimitOverrides,
): P {
  if (overrides.perTransactionLimitMinor !== undefined)
    policy.perTransactionLimitMinor = {
      ...policy.perTransactionLimitMinor,
      ...overrides.perTransactionLimitMinor,
    };
  if (overrides.totalLimitMinor !== undefined)
    policy.totalLimitMinor = { ...policy.totalLimitMinor, ...overrides.totalLimitMinor };
  if (overrides.maxCount !== undefined) policy.maxCount = overrides.maxCount;
  if (overrides.forwardingDeadlineHours !== undefined)
    policy.forwardingDeadlineHours = overrides.forwardingDeadlineHours;
  return policy;
}

/** File name of the seen cloud command ids in the data directory ({@link FileSeenCommandStore}). */
export const SEEN_COMMANDS_FILE = 'seen-commands.json';

/**
 * The cloud-sync {@link SeenCommandStore} as a small JSON file in the data directory:
 * `[{ "id": "cmd-1", "expiresAt": 1795000000000 }, ...]` (expiresAt in ms since the epoch),
 * written whole on every accepted command (temp file, fsync, rename; mode 0600), so a replay of
 * a still-valid command is refused (POS321) after a restart too. Expired ids are pruned on load
 * and on every save. A missing file is an empty list; a broken one is reported (POS507) and
 * treated as empty.
 */
export class FileSeenCommandStore implements SeenCommandStore {
  readonly file: string;
  #clock: Clock;
  #logger: OverridesWarnLogger | undefined;

  constructor(dataDir: string, options: { clock?: Clock; logger?: OverridesWarnLogger } = {}) {
    this.file = path.join(dataDir, SEEN_COMMANDS_FILE);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
  }

  /** The unexpired ids of the file; `[]` when it is missing or broken. */
  load(): SeenCommand[] {
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#logger?.warn(
          { code: 'POS507', err: error, file: this.file },
          `the seen cloud commands file ${this.file} is not readable JSON; it is ignored (a replay of a command applied before the restart is not recognised until it expires)`,
        );
      return [];
    }
    const entries = Array.isArray(value) ? value : [];
    const now = this.#clock.now();
    return entries.filter(
      (e): e is SeenCommand =>
        typeof e === 'object' &&
        e !== null &&
        typeof (e as SeenCommand).id === 'string' &&
        typeof (e as SeenCommand).expiresAt === 'number' &&
        (e as SeenCommand).expiresAt > now,
    );
  }

  /** Atomically replaces the file with the unexpired `seen` ids. @throws the fs error. */
  save(seen: SeenCommand[]): void {
    const now = this.#clock.now();
    const live = seen.filter((e) => e.expiresAt > now);
    const temp = `${this.file}.new`;
    const fd = openSync(temp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(live)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, this.file);
  }
}
