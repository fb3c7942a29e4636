/**
 * The broker and sync sections of the agent's configuration (architecture.md §5, issues 5, 10,
 * 11, 16), and the effective sync limits a broker preset gives (`syncLimits`).
 */
import { z } from 'zod';

/** One broker URL: `mqtt://host[:port]` or `mqtts://host[:port]`. */
const BrokerUrl = z
  .string()
  .regex(/^mqtts?:\/\/[^/\s]+(:\d{1,5})?\/?$/, 'must be mqtt://host:port or mqtts://host:port');

/** The MQTT broker that links the agent with the cloud core (architecture.md §5). */
export const BrokerConfig = z
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

/** AWS IoT Core's in-flight limit (unacknowledged QoS 1 publishes per connection). */
const AWS_IOT_CORE_IN_FLIGHT = 100;

/** The store-and-forward sync with the cloud core (architecture.md §5). */
export const SyncConfig = z
  .object({
    /** Largest MQTT payload in bytes; AWS IoT Core's limit is 128 KiB. Default 131072. */
    maxMessageBytes: z.number().int().min(2048).max(268_435_455).default(131_072),
    /**
     * Batches awaiting the cloud's acknowledgement at once. 1–1000; default 16, or the preset's
     * under `brokerLimits` (filled in below, so a value written here always wins).
     */
    maxInFlightBatches: z.number().int().min(1).max(1000).optional(),
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
  .strict()
  // The in-flight default depends on the preset: a default of 16 written on the field could not
  // be told from a 16 the config wrote, and the preset would override the config's choice.
  .transform(({ maxInFlightBatches, ...rest }) => ({
    ...rest,
    maxInFlightBatches:
      maxInFlightBatches ?? (rest.brokerLimits === 'aws-iot-core' ? AWS_IOT_CORE_IN_FLIGHT : 16),
  }));

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
  maxInFlightBatches: AWS_IOT_CORE_IN_FLIGHT,
  maxPublishesPerSecond: 100,
};

/**
 * The limits the sync worker runs with: the preset's, each lowered by an explicit config value
 * (a preset never raises a limit the config sets lower, and never lets one exceed the broker's).
 */
export function syncLimits(sync: z.infer<typeof SyncConfig>): SyncLimits {
  if (sync.brokerLimits === 'aws-iot-core') {
    return {
      maxMessageBytes: Math.min(sync.maxMessageBytes, AWS_IOT_CORE_LIMITS.maxMessageBytes),
      maxInFlightBatches: Math.min(sync.maxInFlightBatches, AWS_IOT_CORE_LIMITS.maxInFlightBatches),
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
