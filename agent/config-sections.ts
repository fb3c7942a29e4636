/**
 * The sections of the agent's configuration (agent/config.ts assembles them into
 * `AgentConfigSchema`): the devices (PIN pad, card readers, card policy), the local API, the
 * offline policy, authorization, retention, batches and logging. The broker and sync sections are
 * in config-sync.ts. Every field documents its unit, range and default; defaults are written only
 * here, on the field (issue 15).
 */
import { z } from 'zod';

/** True for a serial device path (`/dev/…`), `tcp://host:port` or `mock://name`. */
function isDevicePath(p: string): boolean {
  return p.startsWith('/') || /^tcp:\/\/[^:/]+:\d{1,5}$/.test(p) || /^mock:\/\/[\w.-]+$/.test(p);
}

const devicePath = z.string().refine(isDevicePath, {
  message:
    'must be a serial device path (/dev/ttyUSB0, /dev/serial/by-id/…), tcp://host:port, or mock://name',
});

/** The PIN pad on the framed serial link (architecture.md §3.1, §3.2). */
export const PinPadConfig = z
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
export const CardReaderConfig = z
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
          isDevicePath(p),
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
export const CardConfig = z
  .object({
    /** Keep the cardholder name from track 1. Default false (PCI DSS 4.0.1 req. 3.2: keep only what is needed). */
    allowCardholderName: z.boolean().default(false),
    /** Accept a swipe of a chip card (service code 2xx/6xx) as fallback. Default false. */
    allowFallbackSwipe: z.boolean().default(false),
  })
  .strict();

/** The local API for the POS app (architecture.md §6). */
export const ApiConfig = z
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
export const OfflineConfig = z
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
export const AuthorizationConfig = z
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
export const RetentionConfig = z
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
export const BatchConfig = z
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
export const LogConfig = z
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
