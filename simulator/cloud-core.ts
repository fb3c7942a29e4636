/**
 * The cloud core simulator (architecture.md §7): the other end of the agent's MQTT sync, as a product for
 * developers and tests.
 *
 * ```
 *  {p}/+/up/records ──▶ verify (device key of the topic) ──▶ RecordsBatch schema ──▶ per record:
 *                         dedupe by idempotency key ─┬─ known → duplicate + ORIGINAL outcome
 *                                                    └─ new   → open sealed card (vault key)
 *                                                               → decide (test cards, amounts)
 *  {p}/{d}/down/acks ◀── signed by the cloud key ◀── faults (drop, delay, duplicate, reorder)
 *  {p}/+/up/auth    ──▶ same decision ──▶ {p}/{d}/down/auth
 *  {p}/+/status     ──▶ verified, kept per device
 * ```
 *
 * Uplinks arrive over MQTT (one subscription, or the `$share` group of several instances), or,
 * with `amqp`, as deliveries of a quorum queue that several instances consume on RabbitMQ
 * (cloud-amqp.ts); a delivery is acknowledged once its answer is published.
 *
 * The ledger logic (decisions, dedupe, voids, batch answers and the ledger faults) is the pure
 * {@link CloudBook} (cloud-book.ts); this class is its MQTT shell: it verifies, parses, calls the
 * book and signs and sends the answers, with the transport faults (lost, late, duplicated and
 * reordered acks and authorization responses).
 *
 * It uses the same zod schemas and envelope code as the agent (cloud-sync/), so the two sides
 * cannot drift apart, and the same {@link MqttSession} (only cloud-sync/mqtt-session.ts imports
 * `mqtt`).
 *
 * The decision rules are the book's (DEFAULT_DECISION_RULES, cloud-book-types.ts). Options,
 * events and transport faults are in cloud-core-options.ts.
 *
 * PCI: the PAN exists only inside `decide()` as the string returned by the injected opener and
 * is never logged, stored, counted or put in an ack.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { AgentError, isAgentError } from '../common/agent-error.js';
import { type Clock, type TimerHandle, isoAt, systemClock } from '../common/clock.js';
import {
  type EnvelopeSigner,
  keyId,
  openEnvelope,
  signEnvelope,
  signerKeyId,
} from '../cloud-sync/envelope.js';
import {
  LEDGER_FAULT_KEYS,
  checkCloudCoreOptions,
  NO_TRANSPORT_FAULTS,
  type CloudCoreEvents,
  type CloudCoreOptions,
  type CloudFaults,
  type TransportFaults,
} from './cloud-core-options.js';
import { BookQueue } from './book-queue.js';
import { CloudBook } from './cloud-book.js';
import { AmqpLink } from './cloud-amqp.js';
import {
  NO_LEDGER_FAULTS,
  SILENT_LOG,
  type CloudCoreCounters,
  type CloudRecordEntry,
  type LedgerFaults,
} from './cloud-book-types.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import {
  type AckResult,
  type Acks,
  AcksSchema,
  AuthRequestSchema,
  AuthResponseSchema,
  type Command,
  type CommandBody,
  CommandSchema,
  DEFAULT_TOPIC_PREFIX,
  RecordsBatchSchema,
  type Status,
  StatusSchema,
  cloudTopicFilters,
  parseTopic,
  topics,
} from '../cloud-sync/schemas.js';
import type { SyncLogger } from '../cloud-sync/sync-worker.js';

export type {
  CloudAmqpOptions,
  CloudCoreEvents,
  CloudCoreOptions,
  CloudFaults,
} from './cloud-core-options.js';
export {
  DEFAULT_DECISION_RULES,
  type AmountRule,
  type CloudCoreCounters,
  type CloudRecordEntry,
  type DecisionRules,
  type OpenedCard,
} from './cloud-book-types.js';

/** An uplink settled at once (no answer to wait for). */
const SETTLED = Promise.resolve(true);

/** Distinct reasons kept by {@link CloudCore.unsettledReasons}; later ones count as `other`. */
export const MAX_UNSETTLED_REASONS = 16;

/**
 * A failure as a short reason without per-message details: its code, and the message of its
 * cause (the broker's or SQLite's words) rather than its own (which names the topic).
 */
function reasonOf(error: unknown): string {
  if (isAgentError(error)) {
    const cause = error.cause instanceof Error ? error.cause.message : undefined;
    return `${error.code} ${cause ?? error.reason}`.slice(0, 160);
  }
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return `${typeof code === 'string' ? `${code} ` : ''}${message}`.slice(0, 160);
}

interface HeldAck {
  topic: string;
  payload: Buffer;
  /** Settles the uplink's promise (cloud-amqp.ts acknowledges its delivery then). */
  done: (published: boolean) => void;
}

/** The cloud core simulator; see the file header. */
export class CloudCore extends EventEmitter<CloudCoreEvents> {
  readonly prefix: string;
  // The MQTT session, or the AMQP link that carries both directions (cloud-amqp.ts).
  #session: MqttSession | AmqpLink;
  #signer: EnvelopeSigner;
  #clock: Clock;
  #log: SyncLogger;
  #devices = new Map<string, Map<string, Uint8Array>>();
  // The ledger logic (cloud-book.ts); its ledger is in a SQLite file when `ledgerFile` is given.
  #book: CloudBook;
  #bookQueue = new BookQueue(
    (requests) => this.#book.applyMessages(requests),
    (error, messages) => {
      this.#counters.commitsFailed += messages;
      this.#unsettled(`ledger commit failed: ${reasonOf(error)}`, messages);
      this.#log.warn({ err: error, messages }, 'cloud core ledger commit failed; not answered');
    },
  );
  /** Why uplinks were left unsettled (given back / resent), by reason; see unsettledReasons(). */
  #unsettledReasons = new Map<string, number>();
  #status = new Map<string, Status>();
  #faults: TransportFaults = { ...NO_TRANSPORT_FAULTS };
  #held = new Map<string, { acks: HeldAck[]; timer: TimerHandle | undefined }>();
  #timers = new Set<TimerHandle>();
  get #counters(): CloudCoreCounters {
    return this.#book.counters;
  }

  private constructor(options: CloudCoreOptions) {
    super();
    this.prefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.#signer = { ...options.signer, kid: signerKeyId(options.signer) };
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? SILENT_LOG;
    this.#book = new CloudBook({
      openSealed: options.openSealed,
      rules: options.rules,
      clock: this.#clock,
      logger: this.#log,
      ledgerFile: options.ledgerFile,
      sharedLedger: options.shareGroup !== undefined || options.amqp !== undefined,
    });
    for (const device of options.devices ?? [])
      this.registerDevice(device.deviceId, device.publicKey);
    const session =
      options.amqp === undefined
        ? new MqttSession({
            url: options.brokerUrl ?? '',
            ...(options.brokerUrls === undefined ? {} : { urls: options.brokerUrls }),
            clientId: options.clientId ?? 'cloud-core-sim',
            clean: false,
            reconnectPeriodMs: options.reconnectPeriodMs ?? 1000,
            ...(options.reconnectMaxMs === undefined
              ? {}
              : { reconnectMaxMs: options.reconnectMaxMs }),
          })
        : new AmqpLink({
            ...options.amqp,
            prefix: this.prefix,
            logger: this.#log,
            onUplink: (topic, payload) => this.#handle(topic, payload),
          });
    this.#session = session;
    if (session instanceof MqttSession)
      session.on('message', (topic, payload) => void this.#handle(topic, payload));
    // The session reports every failed reconnect attempt; the link event only the changes.
    let up = false;
    const link = session as EventEmitter<{ connect: unknown[]; disconnect: unknown[] }>;
    link.on('connect', () => {
      if (!up) this.emit('link', 'connected');
      up = true;
    });
    link.on('disconnect', () => {
      if (up) this.emit('link', 'disconnected');
      up = false;
    });
    (session as EventEmitter<{ error: [AgentError] }>).on('error', (error) =>
      this.#log.warn({ code: error.code, err: error }, 'cloud core broker link'),
    );
  }

  /**
   * Connects to the broker, subscribes the uplinks of every device (with `amqp`: declares, binds
   * and consumes the shared quorum queue) and (by default) waits for the first connection.
   *
   * @throws AgentError POS301 when the broker is not reachable within `connectTimeoutMs`; Error
   *   on options that cannot run together (checkCloudCoreOptions, cloud-core-options.ts).
   */
  static async start(options: CloudCoreOptions): Promise<CloudCore> {
    checkCloudCoreOptions(options);
    const core = new CloudCore(options);
    const session = core.#session;
    try {
      if (session instanceof AmqpLink) await session.start();
      else {
        const filters = cloudTopicFilters(core.prefix);
        const share = options.shareGroup === undefined ? '' : `$share/${options.shareGroup}/`;
        await session.subscribe(
          [filters.records, filters.auth, filters.status].map((f) => `${share}${f}`),
        );
        session.connect();
      }
      const waitMs = options.connectTimeoutMs ?? 10_000;
      if (waitMs > 0) await core.#session.whenConnected(waitMs);
    } catch (error) {
      // Not started: the link and the ledger file are closed, not left open.
      await core.stop().catch(() => undefined);
      throw error;
    }
    return core;
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.#session.connected;
  }

  /** Waits for a connection (after a broker restart). @throws AgentError POS301 on timeout. */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    return this.#session.whenConnected(timeoutMs);
  }

  /**
   * Registers (another) Ed25519 public key of a device; its uplinks must be signed with one of its
   * keys (a device cannot sign for another). Returns the key id.
   *
   * @throws AgentError POS304 bad device id; POS315 key not 32 bytes.
   */
  registerDevice(deviceId: string, publicKey: Uint8Array): string {
    topics(this.prefix, deviceId);
    const kid = keyId(publicKey);
    const keys = this.#devices.get(deviceId) ?? new Map<string, Uint8Array>();
    keys.set(kid, Uint8Array.from(publicKey));
    this.#devices.set(deviceId, keys);
    return kid;
  }

  /** Changes fault switches (others keep their values); `setFaults({})` after `clearFaults()` resets. */
  setFaults(faults: Partial<CloudFaults>): void {
    const ledger: Partial<LedgerFaults> = {};
    const transport: Partial<TransportFaults> = {};
    for (const [name, value] of Object.entries(faults)) {
      if ((LEDGER_FAULT_KEYS as string[]).includes(name)) {
        (ledger as Record<string, unknown>)[name] = value;
      } else (transport as Record<string, unknown>)[name] = value;
    }
    this.#book.setFaults(ledger);
    this.#faults = { ...this.#faults, ...transport };
  }

  /** Turns every fault off and flushes held (reordered) acks. */
  clearFaults(): void {
    this.#faults = { ...NO_TRANSPORT_FAULTS };
    this.#book.setFaults({ ...NO_LEDGER_FAULTS });
    for (const deviceId of this.#held.keys()) this.#flushHeld(deviceId);
  }

  /** The current fault switches (a copy). */
  get faults(): CloudFaults {
    return { ...this.#faults, ...this.#book.faults };
  }

  /** The AMQP link in the `amqp` mode (its delivery counters), else undefined. */
  get amqp(): AmqpLink | undefined {
    return this.#session instanceof AmqpLink ? this.#session : undefined;
  }

  /** The ledger logic under this shell (cloud-book.ts). */
  get book(): CloudBook {
    return this.#book;
  }

  /** Every idempotency key seen, with its single effect and how often it arrived. */
  records(): ReadonlyMap<string, CloudRecordEntry> {
    return this.#book.records();
  }

  /** The idempotency keys seen, in first-arrival order. */
  keys(): string[] {
    return this.#book.keys();
  }

  /**
   * Keys that would be charged: approved and not voided. "Never two charges per key" holds by
   * construction (one entry per key); this is what a test compares with the store's view.
   */
  charges(): string[] {
    return this.#book.charges();
  }

  /** Counters (a copy). */
  counters(): CloudCoreCounters {
    return { ...this.#counters };
  }

  /**
   * Why uplinks were left unsettled since the start — an AMQP delivery given back, an MQTT sender
   * left to resend — as `reason → messages` (at most {@link MAX_UNSETTLED_REASONS} reasons, the
   * rest under `other`). Reasons: `ledger commit failed: …`, `answer not published: …`.
   */
  unsettledReasons(): Record<string, number> {
    return Object.fromEntries(this.#unsettledReasons);
  }

  #unsettled(reason: string, messages = 1): void {
    const key =
      this.#unsettledReasons.has(reason) || this.#unsettledReasons.size < MAX_UNSETTLED_REASONS
        ? reason
        : 'other';
    this.#unsettledReasons.set(key, (this.#unsettledReasons.get(key) ?? 0) + messages);
  }

  /** The last verified status of a device. */
  deviceStatus(deviceId: string): Status | undefined {
    return this.#status.get(deviceId);
  }

  /**
   * Publishes a signed command to a device's `down/commands`.
   *
   * @param ttlMs — lifetime, default 60000 ms.
   * @throws AgentError POS302 when not connected; POS313 when the command fails the schema.
   */
  async sendCommand(
    deviceId: string,
    command: CommandBody,
    options: { ttlMs?: number; id?: string } = {},
  ): Promise<Command> {
    const now = this.#clock.now();
    const message: Command = {
      id: options.id ?? randomUUID(),
      deviceId,
      issuedAt: isoAt(now),
      expiresAt: isoAt(now + (options.ttlMs ?? 60_000)),
      command,
    };
    await this.#session.publish(
      topics(this.prefix, deviceId).commands,
      signEnvelope(message, this.#signer, CommandSchema),
      { qos: 1 },
    );
    return message;
  }

  /** Publishes a raw payload on a device topic (tests: forged or unsigned downlinks). */
  async publishRaw(topic: string, payload: Buffer | string): Promise<void> {
    await this.#session.publish(topic, payload, { qos: 1 });
  }

  /** Stops: cancels delayed/held acks and closes the session. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) this.#clock.clearTimeout(timer);
    this.#timers.clear();
    for (const held of this.#held.values()) {
      if (held.timer !== undefined) this.#clock.clearTimeout(held.timer);
    }
    this.#held.clear();
    await this.#session.end();
    this.#book.close();
  }

  // -------------------------------------------------------------------------------------------

  #keysFor(deviceId: string): (kid: string) => Uint8Array | undefined {
    return (kid) => this.#devices.get(deviceId)?.get(kid);
  }

  #refuse(topic: string, error: unknown): void {
    this.#counters.refused += 1;
    const agentError = isAgentError(error)
      ? error
      : new AgentError('POS310', `Uplink on ${topic} could not be processed: ${String(error)}`, {
          cause: error,
        });
    this.#log.warn({ topic, code: agentError.code, reason: agentError.message }, 'uplink refused');
    this.emit('refused', { topic, error: agentError });
  }

  /**
   * Handles one uplink. Resolves when it is settled: booked (committed) and its answer published,
   * refused, or its answer dropped by a fault switch (true); false when an answer could not be
   * published. The AMQP link acknowledges the delivery only then (cloud-amqp.ts).
   */
  #handle(topic: string, payload: Buffer): Promise<boolean> {
    const parsed = parseTopic(this.prefix, topic);
    if (parsed === undefined) return SETTLED;
    try {
      if (parsed.kind === 'records') return this.#handleRecords(parsed.deviceId, topic, payload);
      if (parsed.kind === 'auth') return this.#handleAuth(parsed.deviceId, payload);
      if (parsed.kind === 'status') this.#handleStatus(parsed.deviceId, payload);
    } catch (error) {
      this.#refuse(topic, error);
    }
    return SETTLED;
  }

  #handleStatus(deviceId: string, payload: Buffer): void {
    if (payload.length === 0) return; // a cleared retained message
    const status = openEnvelope(payload, { keys: this.#keysFor(deviceId) }, StatusSchema);
    this.#status.set(deviceId, status);
    this.emit('status', { deviceId, status });
  }

  #handleRecords(deviceId: string, topic: string, payload: Buffer): Promise<boolean> {
    let batch;
    try {
      batch = openEnvelope(payload, { keys: this.#keysFor(deviceId) }, RecordsBatchSchema);
    } catch (error) {
      this.#refuse(topic, error);
      // Signed by the device but not to the contract: reject its keys so they go to `dead`
      // on the agent instead of being resent for ever.
      return isAgentError(error, 'POS313')
        ? this.#rejectMalformed(deviceId, payload, error)
        : SETTLED;
    }
    this.#counters.batches += 1;
    const id = batch.batch;
    // Booked with the messages that arrived together, in one commit (book-queue.ts). When that
    // commit fails (e.g. SQLITE_BUSY between instances), nothing was booked: not settled, so an
    // AMQP delivery goes back to the queue; over MQTT the agent resends.
    return this.#bookQueue.book({ deviceId, records: batch.records }).then((results) => {
      if (results === undefined) return false;
      this.emit('batch', { deviceId, batch: id, results });
      return this.#sendAcks(deviceId, { batch: id, results });
    });
  }

  #rejectMalformed(deviceId: string, payload: Buffer, error: AgentError): Promise<boolean> {
    try {
      const body = JSON.parse((JSON.parse(payload.toString('utf8')) as { body: string }).body) as {
        batch?: unknown;
        records?: unknown;
      };
      if (typeof body.batch !== 'string' || !Array.isArray(body.records)) return SETTLED;
      const results: AckResult[] = [];
      for (const r of body.records as { key?: unknown }[]) {
        if (typeof r?.key === 'string') {
          results.push({
            key: r.key,
            status: 'rejected',
            code: 'POS313',
            reason: error.reason.slice(0, 512),
          });
        }
      }
      this.#counters.rejected += results.length;
      if (results.length > 0) return this.#sendAcks(deviceId, { batch: body.batch, results });
    } catch {
      // Not even loosely readable: nothing to acknowledge.
    }
    return SETTLED;
  }

  #handleAuth(deviceId: string, payload: Buffer): Promise<boolean> {
    const request = openEnvelope(payload, { keys: this.#keysFor(deviceId) }, AuthRequestSchema);
    let response;
    try {
      response = this.#book.authorize(deviceId, request);
    } catch (error) {
      // Nothing was booked (the ledger commit failed): not settled, as for records.
      this.#counters.commitsFailed += 1;
      this.#unsettled(`ledger commit failed: ${reasonOf(error)}`);
      this.#log.warn({ err: error, deviceId }, 'cloud core ledger commit failed; not answered');
      return Promise.resolve(false);
    }
    if (this.#faults.dropAuthResponses) return SETTLED;
    const send = (): Promise<boolean> =>
      this.#session
        .publish(
          topics(this.prefix, deviceId).authResponse,
          signEnvelope(response, this.#signer, AuthResponseSchema),
          { qos: 1 },
        )
        .then(
          () => ((this.#counters.authResponses += 1), true),
          (error: unknown) => this.#notPublished(error),
        );
    return this.#later(send, this.#faults.authResponseDelayMs);
  }

  #sendAcks(deviceId: string, acks: Acks): Promise<boolean> {
    const topic = topics(this.prefix, deviceId).acks;
    const payload = signEnvelope(acks, this.#signer, AcksSchema);
    const faults = this.#faults;
    if (faults.dropAcks === true || (typeof faults.dropAcks === 'number' && faults.dropAcks > 0)) {
      if (typeof faults.dropAcks === 'number') this.#faults.dropAcks = faults.dropAcks - 1;
      this.#counters.acksDropped += 1;
      this.#log.debug({ deviceId, batch: acks.batch }, 'fault: ack dropped');
      return SETTLED;
    }
    if (faults.reorderWindow > 1) {
      const held = this.#held.get(deviceId) ?? { acks: [], timer: undefined };
      this.#held.set(deviceId, held);
      const published = new Promise<boolean>((done) => held.acks.push({ topic, payload, done }));
      if (held.acks.length >= faults.reorderWindow) this.#flushHeld(deviceId);
      else if (held.timer === undefined) {
        held.timer = this.#clock.setTimeout(() => {
          held.timer = undefined;
          this.#flushHeld(deviceId);
        }, faults.reorderFlushMs);
      }
      return published;
    }
    return this.#deliver({ topic, payload });
  }

  #flushHeld(deviceId: string): void {
    const held = this.#held.get(deviceId);
    if (held === undefined) return;
    if (held.timer !== undefined) this.#clock.clearTimeout(held.timer);
    this.#held.delete(deviceId);
    for (const ack of held.acks.reverse()) void this.#deliver(ack).then(ack.done);
  }

  /** An answer that could not be published: counted, its reason kept; `false` (not settled). */
  #notPublished(error: unknown): false {
    this.#counters.acksFailed += 1;
    this.#unsettled(`answer not published: ${reasonOf(error)}`);
    this.#log.warn({ err: error }, 'cloud core answer not published; the uplink is not settled');
    return false;
  }

  /** Publishes an ack (twice with `duplicateAcks`); true when every copy was published. */
  #deliver(ack: Omit<HeldAck, 'done'>): Promise<boolean> {
    const copies = this.#faults.duplicateAcks ? 2 : 1;
    const send = async (): Promise<boolean> => {
      const sent: Promise<boolean>[] = [];
      for (let i = 0; i < copies; i++) {
        sent.push(
          this.#session.publish(ack.topic, ack.payload, { qos: 1 }).then(
            () => ((this.#counters.acksSent += 1), true),
            (error: unknown) => this.#notPublished(error),
          ),
        );
      }
      return (await Promise.all(sent)).every(Boolean);
    };
    return this.#later(send, this.#faults.ackDelayMs);
  }

  /**
   * Runs `send` now, or after `delayMs` on the injected clock (a late-answer fault switch). The
   * promise stays pending when `stop()` cancels the timer: the answer was never sent.
   */
  #later(send: () => Promise<boolean>, delayMs: number): Promise<boolean> {
    if (delayMs <= 0) return send();
    return new Promise((resolve) => {
      const timer = this.#clock.setTimeout(() => {
        this.#timers.delete(timer);
        void send().then(resolve);
      }, delayMs);
      this.#timers.add(timer);
    });
  }
}
