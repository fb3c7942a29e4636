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
 * It uses the same zod schemas and envelope code as the agent (cloud-sync/), so the two sides
 * cannot drift apart, and the same {@link MqttSession} (only cloud-sync/mqtt-session.ts imports
 * `mqtt`).
 *
 * Decision rules (defaults, all replaceable through `rules`):
 * - PAN 4000000000000002 (architecture.md §7 declined test card) → declined, decline code `05` (do not
 *   honour). The PAN comes from the sealed card data opened with the vault key; when a record has
 *   no sealed data (SRED or no `openSealed`), first 6 + last 4 are compared instead.
 * - `amountMinor` ending in 51 (e.g. 1051 = 10.51) → declined `51` (insufficient funds).
 * - Everything else → approved with a 6-character auth code derived from the idempotency key.
 * - Sealed data that cannot be opened → the record is rejected (`code: 'sealed_unreadable'`).
 * - `void` records are accepted without an outcome.
 *
 * PCI: the PAN exists only inside `decide()` as the string returned by the injected opener and
 * is never logged, stored, counted or put in an ack.
 */
import { createHash, randomUUID } from 'node:crypto';
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
import { CloudLedger, type DurableMap } from './cloud-ledger.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import {
  type AckResult,
  type Acks,
  AcksSchema,
  type AuthRequest,
  AuthRequestSchema,
  type AuthResponse,
  AuthResponseSchema,
  type Command,
  type CommandBody,
  CommandSchema,
  DEFAULT_TOPIC_PREFIX,
  type OutboxRecord,
  RecordsBatchSchema,
  type Status,
  StatusSchema,
  cloudTopicFilters,
  parseTopic,
  topics,
} from '../cloud-sync/schemas.js';
import type { SyncLogger } from '../cloud-sync/sync-worker.js';

/** What the vault sees in sealed card data (the drivers' `openSealedCard` gives more; we need these). */
export interface OpenedCard {
  /** The PAN as ASCII digits. Never logged. */
  panDigits: string;
  /** Expiry YYMM. */
  expiry: string;
}

/** One amount rule: when `matches`, the payment is declined with `declineCode`. */
export interface AmountRule {
  /** Short name for logs and docs, e.g. `ends-in-51`. */
  name: string;
  /** `amountMinor` — integer minor units; `currency` — ISO 4217 alpha. */
  matches(amountMinor: number, currency: string): boolean;
  /** ISO 8583 response code, e.g. `51`. */
  declineCode: string;
}

/** How the simulator approves or declines. */
export interface DecisionRules {
  /** PAN → decline code. */
  declinedPans: ReadonlyMap<string, string>;
  /** Checked in order after the PAN rules. */
  amountRules: readonly AmountRule[];
}

/** The defaults documented in the file header. */
export const DEFAULT_DECISION_RULES: DecisionRules = {
  declinedPans: new Map([['4000000000000002', '05']]),
  amountRules: [
    {
      name: 'ends-in-51',
      matches: (amountMinor) => amountMinor % 100 === 51,
      declineCode: '51',
    },
  ],
};

/** Fault switches for acknowledgements (architecture.md §7: lost, late, duplicated, reordered). */
export interface CloudFaults {
  /** Drop acks: `true` every one, a number the next N (counting down), false none. */
  dropAcks: boolean | number;
  /** Delay every ack by this many ms (late acks). */
  ackDelayMs: number;
  /** Send every ack message twice. */
  duplicateAcks: boolean;
  /** Hold acks per device until this many are collected, then send them in reverse order; ≤ 1 off. */
  reorderWindow: number;
  /** How long a partly filled reorder window waits before it is flushed (reversed), ms. */
  reorderFlushMs: number;
  /** Drop authorization responses (the agent's online authorization times out). */
  dropAuthResponses: boolean;
  /**
   * Answer authorization requests this many ms late (after the agent's timeout: the ambiguous
   * case — the cloud approved, the agent never heard). The decision is made at once.
   */
  authResponseDelayMs: number;
  /**
   * Decline every payment the cloud sees for the first time with this ISO 8583 response code
   * (e.g. `05`), whatever the card and amount; `undefined` follows the decision rules.
   */
  declineCode: string | undefined;
}

const NO_FAULTS: CloudFaults = {
  dropAcks: false,
  ackDelayMs: 0,
  duplicateAcks: false,
  reorderWindow: 0,
  reorderFlushMs: 100,
  dropAuthResponses: false,
  authResponseDelayMs: 0,
  declineCode: undefined,
};

/** What the cloud core knows about one idempotency key. */
export interface CloudRecordEntry {
  key: string;
  deviceId: string;
  type: 'payment' | 'void';
  seq: number | undefined;
  paymentId: string;
  amountMinor: number;
  currency: string;
  /** The effect applied once: accepted (with outcome for payments) or rejected. */
  status: 'accepted' | 'rejected';
  outcome?: 'approved' | 'declined';
  authCode?: string;
  declineCode?: string;
  code?: string;
  /**
   * A void record undid this key: whatever was approved under it is not charged (the store
   * canceled it, or declined it locally after an ambiguous authorization timeout).
   */
  voided?: boolean;
  /** How many times the key arrived (records and auth requests; resends included). */
  count: number;
  /** Epoch ms of the first arrival. */
  firstSeenAt: number;
  /** Epoch ms of the last arrival. */
  lastSeenAt: number;
}

/** Counters of the cloud core. */
export interface CloudCoreCounters {
  /** Verified record batches received. */
  batches: number;
  /** Records received (resends included). */
  records: number;
  /** Keys applied for the first time. */
  accepted: number;
  /** Records answered `duplicate`. */
  duplicates: number;
  /** Records answered `rejected`. */
  rejected: number;
  approved: number;
  declined: number;
  /** Ack messages published (duplicates included). */
  acksSent: number;
  /** Ack messages dropped by the fault switch. */
  acksDropped: number;
  /** Ack publishes that failed (not connected). */
  acksFailed: number;
  /** Payloads refused (bad envelope, signature, unknown key, schema). */
  refused: number;
  /** New keys that arrived with a lower seq than one already seen from the device. */
  outOfOrder: number;
  /** Authorization requests received. */
  authRequests: number;
  /** Authorization responses published. */
  authResponses: number;
}

/** Options of {@link CloudCore.start}. */
export interface CloudCoreOptions {
  /** `mqtt://host:port`. */
  brokerUrl: string;
  /**
   * The broker cluster's nodes in order (issue 16); when given, the core fails over between
   * them like an agent (MqttSession `urls`) and `brokerUrl` is only the first one's name.
   */
  brokerUrls?: readonly string[];
  /** `{p}`; default `pos/v1`. */
  topicPrefix?: string;
  /** The cloud's Ed25519 key that signs downlinks (agents pin its public key). */
  signer: EnvelopeSigner;
  /** Opens sealed card data with the vault's X25519 secret key (drivers' `openSealedCard`). */
  openSealed?: (sealedBase64: string) => OpenedCard;
  /** Decision rules; default {@link DEFAULT_DECISION_RULES}. */
  rules?: Partial<DecisionRules>;
  /** MQTT client id; default `cloud-core-sim`. */
  clientId?: string;
  /** Reconnect period in ms (the backoff base); default 1000. */
  reconnectPeriodMs?: number;
  /** Reconnect backoff cap in ms; default MqttSession's 30000. */
  reconnectMaxMs?: number;
  /** Wait for the first connection in `start()`, ms; default 10000; 0 = do not wait. */
  connectTimeoutMs?: number;
  clock?: Clock;
  logger?: SyncLogger;
  /**
   * SQLite file of the ledger (created): what the cloud knows per idempotency key survives a
   * restart, so a resent record is answered `duplicate`, never charged twice. Default: in memory.
   */
  ledgerFile?: string;
}

/** Events of {@link CloudCore}. */
export interface CloudCoreEvents {
  /** A batch was processed (before faults are applied to its ack). */
  batch: [info: { deviceId: string; batch: string; results: AckResult[] }];
  /** The broker link went up or down (one event per change). */
  link: [state: 'connected' | 'disconnected'];
  /** An uplink was refused. */
  refused: [info: { topic: string; error: AgentError }];
  /** A verified status message arrived. */
  status: [info: { deviceId: string; status: Status }];
}

const silent: SyncLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

interface HeldAck {
  topic: string;
  payload: Buffer;
}

/** The cloud core simulator; see the file header. */
export class CloudCore extends EventEmitter<CloudCoreEvents> {
  readonly prefix: string;
  #session: MqttSession;
  #signer: EnvelopeSigner;
  #openSealed: ((sealedBase64: string) => OpenedCard) | undefined;
  #rules: DecisionRules;
  #clock: Clock;
  #log: SyncLogger;
  #devices = new Map<string, Map<string, Uint8Array>>();
  // The ledger (issue 10): in a SQLite file when `ledgerFile` is given, so dedupe survives a
  // restart; every in-place change of an entry is followed by a set() that writes it through.
  #ledger: CloudLedger<CloudRecordEntry, AckResult>;
  #records: DurableMap<CloudRecordEntry>;
  #voids: DurableMap<AckResult>;
  #lastSeq = new Map<string, number>();
  #status = new Map<string, Status>();
  #faults: CloudFaults = { ...NO_FAULTS };
  #held = new Map<string, { acks: HeldAck[]; timer: TimerHandle | undefined }>();
  #timers = new Set<TimerHandle>();
  #counters: CloudCoreCounters = {
    batches: 0,
    records: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    approved: 0,
    declined: 0,
    acksSent: 0,
    acksDropped: 0,
    acksFailed: 0,
    refused: 0,
    outOfOrder: 0,
    authRequests: 0,
    authResponses: 0,
  };

  private constructor(options: CloudCoreOptions) {
    super();
    this.prefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.#signer = { ...options.signer, kid: signerKeyId(options.signer) };
    this.#openSealed = options.openSealed;
    this.#rules = { ...DEFAULT_DECISION_RULES, ...options.rules };
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? silent;
    this.#ledger = new CloudLedger(options.ledgerFile);
    this.#records = this.#ledger.entries;
    this.#voids = this.#ledger.voids;
    this.#session = new MqttSession({
      url: options.brokerUrl,
      ...(options.brokerUrls === undefined ? {} : { urls: options.brokerUrls }),
      clientId: options.clientId ?? 'cloud-core-sim',
      clean: false,
      reconnectPeriodMs: options.reconnectPeriodMs ?? 1000,
      ...(options.reconnectMaxMs === undefined ? {} : { reconnectMaxMs: options.reconnectMaxMs }),
    });
    this.#session.on('message', (topic, payload) => this.#handle(topic, payload));
    // The session reports every failed reconnect attempt; the link event only the changes.
    let up = false;
    this.#session.on('connect', () => {
      if (!up) this.emit('link', 'connected');
      up = true;
    });
    this.#session.on('disconnect', () => {
      if (up) this.emit('link', 'disconnected');
      up = false;
    });
    this.#session.on('error', (error) =>
      this.#log.warn({ code: error.code, err: error }, 'cloud core broker link'),
    );
  }

  /**
   * Connects to the broker, subscribes the uplinks of every device and (by default) waits for
   * the first CONNACK.
   *
   * @throws AgentError POS301 when the broker is not reachable within `connectTimeoutMs`.
   */
  static async start(options: CloudCoreOptions): Promise<CloudCore> {
    const core = new CloudCore(options);
    const filters = cloudTopicFilters(core.prefix);
    await core.#session.subscribe([filters.records, filters.auth, filters.status]);
    core.#session.connect();
    const waitMs = options.connectTimeoutMs ?? 10_000;
    if (waitMs > 0) {
      try {
        await core.#session.whenConnected(waitMs);
      } catch (error) {
        await core.#session.end();
        throw error;
      }
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
    this.#faults = { ...this.#faults, ...faults };
  }

  /** Turns every fault off and flushes held (reordered) acks. */
  clearFaults(): void {
    this.#faults = { ...NO_FAULTS };
    for (const deviceId of this.#held.keys()) this.#flushHeld(deviceId);
  }

  /** The current fault switches (a copy). */
  get faults(): CloudFaults {
    return { ...this.#faults };
  }

  /** Every idempotency key seen, with its single effect and how often it arrived. */
  records(): ReadonlyMap<string, CloudRecordEntry> {
    return this.#records.asReadonlyMap();
  }

  /** The idempotency keys seen, in first-arrival order. */
  keys(): string[] {
    return [...this.#records.keys()];
  }

  /** Counters (a copy). */
  counters(): CloudCoreCounters {
    return { ...this.#counters };
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
    this.#ledger.close();
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

  #handle(topic: string, payload: Buffer): void {
    const parsed = parseTopic(this.prefix, topic);
    if (parsed === undefined) return;
    try {
      if (parsed.kind === 'records') this.#handleRecords(parsed.deviceId, topic, payload);
      else if (parsed.kind === 'auth') this.#handleAuth(parsed.deviceId, payload);
      else if (parsed.kind === 'status') this.#handleStatus(parsed.deviceId, payload);
    } catch (error) {
      this.#refuse(topic, error);
    }
  }

  #handleStatus(deviceId: string, payload: Buffer): void {
    if (payload.length === 0) return; // a cleared retained message
    const status = openEnvelope(payload, { keys: this.#keysFor(deviceId) }, StatusSchema);
    this.#status.set(deviceId, status);
    this.emit('status', { deviceId, status });
  }

  #handleRecords(deviceId: string, topic: string, payload: Buffer): void {
    let batch;
    try {
      batch = openEnvelope(payload, { keys: this.#keysFor(deviceId) }, RecordsBatchSchema);
    } catch (error) {
      this.#refuse(topic, error);
      // Signed by the device but not to the contract: reject its keys so they go to `dead`
      // on the agent instead of being resent for ever.
      if (isAgentError(error, 'POS313')) this.#rejectMalformed(deviceId, payload, error);
      return;
    }
    this.#counters.batches += 1;
    const results: AckResult[] = [];
    for (const record of batch.records) results.push(this.#applyRecord(deviceId, record));
    this.emit('batch', { deviceId, batch: batch.batch, results });
    this.#sendAcks(deviceId, { batch: batch.batch, results });
  }

  #rejectMalformed(deviceId: string, payload: Buffer, error: AgentError): void {
    try {
      const body = JSON.parse((JSON.parse(payload.toString('utf8')) as { body: string }).body) as {
        batch?: unknown;
        records?: unknown;
      };
      if (typeof body.batch !== 'string' || !Array.isArray(body.records)) return;
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
      if (results.length > 0) this.#sendAcks(deviceId, { batch: body.batch, results });
    } catch {
      // Not even loosely readable: nothing to acknowledge.
    }
  }

  /**
   * Keys that would be charged: approved and not voided. "Never two charges per key" holds by
   * construction (one entry per key); this is what a test compares with the store's view.
   */
  charges(): string[] {
    return [...this.#records.values()]
      .filter((e) => e.outcome === 'approved' && e.voided !== true)
      .map((e) => e.key);
  }

  /**
   * A void record: the payment under `record.key` (or, for a void with its own key, the payment
   * with the same device and payment id) is marked voided. Answered `accepted` with the
   * ORIGINAL outcome, so the agent can record what the cloud had done; a void for a key the cloud
   * never saw leaves a voided entry under that key, so a late authorization with it can never be
   * approved.
   */
  #applyVoid(deviceId: string, record: OutboxRecord): AckResult {
    const now = this.#clock.now();
    const known = this.#voids.get(record.key);
    if (known !== undefined) {
      this.#counters.duplicates += 1;
      return { ...known, status: 'duplicate' };
    }
    let target = this.#records.get(record.key);
    if (target === undefined) {
      target = [...this.#records.values()].find(
        (e) => e.deviceId === deviceId && e.paymentId === record.payment.id && e.type === 'payment',
      );
    }
    if (target === undefined) {
      target = {
        key: record.key,
        deviceId,
        type: 'void',
        seq: record.seq,
        paymentId: record.payment.id,
        amountMinor: record.payment.amountMinor,
        currency: record.payment.currency,
        status: 'accepted',
        count: 0,
        firstSeenAt: now,
        lastSeenAt: now,
      };
      this.#records.set(record.key, target);
    }
    target.voided = true;
    target.lastSeenAt = now;
    this.#records.set(target.key, target);
    this.#counters.accepted += 1;
    const result: AckResult = { key: record.key, status: 'accepted' };
    if (target.outcome !== undefined) result.outcome = target.outcome;
    if (target.authCode !== undefined) result.authCode = target.authCode;
    if (target.declineCode !== undefined) result.declineCode = target.declineCode;
    this.#voids.set(record.key, result);
    this.#log.info(
      { deviceId, idempotencyKey: record.key, voided: target.key, outcome: target.outcome },
      'cloud core voided a payment',
    );
    return result;
  }

  #applyRecord(deviceId: string, record: OutboxRecord): AckResult {
    this.#counters.records += 1;
    if (record.type === 'void') return this.#applyVoid(deviceId, record);
    const now = this.#clock.now();
    const known = this.#records.get(record.key);
    if (known !== undefined) {
      known.count += 1;
      known.lastSeenAt = now;
      if (known.seq === undefined) known.seq = record.seq;
      this.#records.set(known.key, known);
      this.#counters.duplicates += 1;
      return this.#resultOf(known, 'duplicate');
    }
    const lastSeq = this.#lastSeq.get(deviceId) ?? 0;
    if (record.seq <= lastSeq) this.#counters.outOfOrder += 1;
    else this.#lastSeq.set(deviceId, record.seq);
    const entry = this.#newEntry(deviceId, record, now);
    if (entry.status === 'accepted') this.#counters.accepted += 1;
    else this.#counters.rejected += 1;
    return this.#resultOf(entry, entry.status);
  }

  #newEntry(
    deviceId: string,
    record: Pick<OutboxRecord, 'key' | 'payment' | 'card' | 'sealed'> & {
      type?: 'payment' | 'void';
      seq?: number;
    },
    now: number,
  ): CloudRecordEntry {
    const entry: CloudRecordEntry = {
      key: record.key,
      deviceId,
      type: record.type ?? 'payment',
      seq: record.seq,
      paymentId: record.payment.id,
      amountMinor: record.payment.amountMinor,
      currency: record.payment.currency,
      status: 'accepted',
      count: 1,
      firstSeenAt: now,
      lastSeenAt: now,
    };
    if (entry.type === 'payment') {
      const decision = this.#decide(record);
      if ('rejected' in decision) {
        entry.status = 'rejected';
        entry.code = decision.rejected;
      } else {
        entry.outcome = decision.outcome;
        if (decision.outcome === 'approved') {
          entry.authCode = decision.authCode;
          this.#counters.approved += 1;
        } else {
          entry.declineCode = decision.declineCode;
          this.#counters.declined += 1;
        }
      }
    }
    this.#records.set(record.key, entry);
    this.#log.info(
      {
        deviceId,
        idempotencyKey: entry.key,
        paymentId: entry.paymentId,
        status: entry.status,
        outcome: entry.outcome,
        declineCode: entry.declineCode,
      },
      'cloud core applied a record',
    );
    return entry;
  }

  #resultOf(entry: CloudRecordEntry, status: AckResult['status']): AckResult {
    const result: AckResult = { key: entry.key, status };
    if (entry.status === 'rejected') {
      result.status = 'rejected';
      result.code = entry.code ?? 'rejected';
      result.reason = 'sealed card data could not be opened with the vault key';
    }
    if (entry.outcome !== undefined) result.outcome = entry.outcome;
    if (entry.authCode !== undefined) result.authCode = entry.authCode;
    if (entry.declineCode !== undefined) result.declineCode = entry.declineCode;
    return result;
  }

  /** Approve or decline; the PAN lives only in this function's scope. */
  #decide(
    record: Pick<OutboxRecord, 'key' | 'payment' | 'card' | 'sealed'>,
  ):
    | { outcome: 'approved'; authCode: string }
    | { outcome: 'declined'; declineCode: string }
    | { rejected: string } {
    let panDecline: string | undefined;
    if (record.sealed !== undefined && this.#openSealed !== undefined) {
      let opened: OpenedCard;
      try {
        opened = this.#openSealed(record.sealed);
      } catch {
        return { rejected: 'sealed_unreadable' };
      }
      panDecline = this.#rules.declinedPans.get(opened.panDigits);
    } else {
      for (const [pan, code] of this.#rules.declinedPans) {
        if (pan.startsWith(record.card.first6) && pan.endsWith(record.card.last4)) {
          panDecline = code;
          break;
        }
      }
    }
    if (panDecline !== undefined) return { outcome: 'declined', declineCode: panDecline };
    const forced = this.#faults.declineCode;
    if (forced !== undefined) return { outcome: 'declined', declineCode: forced };
    for (const rule of this.#rules.amountRules) {
      if (rule.matches(record.payment.amountMinor, record.payment.currency)) {
        return { outcome: 'declined', declineCode: rule.declineCode };
      }
    }
    const authCode = createHash('sha256')
      .update(record.key)
      .digest('hex')
      .slice(0, 6)
      .toUpperCase();
    return { outcome: 'approved', authCode };
  }

  #handleAuth(deviceId: string, payload: Buffer): void {
    const request: AuthRequest = openEnvelope(
      payload,
      { keys: this.#keysFor(deviceId) },
      AuthRequestSchema,
    );
    this.#counters.authRequests += 1;
    const now = this.#clock.now();
    let entry = this.#records.get(request.key);
    if (entry?.voided === true && entry.outcome === undefined) {
      // A void arrived first (the agent gave up on this key): never approve it now.
      entry.outcome = 'declined';
      entry.declineCode = 'voided';
    }
    if (entry === undefined) {
      entry = this.#newEntry(deviceId, { ...request, type: 'payment' }, now);
      if (entry.status === 'accepted') this.#counters.accepted += 1;
      else this.#counters.rejected += 1;
    } else {
      entry.count += 1;
      entry.lastSeenAt = now;
      this.#records.set(entry.key, entry);
    }
    if (this.#faults.dropAuthResponses) return;
    const response: AuthResponse = {
      key: entry.key,
      outcome: entry.outcome ?? 'declined',
    };
    if (entry.authCode !== undefined) response.authCode = entry.authCode;
    if (entry.declineCode !== undefined) response.declineCode = entry.declineCode;
    else if (entry.outcome === undefined) response.declineCode = '96'; // system malfunction
    const send = (): void => {
      this.#session
        .publish(
          topics(this.prefix, deviceId).authResponse,
          signEnvelope(response, this.#signer, AuthResponseSchema),
          { qos: 1 },
        )
        .then(
          () => (this.#counters.authResponses += 1),
          () => (this.#counters.acksFailed += 1),
        );
    };
    this.#later(send, this.#faults.authResponseDelayMs);
  }

  #sendAcks(deviceId: string, acks: Acks): void {
    const topic = topics(this.prefix, deviceId).acks;
    const payload = signEnvelope(acks, this.#signer, AcksSchema);
    const faults = this.#faults;
    if (faults.dropAcks === true || (typeof faults.dropAcks === 'number' && faults.dropAcks > 0)) {
      if (typeof faults.dropAcks === 'number') this.#faults.dropAcks = faults.dropAcks - 1;
      this.#counters.acksDropped += 1;
      this.#log.debug({ deviceId, batch: acks.batch }, 'fault: ack dropped');
      return;
    }
    if (faults.reorderWindow > 1) {
      const held = this.#held.get(deviceId) ?? { acks: [], timer: undefined };
      this.#held.set(deviceId, held);
      held.acks.push({ topic, payload });
      if (held.acks.length >= faults.reorderWindow) this.#flushHeld(deviceId);
      else if (held.timer === undefined) {
        held.timer = this.#clock.setTimeout(() => {
          held.timer = undefined;
          this.#flushHeld(deviceId);
        }, faults.reorderFlushMs);
      }
      return;
    }
    this.#deliver({ topic, payload });
  }

  #flushHeld(deviceId: string): void {
    const held = this.#held.get(deviceId);
    if (held === undefined) return;
    if (held.timer !== undefined) this.#clock.clearTimeout(held.timer);
    this.#held.delete(deviceId);
    for (const ack of held.acks.reverse()) this.#deliver(ack);
  }

  #deliver(ack: HeldAck): void {
    const copies = this.#faults.duplicateAcks ? 2 : 1;
    const send = (): void => {
      for (let i = 0; i < copies; i++) {
        this.#session.publish(ack.topic, ack.payload, { qos: 1 }).then(
          () => (this.#counters.acksSent += 1),
          () => (this.#counters.acksFailed += 1),
        );
      }
    };
    this.#later(send, this.#faults.ackDelayMs);
  }

  /** Runs `send` now, or after `delayMs` on the injected clock (a late-answer fault switch). */
  #later(send: () => void, delayMs: number): void {
    if (delayMs <= 0) {
      send();
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(timer);
      send();
    }, delayMs);
    this.#timers.add(timer);
  }
}
