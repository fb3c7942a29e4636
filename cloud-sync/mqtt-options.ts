/**
 * The options and the health report of an MQTT session (mqtt-session.ts), and the pure helpers
 * that turn an endpoint URL into MQTT.js connection options. No `mqtt` import here: only
 * mqtt-session.ts talks to MQTT.js (architecture.md §1).
 */

/** A last-will message (MQTT 3.1.1 §3.1.2.5–3.1.2.7). */
export interface MqttWill {
  topic: string;
  payload: Buffer | string;
  /** Default 1. */
  qos?: 0 | 1;
  /** Default true: the status topic is retained (architecture.md §5). */
  retain?: boolean;
}

/** TLS material for `mqtts://` brokers (AWS IoT Core uses X.509 client certificates). */
export interface MqttTlsOptions {
  /** PEM CA bundle that signed the broker's certificate. */
  ca?: string | Buffer | (string | Buffer)[];
  /** PEM client certificate. */
  cert?: string | Buffer;
  /** PEM private key of the client certificate. */
  key?: string | Buffer;
  /** Default true; false only for tests against a self-signed broker. */
  rejectUnauthorized?: boolean;
  /** Server name for SNI when connecting by IP. */
  servername?: string;
}

/** Options of `MqttSession` (mqtt-session.ts). Units in the names. */
export interface MqttSessionOptions {
  /** Broker URL: `mqtt://host:port` or `mqtts://host:port`. Give this or `urls`. */
  url?: string;
  /**
   * Ordered broker endpoints (the nodes of one cluster, issue 16), same form as `url`; the first
   * is tried first, then the next one after every lost connection or failed attempt. Wins over
   * `url` when both are given.
   */
  urls?: readonly string[];
  /** Client id; the device id for agents (architecture.md §5). */
  clientId: string;
  /** Persistent session when false (the default, MQTT 3.1.1 §3.1.2.4). */
  clean?: boolean;
  /** 4 = MQTT 3.1.1 (default), 5 = MQTT 5.0. */
  protocolVersion?: 4 | 5;
  /**
   * Keep-alive in seconds (MQTT 3.1.1 §3.1.2.10); default 5, for a store LAN. MQTT.js sends a
   * PINGREQ after `keepaliveSeconds` without an acknowledgement from the broker and closes the
   * connection at 1.5 × `keepaliveSeconds` without one. (AWS IoT Core raises a keep-alive below 30
   * on its side; the client still pings at this pace.)
   */
  keepaliveSeconds?: number;
  /**
   * How long to wait for the PINGRESP (or any packet) after a PINGREQ before the connection is
   * taken as dead and dropped, in ms; default 2000. With the defaults a silent partition (no FIN,
   * no RST) is noticed within `keepaliveSeconds × 1000 + pingTimeoutMs` = 7 s of the last packet
   * from the broker, and never later than MQTT.js's own 1.5 × keep-alive.
   */
  pingTimeoutMs?: number;
  /**
   * The first delay before a reconnect attempt in ms (the base of the backoff); default 1000;
   * 0 disables reconnection.
   */
  reconnectPeriodMs?: number;
  /** Cap of the reconnect backoff before jitter, ms; default 30000 (at least `reconnectPeriodMs`). */
  reconnectMaxMs?: number;
  /** Fraction 0–1 by which a reconnect delay is stretched at most (jitter); default 0.5. */
  reconnectJitterRatio?: number;
  /** Uniform random numbers in [0, 1) for the jitter; injected by tests. */
  random?: () => number;
  /** Time to wait for CONNACK in ms; default 10000. */
  connectTimeoutMs?: number;
  /** Last will; a function is evaluated before every connect attempt. See also `setWill()`. */
  will?: MqttWill | (() => MqttWill);
  username?: string;
  password?: string | Buffer;
  /** TLS options passed through for `mqtts://` URLs. */
  tls?: MqttTlsOptions;
}

/**
 * Why a connection that was up ended:
 * - `ping_timeout` — no PINGRESP within `pingTimeoutMs`, or MQTT.js's keep-alive timeout: a
 *   silent partition (the broker or the path to it went quiet without FIN or RST);
 * - `reset` — a socket error (ECONNRESET, EPIPE, …): the path or the broker dropped it;
 * - `closed` — the broker closed it (FIN, a DISCONNECT, a broker restart);
 * - `ended` — `MqttSession.end` was called.
 */
export type LinkLossReason = 'ping_timeout' | 'reset' | 'closed' | 'ended';

/**
 * The link's health, for `/v1/status`, metrics and logs (issue 10). Durations in ms; instants as
 * ISO 8601 UTC text, never as epoch ms: a 13-digit number is PAN-shaped (ISO/IEC 7812-1 length,
 * Luhn-valid one time in ten), so the leak sweeps of API answers would flag it at random.
 */
export interface LinkHealth {
  keepaliveSeconds: number;
  pingTimeoutMs: number;
  /** The longest a silent partition goes unnoticed after the last packet from the broker, ms. */
  noticeWithinMs: number;
  /** Connections lost since start, by reason. */
  losses: Record<LinkLossReason, number>;
  /** The last loss: when, why, and how long the broker had been silent when it was noticed. */
  lastLoss?: { at: string; reason: LinkLossReason; silentForMs: number };
  /** The endpoint in use (connected) or being tried (issue 16). */
  endpoint: string;
  /** Every configured endpoint, in order. */
  endpoints: string[];
  /** Connections made to another endpoint than the previous connection's, since start. */
  failovers: number;
  /** Reconnect attempts since start (every endpoint). */
  reconnectAttempts: number;
  /** The last failover: when the new connection came up, from where, to where, how long the link was down (ms). */
  lastFailover?: { at: string; from: string; to: string; downForMs: number };
}

/**
 * The MQTT.js client options an {@link MqttSessionOptions} gives (the structural subset of
 * MQTT.js's `IClientOptions` this project sets; mqtt-session.ts adds the will and the store).
 */
export interface MqttClientOptions {
  clientId: string;
  clean: boolean;
  protocolVersion: 4 | 5;
  /** Seconds. */
  keepalive: number;
  /** Always 0: the session reconnects itself, to the next endpoint with backoff. */
  reconnectPeriod: 0;
  /** Ms. */
  connectTimeout: number;
  resubscribe: false;
  queueQoSZero: false;
  username?: string;
  password?: string | Buffer;
  ca?: string | Buffer | string[] | Buffer[];
  cert?: string | Buffer;
  key?: string | Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** The MQTT.js client options of a session, with the defaults of {@link MqttSessionOptions}. */
export function clientOptions(options: MqttSessionOptions): MqttClientOptions {
  const mqttOptions: MqttClientOptions = {
    clientId: options.clientId,
    clean: options.clean ?? false,
    protocolVersion: options.protocolVersion ?? 4,
    keepalive: options.keepaliveSeconds ?? 5,
    // The session reconnects itself, to the next endpoint with backoff (mqtt-session.ts).
    reconnectPeriod: 0,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    // We subscribe ourselves on every CONNACK; MQTT.js's own resubscribe would double it.
    resubscribe: false,
    // Never queue while offline (architecture.md §5); publish() also checks `connected` first.
    queueQoSZero: false,
  };
  if (options.username !== undefined) mqttOptions.username = options.username;
  if (options.password !== undefined) mqttOptions.password = options.password;
  const tls = options.tls;
  if (tls?.ca !== undefined) mqttOptions.ca = tls.ca as string | Buffer | string[] | Buffer[];
  if (tls?.cert !== undefined) mqttOptions.cert = tls.cert;
  if (tls?.key !== undefined) mqttOptions.key = tls.key;
  if (tls?.rejectUnauthorized !== undefined)
    mqttOptions.rejectUnauthorized = tls.rejectUnauthorized;
  if (tls?.servername !== undefined) mqttOptions.servername = tls.servername;
  return mqttOptions;
}

/**
 * The MQTT.js connection options (`protocol`, `host`, `hostname`, `port`) of one endpoint URL
 * `mqtt[s]://host[:port]`; the port defaults to 1883 (mqtt) or 8883 (mqtts).
 */
export function endpointOptions(url: string): {
  protocol: 'mqtt' | 'mqtts';
  host: string;
  hostname: string;
  port: number;
} {
  const parsed = new URL(url);
  const protocol = parsed.protocol === 'mqtts:' ? 'mqtts' : 'mqtt';
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port === '' ? (protocol === 'mqtts' ? 8883 : 1883) : Number(parsed.port);
  return { protocol, host, hostname: host, port };
}

/**
 * Turns Nagle's algorithm off on an MQTT.js stream when it is a TCP or TLS socket (a WebSocket
 * stream has no such switch; it is left alone).
 */
export function setNoDelay(stream: unknown): void {
  const socket = stream as { setNoDelay?: (noDelay?: boolean) => unknown } | undefined;
  if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
}
