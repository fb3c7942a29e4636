/**
 * The MQTT session: the only file of the project that imports `mqtt` (architecture.md §1).
 *
 * Why this file is over ~500 lines (issue 15): the lint rule that keeps `mqtt` in this one file
 * keeps everything that holds an MQTT.js client here — the session's connect, health,
 * reconnect and publish, and the outgoing store that forgets. The options, the health report and
 * the pure endpoint helpers are in mqtt-options.ts.
 *
 * A thin, honest wrapper over MQTT.js:
 * - MQTT 3.1.1 by default (`protocolVersion: 4`), so it works on aedes, Mosquitto, Azure IoT Hub
 *   and AWS IoT Core alike.
 * - Persistent session (`clean: false`, MQTT 3.1.1 §3.1.2.4): the broker keeps the subscriptions
 *   and the QoS 1 messages for the device while it is away. We still subscribe again on every
 *   CONNACK, because a broker restart without persistence (or `sessionPresent = 0`) loses them.
 * - QoS 1 everywhere (at least once, MQTT 3.1.1 §4.3.2): {@link MqttSession.publish} resolves on
 *   PUBACK. A PUBACK only means the broker took the message; the sync worker waits for the cloud's
 *   own acknowledgement (architecture.md §5).
 * - No offline queue: architecture.md §5 forbids relying on the MQTT.js offline store (in memory, replayed
 *   one at a time, silently lossy past 65,535 messages). `publish` refuses with POS302 while not
 *   connected instead of queueing, and a publish still waiting for its PUBACK when the connection
 *   closes is rejected (POS302); the caller (the SQLite outbox) owns the retry. MQTT.js may still
 *   resend its in-flight PUBLISH with DUP=1 after a reconnect (MQTT 3.1.1 §4.4); the cloud dedupes.
 * - Last will (MQTT 3.1.1 §3.1.2.5): given as a value or as a function evaluated before every
 *   (re)connect, so a signed retained `offline` status carries a fresh timestamp.
 * - Several endpoints (issue 16): `urls` is an ordered list of the nodes of one broker cluster.
 *   The session reconnects itself (MQTT.js's own fixed-period reconnect is off): after a lost
 *   connection or a failed attempt it waits {@link backoffDelayMs} (base `reconnectPeriodMs`,
 *   doubling up to `reconnectMaxMs`, stretched by up to `reconnectJitterRatio` so a fleet that
 *   lost the same node does not come back in lock-step) and tries the NEXT endpoint of the list,
 *   round robin, with the same client id and persistent session. A resend after a failover is
 *   harmless: the cloud dedupes by idempotency key and the outbox waits for the cloud's own ack.
 */
import { EventEmitter } from 'node:events';
import mqtt from 'mqtt';
import type { IClientOptions, IStore, MqttClient } from 'mqtt';
import type { AgentError } from '../common/agent-error.js';
import { backoffDelayMs } from '../common/backoff.js';
import { syncError } from './errors.js';
import { waitForConnect } from './wait-connect.js';
import {
  clientOptions,
  endpointOptions,
  setNoDelay,
  type LinkHealth,
  type LinkLossReason,
  type MqttSessionOptions,
  type MqttWill,
} from './mqtt-options.js';

export {
  endpointOptions,
  setNoDelay,
  type LinkHealth,
  type LinkLossReason,
  type MqttSessionOptions,
  type MqttTlsOptions,
  type MqttWill,
} from './mqtt-options.js';

/**
 * MQTT.js's in-memory outgoing store (it holds QoS 1 PUBLISHes until their PUBACK) that can be
 * emptied: {@link MqttSession} forgets every unacknowledged publish when the connection closes,
 * so MQTT.js has nothing to replay at the next CONNACK.
 */
type StorePacket = Parameters<IStore['put']>[0];
type DoneCallback = Parameters<IStore['put']>[1];
type PacketCallback = Parameters<IStore['del']>[1];

class ForgetfulStore implements IStore {
  #inner = new mqtt.Store();

  put(packet: StorePacket, cb: DoneCallback): this {
    this.#inner.put(packet, cb);
    return this;
  }

  createStream(): ReturnType<IStore['createStream']> {
    return this.#inner.createStream();
  }

  del(packet: Pick<StorePacket, 'messageId'>, cb: PacketCallback): this {
    this.#inner.del(packet, cb);
    return this;
  }

  get(packet: Pick<StorePacket, 'messageId'>, cb: PacketCallback): this {
    this.#inner.get(packet, cb);
    return this;
  }

  close(cb: DoneCallback): void {
    this.#inner.close(cb);
  }

  /** Drops every stored packet. */
  forget(): void {
    this.#inner = new mqtt.Store();
  }
}

/** Events of {@link MqttSession}. */
export interface MqttSessionEvents {
  /** CONNACK received; `sessionPresent` per MQTT 3.1.1 §3.2.2.2. Subscriptions are already re-sent. */
  connect: [info: { sessionPresent: boolean }];
  /**
   * The connection closed or a connect attempt failed; reconnection follows unless `end()` was
   * called. `loss` is set when a connection that was up (CONNACK received) ended.
   */
  disconnect: [info: { error?: Error; loss?: NonNullable<LinkHealth['lastLoss']> }];
  /** A PUBLISH from the broker. */
  message: [topic: string, payload: Buffer];
  /**
   * Connected to another endpoint than the previous connection's (issue 16); follows `connect`.
   * `downForMs` runs from the loss of the previous connection to this CONNACK.
   */
  failover: [info: NonNullable<LinkHealth['lastFailover']>];
  /** A connection-level error (POS301) or a failed re-subscribe (POS303); reconnection continues. */
  error: [error: AgentError];
}

/**
 * One MQTT connection with its subscriptions, reconnecting in the background.
 *
 * Lifecycle: `new MqttSession(options)` → (`setWill()`, `subscribe()`, listeners) → `connect()`
 * starts connecting and returns at once; `whenConnected()` waits for a CONNACK; `end()` closes for
 * good. Errors are `error` events; the session has a default no-op listener so an unhandled one
 * never crashes the process.
 */
export class MqttSession extends EventEmitter<MqttSessionEvents> {
  readonly clientId: string;
  /** The configured endpoints, in order (at least one). */
  readonly endpoints: readonly string[];
  /** Index in {@link endpoints} of the endpoint in use or being tried. */
  #index = 0;
  /** Index of the endpoint of the last connection that was up; -1 before the first. */
  #lastUpIndex = -1;
  #attempt = 0;
  #reconnectAttempts = 0;
  #failovers = 0;
  #lastFailover: LinkHealth['lastFailover'];
  #downSince = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #options: MqttSessionOptions;
  #will: MqttWill | (() => MqttWill) | undefined;
  #client: MqttClient | undefined;
  #subscriptions = new Set<string>();
  #ended = false;
  #pending = new Set<(error: AgentError) => void>();
  #lastError: Error | undefined;
  #losses: Record<LinkLossReason, number> = { ping_timeout: 0, reset: 0, closed: 0, ended: 0 };
  #lastLoss: LinkHealth['lastLoss'];
  /** Why the current connection is ending, when we know before the close. */
  #ending: LinkLossReason | undefined;
  #lastPacketAt = 0;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @throws Error when neither `url` nor `urls` names an endpoint (a programming error; the
   *   agent's config validation refuses that with POS501 first). Connecting starts with
   *   {@link MqttSession.connect}.
   */
  constructor(options: MqttSessionOptions) {
    super();
    const endpoints =
      options.urls !== undefined && options.urls.length > 0
        ? [...options.urls]
        : options.url !== undefined
          ? [options.url]
          : [];
    if (endpoints.length === 0) throw new Error('MqttSession needs url or a non-empty urls');
    this.endpoints = endpoints;
    this.clientId = options.clientId;
    this.#options = options;
    this.#will = options.will;
    this.on('error', () => undefined);
  }

  /**
   * Sets the last will used from the next CONNECT on (the sync worker sets a signed retained
   * `offline` status here). A function is evaluated before every connect attempt.
   */
  setWill(will: MqttWill | (() => MqttWill) | undefined): void {
    this.#will = will;
    if (this.#client !== undefined) {
      const fresh = this.#willPacket();
      if (fresh === undefined) delete this.#client.options.will;
      else this.#client.options.will = fresh;
    }
  }

  #willPacket(): IClientOptions['will'] {
    if (this.#will === undefined) return undefined;
    const will = typeof this.#will === 'function' ? this.#will() : this.#will;
    return {
      topic: will.topic,
      payload: typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload,
      qos: will.qos ?? 1,
      retain: will.retain ?? true,
    };
  }

  /**
   * Starts connecting in the background (idempotent) and returns at once.
   *
   * @throws AgentError POS305 after `end()`.
   */
  connect(): void {
    if (this.#ended) throw this.#closedError();
    if (this.#client !== undefined) return;
    const options = this.#options;
    const reconnectPeriodMs = options.reconnectPeriodMs ?? 1000;
    const mqttOptions: IClientOptions = clientOptions(options);
    const will = this.#willPacket();
    if (will !== undefined) mqttOptions.will = will;
    // MQTT.js replays unacknowledged QoS 1 publishes from its outgoing store on reconnect
    // (client.js _onConnect); architecture.md §5 forbids relying on it: a stale up/auth request or batch
    // would go out again behind the sync worker's back. The store is emptied on every close, the
    // publish promises are rejected with POS302, and the worker's own resend is the only one.
    const outgoingStore = new ForgetfulStore();
    mqttOptions.outgoingStore = outgoingStore;
    const client = mqtt.connect(this.endpoints[0] ?? '', mqttOptions);
    this.#client = client;
    client.on('reconnect', () => {
      // The will is fixed in CONNECT; refresh it so the retained offline status is current.
      const fresh = this.#willPacket();
      if (fresh !== undefined) client.options.will = fresh;
    });
    // Silent-partition detection (issue 10): after a PINGREQ, any packet from the broker within
    // pingTimeoutMs proves the path; none, and the socket is dropped so reconnection starts.
    const pingTimeoutMs = options.pingTimeoutMs ?? 2000;
    client.on('packetsend', (packet) => {
      if (packet.cmd !== 'pingreq' || this.#pingTimer !== undefined) return;
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = undefined;
        if (!client.connected) return;
        this.#ending = 'ping_timeout';
        this.#lastError = new Error(`no PINGRESP within ${pingTimeoutMs} ms`);
        client.stream.destroy();
      }, pingTimeoutMs);
    });
    client.on('packetreceive', () => {
      this.#lastPacketAt = Date.now();
      this.#clearPingTimer();
    });
    client.on('connect', (connack) => {
      // Nagle's algorithm holds a small PUBLISH (an up/auth request, a PUBACK) back until the
      // peer's delayed ACK, ~40 ms each way on Linux: a request/response over a default socket
      // took 88 ms on loopback, 0.5 ms with no-delay (issue 9). MQTT.js never sets it.
      setNoDelay(client.stream);
      this.#lastError = undefined;
      this.#ending = undefined;
      this.#attempt = 0;
      const previous = this.#lastUpIndex;
      this.#lastUpIndex = this.#index;
      if (previous !== -1 && previous !== this.#index) {
        this.#failovers += 1;
        const now = Date.now();
        this.#lastFailover = {
          at: new Date(now).toISOString(),
          from: this.endpoints[previous] ?? '',
          to: this.url,
          downForMs: Math.max(0, now - this.#downSince),
        };
        const failover = { ...this.#lastFailover };
        // After `connect` (below), so listeners see the link up.
        setImmediate(() => this.emit('failover', failover));
      }
      const url = this.url;
      const sessionPresent = connack.sessionPresent;
      if (this.#subscriptions.size === 0) {
        this.emit('connect', { sessionPresent });
        return;
      }
      client.subscribe([...this.#subscriptions], { qos: 1 }, (error, granted) => {
        const refused = granted?.filter((g) => g.qos === 128).map((g) => g.topic) ?? [];
        if (error || refused.length > 0) {
          this.emit(
            'error',
            syncError(
              'POS303',
              `Re-subscribing ${refused.length > 0 ? refused.join(', ') : [...this.#subscriptions].join(', ')} failed on ${url}: check that the broker's ACL allows client id ${this.clientId}`,
              { cause: error ?? undefined },
            ),
          );
        }
        this.emit('connect', { sessionPresent });
      });
    });
    let wasUp = false;
    client.on('connect', () => (wasUp = true));
    client.on('close', () => {
      this.#clearPingTimer();
      const url = this.url;
      let loss: LinkHealth['lastLoss'];
      if (wasUp) {
        wasUp = false;
        this.#downSince = Date.now();
        const reason: LinkLossReason =
          this.#ended && this.#ending === undefined
            ? 'ended'
            : (this.#ending ??
              (this.#lastError !== undefined && this.#lastError.message !== ''
                ? 'reset'
                : 'closed'));
        const now = Date.now();
        loss = {
          at: new Date(now).toISOString(),
          reason,
          silentForMs: Math.max(0, now - this.#lastPacketAt),
        };
        this.#losses[reason] += 1;
        this.#lastLoss = loss;
      }
      this.#ending = undefined;
      outgoingStore.forget();
      // Their callbacks too (else end() waits for PUBACKs that will never come): each publish
      // promise is rejected below with POS302.
      for (const [id, entry] of Object.entries(client.outgoing)) {
        if (entry.cmd !== 'publish' || entry.volatile) continue;
        delete client.outgoing[Number(id)];
        entry.cb(new Error('Connection closed before the PUBACK'));
      }
      const error = syncError(
        'POS302',
        `Connection to ${url} closed before the broker acknowledged the publish (no PUBACK); the outbox will resend it`,
      );
      for (const reject of this.#pending) reject(error);
      this.#pending.clear();
      this.emit('disconnect', {
        ...(this.#lastError === undefined ? {} : { error: this.#lastError }),
        ...(loss === undefined ? {} : { loss }),
      });
      if (!this.#ended && reconnectPeriodMs > 0) this.#scheduleReconnect(client, outgoingStore);
    });
    client.on('error', (cause) => {
      this.#lastError = cause;
      // MQTT.js's own keep-alive timeout (1.5 × keep-alive without an acknowledgement).
      if (cause.message === 'Keepalive timeout') this.#ending = 'ping_timeout';
      this.emit(
        'error',
        syncError(
          'POS301',
          `MQTT broker ${this.url} refused or failed the connection (${cause.message}): check the URL, that the broker runs, the TLS files and the credentials; reconnecting${this.endpoints.length > 1 ? ' to the next endpoint' : ''} with backoff from ${reconnectPeriodMs} ms`,
          { cause },
        ),
      );
    });
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
  }

  /**
   * Waits the backoff delay, then connects to the next endpoint (round robin) with the same
   * client, client id and persistent session.
   */
  #scheduleReconnect(client: MqttClient, outgoingStore: ForgetfulStore): void {
    if (this.#reconnectTimer !== undefined) return;
    const options = this.#options;
    const baseMs = options.reconnectPeriodMs ?? 1000;
    this.#attempt += 1;
    const delay = backoffDelayMs(
      this.#attempt,
      {
        baseMs,
        maxMs: Math.max(baseMs, options.reconnectMaxMs ?? 30_000),
        jitterRatio: options.reconnectJitterRatio ?? 0.5,
      },
      options.random,
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#ended) return;
      this.#index = (this.#index + 1) % this.endpoints.length;
      Object.assign(client.options, endpointOptions(this.url));
      this.#reconnectAttempts += 1;
      // reconnect() without a store would replace ours with MQTT.js's replaying one.
      client.reconnect({ outgoingStore });
    }, delay);
  }

  /** The endpoint in use (connected) or being tried. */
  get url(): string {
    return this.endpoints[this.#index] ?? '';
  }

  /** The link's health: settings, losses by reason, the last loss, endpoints (a copy). */
  health(): LinkHealth {
    const keepaliveSeconds = this.#options.keepaliveSeconds ?? 5;
    const pingTimeoutMs = this.#options.pingTimeoutMs ?? 2000;
    return {
      keepaliveSeconds,
      pingTimeoutMs,
      noticeWithinMs: Math.min(keepaliveSeconds * 1000 + pingTimeoutMs, keepaliveSeconds * 1500),
      losses: { ...this.#losses },
      ...(this.#lastLoss === undefined ? {} : { lastLoss: { ...this.#lastLoss } }),
      endpoint: this.url,
      endpoints: [...this.endpoints],
      failovers: this.#failovers,
      reconnectAttempts: this.#reconnectAttempts,
      ...(this.#lastFailover === undefined ? {} : { lastFailover: { ...this.#lastFailover } }),
    };
  }

  #clearPingTimer(): void {
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /** True between CONNACK and the close of the connection. */
  get connected(): boolean {
    return this.#client?.connected === true && !this.#ended;
  }

  /**
   * Resolves at the next (or current) CONNACK.
   *
   * @param timeoutMs — default 10000.
   * @throws AgentError POS301 when not connected within `timeoutMs`; POS305 after `end()`.
   */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    if (this.#ended) return Promise.reject(this.#closedError());
    if (this.connected) return Promise.resolve();
    return waitForConnect(this, timeoutMs, () =>
      syncError(
        'POS301',
        `MQTT broker ${this.url} not reachable within ${timeoutMs} ms${this.#lastError ? ` (${this.#lastError.message})` : ''}: check that the broker runs and the URL, TLS files and credentials`,
        { cause: this.#lastError },
      ),
    );
  }

  /**
   * Publishes with QoS 1 (default) and resolves when the broker's PUBACK arrives
   * (MQTT 3.1.1 §3.4 / §4.3.2). Never queues.
   *
   * @throws AgentError POS302 when not connected, when the connection closes before the PUBACK,
   *   or when the broker refuses; POS305 after `end()`.
   */
  publish(
    topic: string,
    payload: Buffer | string,
    options: { qos?: 0 | 1; retain?: boolean } = {},
  ): Promise<void> {
    if (this.#ended) return Promise.reject(this.#closedError());
    const client = this.#client;
    if (client === undefined || !client.connected) {
      return Promise.reject(
        syncError(
          'POS302',
          `Not connected to ${this.url}: the message for ${topic} was not queued; retry after reconnect (the outbox keeps it)`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error: AgentError): void => {
        if (settled) return;
        settled = true;
        this.#pending.delete(fail);
        reject(error);
      };
      this.#pending.add(fail);
      client.publish(
        topic,
        payload,
        { qos: options.qos ?? 1, retain: options.retain ?? false },
        (error) => {
          if (error) {
            fail(
              syncError(
                'POS302',
                `Publish to ${topic} failed on ${this.url} (${error.message}); the outbox will resend it`,
                { cause: error },
              ),
            );
            return;
          }
          if (settled) return;
          settled = true;
          this.#pending.delete(fail);
          resolve();
        },
      );
    });
  }

  /**
   * Adds topic filters (QoS 1) to the session; they are subscribed now when connected and again
   * on every CONNACK.
   *
   * @throws AgentError POS303 when the broker refuses a filter (SUBACK 0x80, MQTT 3.1.1 §3.9.3).
   */
  async subscribe(filters: string | readonly string[]): Promise<void> {
    if (this.#ended) throw this.#closedError();
    const list = typeof filters === 'string' ? [filters] : [...filters];
    for (const filter of list) this.#subscriptions.add(filter);
    const client = this.#client;
    if (client === undefined || !client.connected) return;
    await new Promise<void>((resolve, reject) => {
      client.subscribe(list, { qos: 1 }, (error, granted) => {
        const refused = granted?.filter((g) => g.qos === 128).map((g) => g.topic) ?? [];
        if (error || refused.length > 0) {
          reject(
            syncError(
              'POS303',
              `Subscribing ${refused.length > 0 ? refused.join(', ') : list.join(', ')} failed on ${this.url}${error ? ` (${error.message})` : ''}: check the broker's ACL for client id ${this.clientId}`,
              { cause: error ?? undefined },
            ),
          );
        } else resolve();
      });
    });
  }

  /**
   * Closes the session for good. `force` drops the connection without DISCONNECT, so the broker
   * publishes the last will (used by tests and by a crash-like shutdown).
   */
  async end(options: { force?: boolean } = {}): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const client = this.#client;
    if (client === undefined) return;
    await new Promise<void>((resolve) => client.end(options.force ?? false, {}, () => resolve()));
  }

  #closedError(): AgentError {
    return syncError(
      'POS305',
      `MQTT session ${this.clientId} on ${this.url} was ended: create a new session`,
    );
  }
}
