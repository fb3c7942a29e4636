/**
 * The cloud core's AMQP link (issue 16): on RabbitMQ 3.10, whose MQTT plugin has no `$share`,
 * several cloud core instances are competing consumers on one quorum queue bound to the topic
 * exchange the MQTT plugin publishes to. One connection per instance (amqplib, with its
 * connection recovery: backoff and jitter; to the next of the cluster's nodes when the one in use
 * stays down), one confirm channel for both directions.
 *
 * ```
 *  agent ─MQTT─▶ pos/v1/{d}/up/records ─plugin─▶ amq.topic  rk pos.v1.{d}.up.records
 *                                                   │ bound: pos.v1.#.up.records / .up.auth / .status
 *                                                   ▼
 *                                quorum queue "cloud-core-uplinks" (durable, replicated)
 *                                  │ basic.consume, manual ack, prefetch N per instance
 *                 ┌────────────────┴──────────────┐
 *            instance 1                      instance 2        (one shared ledger file)
 *   verify → book (commit) → answer ─publish─▶ amq.topic rk pos.v1.{d}.down.acks ─plugin─▶ device
 *                                   ◀─confirm─
 *   basic.ack only now: a killed instance's unacknowledged deliveries go to another instance,
 *   which finds the keys it had booked and answers `duplicate` with the original outcome.
 * ```
 *
 * Topic ↔ routing key is the MQTT plugin's own translation (rabbit_mqtt_util:to_amqp/1 in 3.10):
 * `/` becomes `.`, nothing else changes. A device id may contain `.` (DeviceIdSchema), so the
 * bindings use `#` for the device level and an uplink's device id is what lies between the
 * prefix and the known tail.
 *
 * Answers are published without headers: the plugin delivers a message without
 * `x-mqtt-publish-qos` to a QoS 1 subscription at QoS 1, while a header of another AMQP type
 * than `byte` (amqplib writes numbers as integers) would fail its lookup.
 */
import { EventEmitter } from 'node:events';
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type RecoveringChannelModel,
} from 'amqplib';
import { type AgentError, isAgentError } from '../common/agent-error.js';
import { syncError } from '../cloud-sync/errors.js';
import type { SyncLogger } from '../cloud-sync/sync-options.js';
import { waitForConnect } from '../cloud-sync/wait-connect.js';
import type { CloudAmqpOptions } from './cloud-core-options.js';

/** The exchange the MQTT plugin publishes to by default (`mqtt.exchange`). */
export const MQTT_EXCHANGE = 'amq.topic';
/** Reconnects to the node in use before the link moves to the next of several `urls`. */
export const RETRIES_PER_NODE = 2;
/** Unacknowledged deliveries per instance by default. */
export const DEFAULT_PREFETCH = 16;

/** The first give-back of a delivery that could not be settled waits this long, ms … */
export const GIVE_BACK_INITIAL_MS = 100;
/** … doubling with every unsettled delivery in a row, up to this, ms (with ±50 % jitter). */
export const GIVE_BACK_MAX_MS = 5_000;

/** The uplink tails of the wire contract (architecture.md §5), as routing-key words. */
const UPLINK_TAILS = ['up.records', 'up.auth', 'status'] as const;

/** An MQTT topic (or filter, `+` → `*`) as the MQTT plugin's routing key. */
export function topicToRoutingKey(topic: string): string {
  return topic.replaceAll('/', '.').replaceAll('+', '*');
}

/**
 * The binding keys of the uplinks under `prefix` (`pos/v1` → `pos.v1.#.up.records`, …): `#`
 * for the device level, since a device id may contain `.`.
 */
export function uplinkBindingKeys(prefix: string): string[] {
  const p = topicToRoutingKey(prefix);
  return UPLINK_TAILS.map((tail) => `${p}.#.${tail}`);
}

/**
 * The MQTT topic an uplink routing key came from, or `undefined` when it is not an uplink under
 * `prefix` (the caller's parseTopic checks the device id).
 */
export function uplinkTopic(prefix: string, routingKey: string): string | undefined {
  const head = `${topicToRoutingKey(prefix)}.`;
  if (!routingKey.startsWith(head)) return undefined;
  for (const tail of UPLINK_TAILS) {
    if (!routingKey.endsWith(`.${tail}`)) continue;
    const deviceId = routingKey.slice(head.length, routingKey.length - tail.length - 1);
    if (deviceId.length === 0) return undefined;
    return `${prefix}/${deviceId}/${tail.replace('.', '/')}`;
  }
  return undefined;
}

/** What the link did with deliveries, since it started. */
export interface AmqpLinkCounters {
  /** Deliveries received. */
  deliveries: number;
  /** Of those, deliveries the broker marked redelivered (another consumer had them, unacked). */
  redelivered: number;
  /** Deliveries acknowledged (after the ledger commit and the answer's confirm). */
  acked: number;
  /**
   * Deliveries given back (`nack`, requeue) because their ledger commit failed or their answer
   * could not be published (CloudCore.unsettledReasons says which), each after a backoff.
   */
  requeued: number;
  /** Answers published and confirmed by the broker. */
  published: number;
  /** Connections made (1 + reconnects). */
  connects: number;
  /** Moves to the next node of `urls` after the one in use gave up. */
  failovers: number;
}

/**
 * Handles one uplink: resolves `true` when it is settled (booked and answered, or refused, or
 * answered by a fault switch that drops answers) and `false` when an answer could not be
 * published (the delivery goes back to the queue). Never rejects.
 */
export type UplinkHandler = (topic: string, payload: Buffer) => Promise<boolean>;

/** Events of {@link AmqpLink}, as MqttSession's that the cloud core listens to. */
export interface AmqpLinkEvents {
  connect: [];
  disconnect: [];
  error: [error: AgentError];
}

/**
 * One cloud core instance's AMQP link; see the file header. `start()` begins connecting;
 * `whenConnected()` waits until the queue is declared and bound and the consumer is on.
 */
export class AmqpLink extends EventEmitter<AmqpLinkEvents> {
  readonly queue: string;
  #options: Required<Omit<CloudAmqpOptions, 'urls'>>;
  /** The nodes, in order; `#index` is the one in use or being tried. */
  #urls: readonly string[];
  #index = 0;
  #prefix: string;
  #handler: UplinkHandler;
  #log: SyncLogger;
  #model: RecoveringChannelModel | undefined;
  #channel: ConfirmChannel | undefined;
  #ended = false;
  #lastError: Error | undefined;
  /** Deliveries left unsettled in a row (reset by a settled one): the give-back backoff. */
  #unsettledInRow = 0;
  #giveBacks = new Set<NodeJS.Timeout>();
  #counters: AmqpLinkCounters = {
    deliveries: 0,
    redelivered: 0,
    acked: 0,
    requeued: 0,
    published: 0,
    connects: 0,
    failovers: 0,
  };

  /**
   * @param options.prefix — the topic prefix `{p}` of the wire contract.
   * @param options.onUplink — the cloud core's handler of one uplink.
   * @throws Error when `prefetch` is not an integer in 1–65535 or `queue` is empty.
   */
  constructor(
    options: CloudAmqpOptions & { prefix: string; onUplink: UplinkHandler; logger: SyncLogger },
  ) {
    super();
    const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535)
      throw new Error(`CloudCore amqp.prefetch ${prefetch} is not an integer in 1–65535`);
    if (options.queue.length === 0 || options.queue.length > 255)
      throw new Error('CloudCore amqp.queue must be 1–255 characters (AMQP shortstr)');
    this.queue = options.queue;
    this.#urls =
      options.urls !== undefined && options.urls.length > 0 ? options.urls : [options.url];
    this.#options = {
      url: options.url,
      queue: options.queue,
      prefetch,
      exchange: options.exchange ?? MQTT_EXCHANGE,
    };
    this.#prefix = options.prefix;
    this.#handler = options.onUplink;
    this.#log = options.logger;
    // An unhandled 'error' event would crash the process; the cloud core listens too.
    this.on('error', () => undefined);
  }

  /**
   * Starts connecting. After a loss amqplib's recovery reconnects with backoff and jitter; with
   * several `urls`, after {@link RETRIES_PER_NODE} failed retries it moves to the next node.
   */
  async start(): Promise<void> {
    await this.#open();
  }

  /** A recovering connection to the node in use; the next node when it gives up. */
  async #open(): Promise<void> {
    const several = this.#urls.length > 1;
    const model = await amqp.connect(this.url, {
      recovery: {
        waitForConnect: false,
        initialDelay: 200,
        maxDelay: 5000,
        ...(several ? { maxRetries: RETRIES_PER_NODE } : {}),
        setup: (m: ChannelModel) => this.#setup(m),
      },
    });
    this.#model = model;
    if (this.#ended) {
      await model.close().catch(() => undefined);
      return;
    }
    model.on('connect', () => {
      this.#counters.connects += 1;
      this.emit('connect');
    });
    model.on('disconnect', (error: Error) => {
      this.#channel = undefined;
      this.#lastError = error;
      this.emit('disconnect');
    });
    // A socket error (ECONNRESET when the node dies) comes before the close that reconnects;
    // unlistened, it would be thrown.
    model.on('error', (error: Error) => {
      this.#lastError = error;
      this.#log.warn({ err: error }, 'cloud core AMQP connection error');
    });
    model.on('connect-failed', (error: Error) => {
      this.#lastError = error;
      const failure = isAgentError(error)
        ? error
        : syncError(
            'POS301',
            `AMQP broker ${this.#where()} refused or unreachable: ${error.message}`,
            {
              cause: error,
            },
          );
      this.emit('error', failure);
    });
    model.on('reconnect-failed', () => {
      if (this.#ended) return;
      this.#index = (this.#index + 1) % this.#urls.length;
      this.#counters.failovers += 1;
      this.#log.warn({ node: this.#where() }, 'cloud core AMQP link moves to the next node');
      this.#open().catch((error: unknown) =>
        this.emit('error', syncError('POS301', `AMQP link to ${this.#where()}: ${String(error)}`)),
      );
    });
  }

  /** Declares the queue, binds it, and consumes; run by amqplib after every (re)connection. */
  async #setup(model: ChannelModel): Promise<void> {
    // amqplib listens to a new connection's errors only once this setup has succeeded: a socket
    // error meanwhile (ECONNRESET when the node dies while the queue is declared) would be
    // thrown and end the process. Setup then fails and recovery tries again.
    model.on('error', (error: Error) => {
      this.#lastError = error;
      this.#log.warn({ err: error }, 'cloud core AMQP connection error during set-up');
    });
    const channel = await model.createConfirmChannel();
    const { queue, exchange, prefetch } = this.#options;
    // A channel closed by the broker (ACCESS_REFUSED, PRECONDITION_FAILED) emits `error` as
    // well as rejecting the call; unlistened, it would be thrown.
    channel.on('error', (error: Error) =>
      this.#log.warn({ err: error, queue }, 'cloud core AMQP channel error'),
    );
    try {
      await channel.prefetch(prefetch);
      // Quorum: the queue (and what it holds) survives the loss of a minority of the nodes.
      await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      for (const key of uplinkBindingKeys(this.#prefix))
        await channel.bindQueue(queue, exchange, key);
      await channel.consume(queue, (message) => this.#deliver(channel, message), { noAck: false });
    } catch (error) {
      // amqplib's recovery closes this connection, reports `connect-failed` and tries again.
      throw syncError(
        'POS303',
        `AMQP queue "${queue}" on ${this.#where()} could not be declared, bound to ${exchange} or consumed: ${String(error)}; check the user's configure/write/read permissions on the queue and ${exchange}`,
        { cause: error },
      );
    }
    // A channel closed under a live connection (a broker-side error) does not reconnect by
    // itself: close the connection so amqplib's recovery makes a new one and consumes again.
    channel.on('close', () => {
      if (this.#channel === channel) this.#channel = undefined;
      if (!this.#ended) void model.close().catch(() => undefined);
    });
    this.#channel = channel;
  }

  /** One delivery: handled, then acknowledged on the channel it came on, or given back. */
  #deliver(channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      // basic.cancel from the broker (queue deleted, node lost): consume again on a new link.
      this.#log.warn({ queue: this.queue }, 'cloud core AMQP consumer cancelled by the broker');
      void channel.close().catch(() => undefined);
      return;
    }
    this.#counters.deliveries += 1;
    if (message.fields.redelivered) this.#counters.redelivered += 1;
    const topic = uplinkTopic(this.#prefix, message.fields.routingKey);
    const handled =
      topic === undefined ? Promise.resolve(true) : this.#handler(topic, message.content);
    void handled.then((settled) => {
      if (settled) {
        this.#unsettledInRow = 0;
        this.#settle(channel, message, true);
        return;
      }
      // Given back after a backoff, not at once: a cause that lasts (a broker refusing the
      // answer's publish while a node is down, a busy ledger) would otherwise turn the queue
      // into a loop of redeliveries at full speed (issue 16, fleet run C: 253,676 give-backs).
      // Meanwhile the delivery holds a prefetch slot, which slows this consumer down as well.
      const delayMs = this.#giveBackDelayMs();
      const timer = setTimeout(() => {
        this.#giveBacks.delete(timer);
        this.#settle(channel, message, false);
      }, delayMs);
      this.#giveBacks.add(timer);
    });
  }

  /** The backoff before the next give-back, ms: doubling per unsettled delivery in a row, jittered. */
  #giveBackDelayMs(): number {
    const base = Math.min(GIVE_BACK_MAX_MS, GIVE_BACK_INITIAL_MS * 2 ** this.#unsettledInRow);
    this.#unsettledInRow = Math.min(this.#unsettledInRow + 1, 32);
    return Math.round(base * (0.5 + Math.random()));
  }

  /** Acknowledges a delivery, or gives it back (requeue), on the channel it came on. */
  #settle(channel: Channel, message: ConsumeMessage, settled: boolean): void {
    // The channel may have died meanwhile: then the broker has requeued the delivery already.
    try {
      if (settled) {
        channel.ack(message);
        this.#counters.acked += 1;
      } else {
        channel.nack(message, false, true);
        this.#counters.requeued += 1;
      }
    } catch (error) {
      this.#log.debug({ err: error }, 'cloud core AMQP ack on a closed channel');
    }
  }

  /** The URL of the node in use or being tried. */
  get url(): string {
    return this.#urls[this.#index] ?? this.#options.url;
  }

  /** True while the consumer is on. */
  get connected(): boolean {
    return this.#channel !== undefined;
  }

  /** What the link did (a copy). */
  get counters(): AmqpLinkCounters {
    return { ...this.#counters };
  }

  /**
   * Waits until the queue is bound and consumed.
   *
   * @throws AgentError POS301 when that does not happen within `timeoutMs`; POS305 after `end()`.
   */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    if (this.#ended) return Promise.reject(syncError('POS305', 'AMQP link ended'));
    if (this.connected) return Promise.resolve();
    return waitForConnect(this, timeoutMs, () =>
      syncError(
        'POS301',
        `AMQP broker ${this.#where()} not reachable within ${timeoutMs} ms${this.#lastError ? ` (${this.#lastError.message})` : ''}: check that the node runs, the URL and the user's password`,
        { cause: this.#lastError },
      ),
    );
  }

  /**
   * Publishes an answer to the device's downlink topic (routing key of `topic`, persistent) and
   * resolves at the broker's publisher confirm.
   *
   * @throws AgentError POS302 when the link is down or the broker refuses (nack).
   */
  publish(topic: string, payload: Buffer | string, _options: { qos?: 0 | 1 } = {}): Promise<void> {
    const channel = this.#channel;
    if (channel === undefined)
      return Promise.reject(syncError('POS302', `AMQP link to ${this.#where()} is down: ${topic}`));
    const content = typeof payload === 'string' ? Buffer.from(payload) : payload;
    return new Promise((resolve, reject) => {
      try {
        channel.publish(
          this.#options.exchange,
          topicToRoutingKey(topic),
          content,
          { persistent: true },
          (error: unknown) => {
            if (error === null || error === undefined) {
              this.#counters.published += 1;
              resolve();
            } else
              reject(syncError('POS302', `AMQP publish to ${topic} refused`, { cause: error }));
          },
        );
      } catch (error) {
        reject(syncError('POS302', `AMQP publish to ${topic} failed`, { cause: error }));
      }
    });
  }

  /** Closes the connection: the broker gives unacknowledged deliveries to the other consumers. */
  async end(): Promise<void> {
    this.#ended = true;
    this.#channel = undefined;
    // Deliveries waiting to be given back go back with the connection's close.
    for (const timer of this.#giveBacks) clearTimeout(timer);
    this.#giveBacks.clear();
    await this.#model?.close().catch(() => undefined);
  }

  /** The node of the URL, without credentials (for messages). */
  #where(): string {
    try {
      const url = new URL(this.url);
      return `${url.protocol}//${url.host}`;
    } catch {
      return 'the AMQP URL';
    }
  }
}
