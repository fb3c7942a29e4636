/**
 * The agent's configuration: one zod schema that is also its documentation (architecture.md §8). Units
 * are in the names (`…Ms`, `…Seconds`, `…Bytes`), every number has a range and a default, and a
 * bad file is refused with every problem listed at once (zigbee2mqtt does the same).
 *
 * This file assembles the sections (config-sections.ts: devices, API, offline, authorization,
 * retention, batch, log; config-sync.ts: broker and sync) and words the problems through
 * config-problems.ts.
 *
 * Example (`pos-agent init-dev` writes one):
 * ```json
 * { "deviceId": "store-0042-lane-3", "dataDir": "/var/lib/pos-agent", "keysDir": "/etc/pos-agent/keys",
 *   "pinPad": { "path": "/dev/serial/by-id/usb-…" },
 *   "broker": { "url": "mqtts://broker.example:8883" } }
 * ```
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AgentError } from '../common/agent-error.js';
import { describeProblems } from './config-problems.js';
import {
  ApiConfig,
  AuthorizationConfig,
  BatchConfig,
  CardConfig,
  CardReaderConfig,
  LogConfig,
  OfflineConfig,
  PinPadConfig,
  RetentionConfig,
} from './config-sections.js';
import { BrokerConfig, SyncConfig } from './config-sync.js';

export { closestKey, editDistance, type ConfigProblem } from './config-problems.js';
export { AWS_IOT_CORE_LIMITS, syncLimits, type SyncLimits } from './config-sync.js';

/** The whole configuration file. */
export const AgentConfigSchema = z
  .object({
    /** Device id: also the MQTT client id and the `{d}` of every topic. */
    deviceId: z
      .string()
      .regex(
        /^[a-z0-9][a-z0-9-]{2,63}$/,
        'must be 3–64 characters of a–z, 0–9 and -, e.g. store-0042-lane-3',
      ),
    /** Tenant (merchant) id, as registered in the cloud; written by `pos-agent provision`. */
    tenantId: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be 1–64 characters of a–z, 0–9 and -')
      .optional(),
    /** Store id within the tenant; written by `pos-agent provision`. */
    storeId: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be 1–64 characters of a–z, 0–9 and -')
      .optional(),
    /** Directory of the SQLite database (created, mode 0700). */
    dataDir: z.string().min(1),
    /** Directory of the key files (see agent/keys.ts). */
    keysDir: z.string().min(1),
    pinPad: PinPadConfig,
    card: CardConfig.prefault({}),
    /** Card readers besides the PIN pad (issue 4); a card on any of them feeds the payment. Default []. */
    cardReaders: z
      .array(CardReaderConfig)
      .max(8)
      .default([])
      .refine((readers) => new Set(readers.map((r) => r.name)).size === readers.length, {
        message: 'card reader names must be unique',
      }),
    broker: BrokerConfig,
    // A section left out is `{}` run through its own schema (`prefault`), so every default is
    // written once, on its field (issue 15).
    sync: SyncConfig.prefault({}),
    api: ApiConfig.prefault({}),
    log: LogConfig.prefault({}),
    offline: OfflineConfig.prefault({}),
    authorization: AuthorizationConfig.prefault({}),
    retention: RetentionConfig.prefault({}),
    batch: BatchConfig.prefault({}),
  })
  .strict();

/** A parsed, defaulted configuration. */
export type AgentConfig = z.infer<typeof AgentConfigSchema>;
/** The configuration as written in a file (defaults may be left out). */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/**
 * The defaults of the sections every field of which has one, read from the schema, the one place
 * defaults are written (issue 15): e.g. `CONFIG_DEFAULTS.api.port` is 7420. Writers of config
 * files (`pos-agent provision`, `init-dev`) take a value from here instead of repeating it.
 */
export const CONFIG_DEFAULTS: Readonly<
  Pick<
    AgentConfig,
    'card' | 'sync' | 'api' | 'log' | 'offline' | 'authorization' | 'retention' | 'batch'
  >
> = Object.freeze({
  card: CardConfig.parse({}),
  sync: SyncConfig.parse({}),
  api: ApiConfig.parse({}),
  log: LogConfig.parse({}),
  offline: OfflineConfig.parse({}),
  authorization: AuthorizationConfig.parse({}),
  retention: RetentionConfig.parse({}),
  batch: BatchConfig.parse({}),
});

/**
 * Validates a configuration object.
 *
 * @param input — the parsed JSON of the config file.
 * @param source — where it came from, for the message (a file path).
 * @throws AgentError POS501 listing every problem as `path: what is wrong`, numbered.
 */
export function parseConfig(input: unknown, source = 'config'): AgentConfig {
  const result = AgentConfigSchema.safeParse(input);
  if (result.success) {
    const config = result.data;
    // Relative directories are relative to the config file, so a config can travel with its keys.
    if (source !== 'config') {
      const base = path.dirname(path.resolve(source));
      config.dataDir = path.resolve(base, config.dataDir);
      config.keysDir = path.resolve(base, config.keysDir);
      for (const field of ['caFile', 'certFile', 'keyFile'] as const) {
        const file = config.broker[field];
        if (file !== undefined) config.broker[field] = path.resolve(base, file);
      }
      if (config.log.file !== undefined) config.log.file = path.resolve(base, config.log.file);
    }
    return config;
  }
  const problems = describeProblems(AgentConfigSchema, result.error.issues);
  const numbered = problems.map(
    (p, i) => `  ${i + 1}. ${p.path === '' ? '(top level)' : p.path}: ${p.message}`,
  );
  throw new AgentError(
    'POS501',
    `${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}; fix them and start again:\n${numbered.join('\n')}\n`,
    { details: { problems } },
  );
}

/**
 * Reads and validates a JSON config file.
 *
 * @throws AgentError POS501 when the file is missing, not JSON, or fails the schema.
 */
export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new AgentError(
      'POS501',
      `cannot read config file ${file}: ${(cause as Error).message}; provision this terminal ("pos-agent provision", see docs/field-guide.md), or give the right file with --config FILE or POS_AGENT_CONFIG (a development setup: "pos-agent init-dev --dir DIR")`,
      { cause },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new AgentError(
      'POS501',
      `config file ${file} is not valid JSON: ${(cause as Error).message}`,
      { cause },
    );
  }
  return parseConfig(json, file);
}
