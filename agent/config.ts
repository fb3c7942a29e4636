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

/** The MQTT broker that links the agent with the cloud core (architecture.md §5). */
const BrokerConfig = z
  .object({
    /** Broker URL: `mqtts://host:8883`, or `mqtt://…` for a development setup. */
    url: z
      .string()
      .regex(/^mqtts?:\/\/[^/\s]+(:\d{1,5})?\/?$/, 'must be mqtt://host:port or mqtts://host:port'),
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
    /** Wait between reconnect attempts, in ms. Default 1000. */
    reconnectPeriodMs: z.number().int().min(100).max(300_000).default(1000),
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
    const url = /^(mqtts?):\/\/(\[[^\]]+\]|[^:/\s]+)/.exec(broker.url);
    if (url === null) return;
    if (url[1] === 'mqtt') {
      if (!broker.development)
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message:
            'plaintext mqtt:// is refused: use mqtts:// with caFile, certFile and keyFile, or set broker.development to true for a development setup',
        });
      // Even in development, plaintext stays on this machine (issue 11): tokens, sealed card
      // data and signed commands would otherwise cross the store network in clear.
      else if (!isLoopbackHost(url[2] ?? ''))
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message: `plaintext mqtt:// to ${url[2] ?? ''} is refused, also in development: only to loopback (127.0.0.1, ::1, localhost); use mqtts:// for any other host`,
        });
      return;
    }
    for (const field of ['caFile', 'certFile', 'keyFile'] as const) {
      if (broker[field] === undefined)
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `mqtts:// needs ${field} (PEM) for mutual TLS; run "pos-agent provision" to write it`,
        });
    }
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
    card: CardConfig.default({ allowCardholderName: false, allowFallbackSwipe: false }),
    /** Card readers besides the PIN pad (issue 4); a card on any of them feeds the payment. Default []. */
    cardReaders: z
      .array(CardReaderConfig)
      .max(8)
      .default([])
      .refine((readers) => new Set(readers.map((r) => r.name)).size === readers.length, {
        message: 'card reader names must be unique',
      }),
    broker: BrokerConfig,
    sync: SyncConfig.default({
      maxMessageBytes: 131_072,
      maxInFlightBatches: 16,
      ackTimeoutMs: 10_000,
      maxCommandLifetimeMs: 86_400_000,
      brokerLimits: 'none',
    }),
    api: ApiConfig.default({ host: '127.0.0.1', port: 7420 }),
    log: LogConfig.default({ level: 'info', rotateBytes: 10 * 1024 * 1024, keepFiles: 5 }),
    offline: OfflineConfig.default({
      perTransactionLimitMinor: { EUR: 10_000, USD: 10_000, GBP: 10_000 },
      totalLimitMinor: { EUR: 500_000, USD: 500_000, GBP: 500_000 },
      maxCount: 500,
      forwardingDeadlineHours: 72,
      warningBeforeDeadlineHours: 12,
    }),
    authorization: AuthorizationConfig.default({
      timeoutMs: 15_000,
      onlinePinEntryModes: [],
      pinTimeoutSeconds: 60,
    }),
    retention: RetentionConfig.default({ acknowledgedDays: 30 }),
    batch: BatchConfig.default({ driftCheckSeconds: 300 }),
  })
  .strict();

/** A parsed, defaulted configuration. */
export type AgentConfig = z.infer<typeof AgentConfigSchema>;
/** The configuration as written in a file (defaults may be left out). */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

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
  const problems = result.error.issues.map((issue, i) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    const message = / received undefined$/.test(issue.message)
      ? 'is required (see AgentConfigSchema in agent/config.ts for what it holds)'
      : issue.message;
    return `  ${i + 1}. ${where}: ${message}`;
  });
  throw new AgentError(
    'POS501',
    `${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}; fix them and start again:\n${problems.join('\n')}\n`,
    {
      details: {
        problems: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      },
    },
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
