/**
 * The agent's configuration: one zod schema that is also its documentation (architecture.md §8). Units
 * are in the names (`…Ms`, `…Seconds`, `…Bytes`), every number has a range and a default, and a
 * bad file is refused with every problem listed at once (zigbee2mqtt does the same).
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

const devicePath = z
  .string()
  .refine(
    (p) => p.startsWith('/') || /^tcp:\/\/[^:/]+:\d{1,5}$/.test(p) || /^mock:\/\/[\w.-]+$/.test(p),
    {
      message:
        'must be a serial device path (/dev/ttyUSB0, /dev/serial/by-id/…), tcp://host:port, or mock://name',
    },
  );

/** The PIN pad on the framed serial link (architecture.md §3.1, §3.2). */
const PinPadConfig = z
  .object({
    /** Where the PIN pad is: `/dev/…` (serial), `tcp://host:port` (ser2net, simulator) or `mock://name`. */
    path: devicePath,
    /** Serial line speed in baud; ignored for tcp:// and mock://. Default 9600. */
    baudRate: z.number().int().min(1200).max(921600).default(9600),
    /** How long to wait for ACK after a frame, in ms (architecture.md §3.1). Default 1000. */
    ackTimeoutMs: z.number().int().min(50).max(60_000).default(1000),
    /** Longest gap between two bytes of one frame, in ms; a longer gap NAKs the frame. Default 500. */
    interByteTimeoutMs: z.number().int().min(10).max(10_000).default(500),
    /** Transmissions of one frame before EOT and failure. Default 3. */
    maxTransmissions: z.number().int().min(1).max(10).default(3),
    /** How long to wait for the pad's reply to a request, in ms. Default 5000. */
    responseTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** How long the customer has to present a card, in seconds. Default 60. */
    cardReadTimeoutSeconds: z.number().int().min(5).max(300).default(60),
  })
  .strict();

/**
 * One card reader (issue 4, architecture.md §3.3). `kind` says how its bytes are decoded:
 * `hid-msr` (337-byte vendor HID reports) and `wedge` (keyboard reports) need a
 * `hid://VID:PID[/serial]` path; `serial` (track text lines) needs `/dev/…`, `tcp://` or `mock://`.
 * `pos-agent devices` prints the path and kind to put here.
 */
const CardReaderConfig = z
  .object({
    /** Name shown in `/v1/status` and logs, e.g. `counter-msr`: 1–32 of a–z, 0–9, -. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1–32 characters of a–z, 0–9 and -'),
    /** `hid://VID:PID[/serial]`, `/dev/…`, `tcp://host:port` or `mock://name`. */
    path: z
      .string()
      .refine(
        (p) =>
          /^hid:\/\/[0-9a-fA-F]{4}:[0-9a-fA-F]{4}(\/[\x21-\x7e]{1,64})?$/.test(p) ||
          p.startsWith('/') ||
          /^tcp:\/\/[^:/]+:\d{1,5}$/.test(p) ||
          /^mock:\/\/[\w.-]+$/.test(p),
        {
          message:
            'must be hid://VID:PID[/serial], a serial device path, tcp://host:port or mock://name',
        },
      ),
    /** `hid-msr`, `wedge` or `serial`. */
    kind: z.enum(['hid-msr', 'wedge', 'serial']),
    /** Serial line speed in baud (serial readers on /dev/… only). Default 9600. */
    baudRate: z.number().int().min(1200).max(921600).default(9600),
    /** First reopen delay after an unplug, in ms; doubles up to reconnectMaxDelayMs. Default 500. */
    reconnectInitialDelayMs: z.number().int().min(10).max(60_000).default(500),
    /** Longest reopen delay, in ms. Default 30000. */
    reconnectMaxDelayMs: z.number().int().min(100).max(600_000).default(30_000),
  })
  .strict()
  .refine((r) => (r.kind === 'serial') !== r.path.startsWith('hid://'), {
    message:
      'kind hid-msr and wedge need a hid:// path; kind serial needs /dev/…, tcp:// or mock://',
    path: ['kind'],
  });

/** What the card boundary may keep and accept (architecture.md §2). */
const CardConfig = z
  .object({
    /** Keep the cardholder name from track 1. Default false (PCI DSS 4.0.1 req. 3.2: keep only what is needed). */
    allowCardholderName: z.boolean().default(false),
    /** Accept a swipe of a chip card (service code 2xx/6xx) as fallback. Default false. */
    allowFallbackSwipe: z.boolean().default(false),
  })
  .strict();

const BrokerUrl = z
  .string()
  .regex(/^mqtts?:\/\/[^/\s]+(:\d{1,5})?\/?$/, 'must be mqtt://host:port or mqtts://host:port');

/** The MQTT broker that links the agent with the cloud core (architecture.md §5). */
const BrokerConfig = z
  .object({
    /**
     * One broker URL: `mqtts://host:8883`, or `mqtt://…` for a development setup. Still accepted;
     * `urls` is the form for a broker cluster. Give one of the two.
     */
    url: BrokerUrl.optional(),
    /**
     * The broker cluster's nodes, in order of preference (issue 16): the agent connects to the
     * first, and after a lost connection or a failed attempt to the next one (round robin), with
     * backoff and jitter, the same client id and persistent session. 1–16 URLs of one scheme.
     */
    urls: z.array(BrokerUrl).min(1).max(16).optional(),
    /** Topic prefix `{p}` of architecture.md §5. Default `pos/v1`. */
    topicPrefix: z
      .string()
      .regex(/^[\w-]+(\/[\w-]+)*$/, 'must be topic levels of letters, digits, - and _, e.g. pos/v1')
      .default('pos/v1'),
    /**
     * MQTT keep-alive in seconds (MQTT 3.1.1 §3.1.2.10): a PINGREQ goes out after this long
     * without an acknowledgement from the broker. 1–1200, default 5 (a store LAN: a silent
     * partition is noticed within keepaliveSeconds × 1000 + pingTimeoutMs = 7 s, and payments go
     * offline instead of waiting for a dead link; issue 10).
     */
    keepaliveSeconds: z.number().int().min(1).max(1200).default(5),
    /**
     * How long to wait for the PINGRESP before the link counts as dead and is reconnected, in ms.
     * 100–60000, default 2000. MQTT.js drops the link at 1.5 × keep-alive at the latest.
     */
    pingTimeoutMs: z.number().int().min(100).max(60_000).default(2000),
    /**
     * First wait before a reconnect attempt, in ms: the base of the backoff (doubling per failed
     * attempt up to `reconnectMaxMs`, stretched by up to 50 % jitter). Default 1000.
     */
    reconnectPeriodMs: z.number().int().min(100).max(300_000).default(1000),
    /** Cap of the reconnect backoff before jitter, ms. 100–600000, default 30000. */
    reconnectMaxMs: z.number().int().min(100).max(600_000).default(30_000),
    /** PEM file of the CA that signed the broker's certificate (pinned; required for mqtts://). */
    caFile: z.string().min(1).optional(),
    /** PEM file of this terminal's client certificate (mutual TLS; required for mqtts://). */
    certFile: z.string().min(1).optional(),
    /** PEM file of the client certificate's private key, mode 0600 (required for mqtts://). */
    keyFile: z.string().min(1).optional(),
    /**
     * A development setup: allows plaintext `mqtt://` (the simulator's broker, a developer's
     * Mosquitto). Default false: plaintext is refused even to loopback (issue 5), so a production
     * terminal can only be pointed at a plaintext broker by someone who writes this line.
     */
    development: z.boolean().default(false),
  })
  .strict()
  .superRefine((broker, ctx) => {
    if (broker.url !== undefined && broker.urls !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message:
          'give broker.urls (the list of broker nodes) or broker.url (one broker), not both: move the URL into broker.urls and delete broker.url',
      });
      return;
    }
    const list = broker.urls ?? (broker.url === undefined ? [] : [broker.url]);
    const field = broker.urls === undefined ? 'url' : 'urls';
    if (list.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['urls'],
        message:
          'is required: the broker nodes in order, e.g. ["mqtts://broker-1:8883", "mqtts://broker-2:8883"] (or broker.url for one broker)',
      });
      return;
    }
    const parsed = list.map((u) => /^(mqtts?):\/\/(\[[^\]]+\]|[^:/\s]+)/.exec(u));
    if (parsed.some((m) => m === null)) return;
    const schemes = new Set(parsed.map((m) => m?.[1]));
    if (schemes.size > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [field],
        message:
          'mixes mqtt:// and mqtts://: every broker node must use the same scheme (mqtts:// with caFile, certFile and keyFile)',
      });
      return;
    }
    if (schemes.has('mqtt')) {
      if (!broker.development)
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message:
            'plaintext mqtt:// is refused: use mqtts:// with caFile, certFile and keyFile, or set broker.development to true for a development setup',
        });
      else
        for (const [i, m] of parsed.entries()) {
          // Even in development, plaintext stays on this machine (issue 11): tokens, sealed card
          // data and signed commands would otherwise cross the store network in clear.
          const host = m?.[2] ?? '';
          if (!isLoopbackHost(host))
            ctx.addIssue({
              code: 'custom',
              path: field === 'urls' ? ['urls', i] : ['url'],
              message: `plaintext mqtt:// to ${host} is refused, also in development: only to loopback (127.0.0.1, ::1, localhost); use mqtts:// for any other host`,
            });
        }
      return;
    }
    for (const file of ['caFile', 'certFile', 'keyFile'] as const) {
      if (broker[file] === undefined)
        ctx.addIssue({
          code: 'custom',
          path: [file],
          message: `mqtts:// needs ${file} (PEM) for mutual TLS; run "pos-agent provision" to write it`,
        });
    }
  })
  // One shape after parsing: `urls` always set, `url` its first entry (where one URL is shown).
  .transform(({ url, urls, ...rest }) => {
    const list = urls ?? (url === undefined ? [] : [url]);
    return { ...rest, url: list[0] ?? '', urls: list };
  });

/** True for `localhost`, `127.x.x.x` and `[::1]` (a URL's host part). */
function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The store-and-forward sync with the cloud core (architecture.md §5). */
const SyncConfig = z
  .object({
    /** Largest MQTT payload in bytes; AWS IoT Core's limit is 128 KiB. Default 131072. */
    maxMessageBytes: z.number().int().min(2048).max(268_435_455).default(131_072),
    /** Batches awaiting the cloud's acknowledgement at once. Default 16. */
    maxInFlightBatches: z.number().int().min(1).max(1000).default(16),
    /** Time to wait for a batch's acknowledgement before sending it again, in ms. Default 10000. */
    ackTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /**
     * Cap on PUBLISH packets per second (records batches, resends, status), for brokers that
     * throttle a client; optional, no cap by default. 0.001–100000 per second.
     */
    maxPublishesPerSecond: z.number().min(0.001).max(100_000).optional(),
    /**
     * A broker's published limits, applied unless set above: `aws-iot-core` = 100 publishes/s per
     * connection, 100 unacknowledged QoS 1 publishes in flight, 128 KiB per message (AWS IoT Core
     * service quotas). Default `none`.
     */
    brokerLimits: z.enum(['none', 'aws-iot-core']).default('none'),
    /**
     * Longest lifetime (expiresAt − issuedAt) of a cloud command the agent accepts, in ms;
     * longer ones are refused (POS327). Default 86400000 (24 h).
     */
    maxCommandLifetimeMs: z.number().int().min(1000).max(31_536_000_000).default(86_400_000),
  })
  .strict();

/** The effective sync limits: the {@link SyncConfig} values with its `brokerLimits` preset applied. */
export interface SyncLimits {
  maxMessageBytes: number;
  maxInFlightBatches: number;
  maxPublishesPerSecond: number | undefined;
}

/**
 * AWS IoT Core's limits for one MQTT connection (AWS IoT Core endpoints and quotas: publish
 * requests per second per connection 100; maximum in-flight unacknowledged messages 100;
 * message size 128 KB).
 */
export const AWS_IOT_CORE_LIMITS: SyncLimits = {
  maxMessageBytes: 131_072,
  maxInFlightBatches: 100,
  maxPublishesPerSecond: 100,
};

/**
 * The limits the sync worker runs with: the preset's, each lowered by an explicit config value
 * (a preset never raises a limit the config sets lower).
 */
export function syncLimits(sync: AgentConfig['sync']): SyncLimits {
  if (sync.brokerLimits === 'aws-iot-core') {
    return {
      maxMessageBytes: Math.min(sync.maxMessageBytes, AWS_IOT_CORE_LIMITS.maxMessageBytes),
      maxInFlightBatches: AWS_IOT_CORE_LIMITS.maxInFlightBatches,
      maxPublishesPerSecond: Math.min(
        sync.maxPublishesPerSecond ?? Number.POSITIVE_INFINITY,
        AWS_IOT_CORE_LIMITS.maxPublishesPerSecond ?? Number.POSITIVE_INFINITY,
      ),
    };
  }
  return {
    maxMessageBytes: sync.maxMessageBytes,
    maxInFlightBatches: sync.maxInFlightBatches,
    maxPublishesPerSecond: sync.maxPublishesPerSecond,
  };
}

/** The local API for the POS app (architecture.md §6). */
const ApiConfig = z
  .object({
    /** Address to listen on; loopback only. Default 127.0.0.1. */
    host: z.enum(['127.0.0.1', '::1', 'localhost']).default('127.0.0.1'),
    /** TCP port; 0 picks a free one (tests). Default 7420. */
    port: z.number().int().min(0).max(65_535).default(7420),
    /**
     * Listen on this UNIX socket instead of TCP (created mode 0600, so only the POS app's user
     * can connect). Optional; when set, `host` and `port` are ignored.
     */
    socketPath: z.string().min(1).optional(),
  })
  .strict();

const currencyAmounts = z.record(
  z.string().regex(/^[A-Z]{3}$/, 'currency must be an ISO 4217 code in upper case, e.g. EUR'),
  z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
);

/**
 * The offline policy (architecture.md §4, issue 3): when a payment may be approved without the cloud.
 * A currency without a per-transaction limit is never approved offline.
 */
const OfflineConfig = z
  .object({
    /** Largest offline payment per currency, integer minor units, e.g. `{ "EUR": 5000 }` (50.00). Default EUR/USD/GBP 10000. */
    perTransactionLimitMinor: currencyAmounts.default({ EUR: 10_000, USD: 10_000, GBP: 10_000 }),
    /** Largest total stored offline per currency, minor units; a missing currency uses its per-transaction limit. Default EUR/USD/GBP 500000. */
    totalLimitMinor: currencyAmounts.default({ EUR: 500_000, USD: 500_000, GBP: 500_000 }),
    /** Most payments stored offline at once, all currencies. 0–100000, default 500. */
    maxCount: z.number().int().min(0).max(100_000).default(500),
    /** Hours a stored payment may wait to reach the cloud. 1–720, default 72. */
    forwardingDeadlineHours: z.number().min(1).max(720).default(72),
    /** Warn (status, log, `pos-agent queue`) this many hours before the deadline. 0–720, default 12. */
    warningBeforeDeadlineHours: z.number().min(0).max(720).default(12),
  })
  .strict();

/** Online authorization over MQTT (architecture.md §5) and PIN entry for it. */
const AuthorizationConfig = z
  .object({
    /** How long to wait for `down/auth` before the outcome counts as unknown (ambiguous), ms. 500–120000, default 15000. */
    timeoutMs: z.number().int().min(500).max(120_000).default(15_000),
    /**
     * Entry modes whose cards need online PIN (message 30/31/39). The reference card boundary
     * does not expose the EMV CVM list (tag 8E), so the policy is set per entry mode by the
     * acquirer's rules: e.g. `["chip"]` for chip cards whose CVM is online PIN. Such cards are
     * never approved offline (`online_pin_required`). Default none.
     */
    onlinePinEntryModes: z.array(z.enum(['swipe', 'chip', 'contactless', 'manual'])).default([]),
    /** How long the customer has to enter the PIN, seconds. 5–300, default 60. */
    pinTimeoutSeconds: z.number().int().min(5).max(300).default(60),
  })
  .strict();

/** Retention (issue 3 §8): how long settled payments stay in the store. */
const RetentionConfig = z
  .object({
    /**
     * Days a settled payment (final state, every record acknowledged by the cloud) is kept after
     * its last change; then its row, events and card data are purged, its hash-chain links kept.
     * Checked at start-up and every hour. 1–3650, default 30.
     */
    acknowledgedDays: z.number().int().min(1).max(3650).default(30),
  })
  .strict();

/** Reconciliation (issue 17, docs/reconciliation.md): terminal batches and the drift check. */
const BatchConfig = z
  .object({
    /**
     * Local time ("HH:MM", 24-hour) at which the agent closes the open batch every day, like a
     * terminal's end-of-day close; a close refused because payments are still unforwarded or in
     * progress is tried again every minute. Absent: batches close only by `pos-agent batch
     * close` or the cloud's `close_batch` command.
     */
    closeAt: z
      .string()
      .regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, 'a local time "HH:MM", 00:00–23:59')
      .optional(),
    /**
     * Seconds between drift checks: the open batch's running totals are reported to the cloud
     * when something changed, and a difference with its answer is an exception (metric, status,
     * log). 0 turns the check off; 30–86400, default 300.
     */
    driftCheckSeconds: z
      .number()
      .int()
      .refine((n) => n === 0 || (n >= 30 && n <= 86_400), '0 (off) or 30–86400 seconds')
      .default(300),
  })
  .strict();

/** Logging (architecture.md §8). */
const LogConfig = z
  .object({
    /** Lowest level written. Default info. */
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /**
     * Write JSON lines to this file instead of standard output, rotated by size (agent/logger.ts).
     * Ignored under systemd, where the lines go to journald through standard output.
     */
    file: z.string().optional(),
    /** Rotate the log file when it reaches this size, bytes. 4096–1 GiB, default 10 MiB. */
    rotateBytes: z
      .number()
      .int()
      .min(4096)
      .max(1024 ** 3)
      .default(10 * 1024 * 1024),
    /** Rotated log files kept besides the current one. 1–100, default 5. */
    keepFiles: z.number().int().min(1).max(100).default(5),
  })
  .strict();

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
  const problems = describeProblems(result.error.issues);
  const numbered = problems.map(
    (p, i) => `  ${i + 1}. ${p.path === '' ? '(top level)' : p.path}: ${p.message}`,
  );
  throw new AgentError(
    'POS501',
    `${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}; fix them and start again:\n${numbered.join('\n')}\n`,
    { details: { problems } },
  );
}

/** One problem of a config file: the dotted path of the field (`''` = top level) and what is wrong. */
interface ConfigProblem {
  path: string;
  message: string;
}

/**
 * The schema's issues as problems a field tech can act on: a missing field "is required"; an
 * unknown key (zod's `unrecognized_keys`, one problem per key) names the known key it is closest
 * to ("did you mean `pinPad`?"), and when that key is required and missing, the two issues are
 * one problem.
 */
function describeProblems(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const dotted = (where: readonly PropertyKey[]): string => where.map(String).join('.');
  const missing = new Set(
    issues.filter((i) => / received undefined$/.test(i.message)).map((i) => dotted(i.path)),
  );
  const merged = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') {
      problems.push({
        path: dotted(issue.path),
        message: / received undefined$/.test(issue.message)
          ? 'is required (see AgentConfigSchema in agent/config.ts for what it holds)'
          : issue.message,
      });
      continue;
    }
    const known = knownKeys(issue.path);
    for (const key of issue.keys) {
      const suggestion = closestKey(key, known);
      const target = dotted([...issue.path, suggestion ?? '']);
      const message =
        suggestion === undefined
          ? `unknown key; remove it${known.length === 0 ? '' : ` (known here: ${known.join(', ')})`}`
          : missing.has(target)
            ? `unknown key; did you mean \`${suggestion}\`? (${suggestion} is required and missing)`
            : `unknown key; did you mean \`${suggestion}\`?`;
      if (suggestion !== undefined && missing.has(target)) merged.add(target);
      problems.push({ path: dotted([...issue.path, key]), message });
    }
  }
  // A required key that was only misspelt is reported once, as the misspelling.
  return problems.filter((p) => !(merged.has(p.path) && p.message.startsWith('is required')));
}

/** The keys the object at `where` (a zod issue path) of {@link AgentConfigSchema} takes. */
function knownKeys(where: readonly PropertyKey[]): string[] {
  let schema: unknown = AgentConfigSchema;
  const unwrap = (s: unknown): unknown => {
    let inner = s;
    while (
      inner instanceof z.ZodDefault ||
      inner instanceof z.ZodPrefault ||
      inner instanceof z.ZodOptional
    )
      inner = inner.unwrap();
    return inner;
  };
  for (const step of where) {
    schema = unwrap(schema);
    if (schema instanceof z.ZodArray && typeof step === 'number') schema = schema.element;
    else if (schema instanceof z.ZodObject && typeof step === 'string')
      schema = (schema.shape as Record<string, unknown>)[step];
    else return [];
  }
  schema = unwrap(schema);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/**
 * The known key a misspelt `key` most likely meant: the nearest by {@link editDistance} (case
 * ignored), when at most a third of its letters (at least 1) differ; `undefined` otherwise.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (best === undefined || distance < best.distance) best = { key: candidate, distance };
  }
  const allowed = Math.max(1, Math.floor(key.length / 3));
  return best !== undefined && best.distance <= allowed ? best.key : undefined;
}

/**
 * Edits (insert, delete, substitute, swap of two neighbours) that turn `a` into `b`: the optimal
 * string alignment distance, so `hots` is 1 from `host`.
 */
export function editDistance(a: string, b: string): number {
  // d[i][j] = distance between the first i characters of a and the first j of b.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
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
