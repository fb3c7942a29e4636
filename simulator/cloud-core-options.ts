/**
 * The options, events and transport faults of the cloud core simulator's MQTT shell
 * (cloud-core.ts); the ledger's own faults are {@link LedgerFaults} (cloud-book-types.ts).
 */
import type { AgentError } from '../common/agent-error.js';
import type { Clock } from '../common/clock.js';
import type { EnvelopeSigner } from '../cloud-sync/envelope.js';
import type { AckResult, Status } from '../cloud-sync/schemas.js';
import type { SyncLogger } from '../cloud-sync/sync-worker.js';
import {
  NO_LEDGER_FAULTS,
  type DecisionRules,
  type LedgerFaults,
  type OpenedCard,
} from './cloud-book-types.js';

/**
 * Fault switches for acknowledgements (architecture.md §7: lost, late, duplicated, reordered),
 * and the ledger's own (decline code, lost / altered records, issue 17), which
 * {@link LedgerFaults} in simulator/cloud-book.ts lists once.
 */
export interface CloudFaults extends LedgerFaults {
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
}

/** Every transport fault off (the reorder flush at its default). */
export const NO_TRANSPORT_FAULTS = {
  dropAcks: false,
  ackDelayMs: 0,
  duplicateAcks: false,
  reorderWindow: 0,
  reorderFlushMs: 100,
  dropAuthResponses: false,
  authResponseDelayMs: 0,
};
/** The shell's own faults: {@link CloudFaults} without the ledger's. */
export type TransportFaults = Omit<CloudFaults, keyof LedgerFaults>;
/** The names of the ledger's faults, to split a {@link CloudFaults} between book and shell. */
export const LEDGER_FAULT_KEYS = Object.keys(NO_LEDGER_FAULTS) as (keyof LedgerFaults)[];

/**
 * The AMQP uplink mode of the cloud core (issue 16, RabbitMQ 3.10, whose MQTT plugin has no
 * `$share`): the instances are competing consumers on one quorum queue bound to the MQTT
 * plugin's topic exchange (simulator/cloud-amqp.ts).
 */
export interface CloudAmqpOptions {
  /**
   * `amqp://user:password@host:port[/vhost]` of one RabbitMQ node (the cluster script's
   * `amqp-urls`). The instance reconnects to this node with backoff when its link drops.
   */
  url: string;
  /**
   * The cluster's nodes in order (`url` is then only the first one's name): when the node in use
   * is lost and does not come back within a couple of retries, the link moves to the next one.
   */
  urls?: readonly string[];
  /**
   * The queue the instances share: declared durable with `x-queue-type: quorum` (replicated on
   * the cluster's nodes) and bound to the uplink routing keys of `exchange`.
   */
  queue: string;
  /** Deliveries an instance holds unacknowledged at once (AMQP basic.qos); default 16, 1–65535. */
  prefetch?: number;
  /** The topic exchange the MQTT plugin publishes to (`mqtt.exchange`); default `amq.topic`. */
  exchange?: string;
}

/** Options of `CloudCore.start` (cloud-core.ts). */
export interface CloudCoreOptions {
  /**
   * `mqtt://host:port`. Required unless `amqp` is given (then uplinks and downlinks both go over
   * AMQP and no MQTT connection is made).
   */
  brokerUrl?: string;
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
  /**
   * Run as one of several cloud core instances (issue 16): the uplinks are subscribed as the MQTT
   * shared subscription `$share/<group>/…` (Mosquitto, for MQTT 3.1.1 and 5 clients), so the
   * broker hands each message to one instance of the group, and `ledgerFile` (required then) is
   * opened shared: the instances book keys in that one file, where the first to insert a key wins
   * it and the others answer `duplicate`. Each instance needs every device registered.
   */
  shareGroup?: string;
  /**
   * Run as one of several instances consuming one AMQP quorum queue (issue 16; RabbitMQ):
   * uplinks arrive as deliveries acknowledged only after the ledger commit and the answer's
   * publisher confirm, so a killed instance's unacknowledged deliveries go to another instance;
   * answers are published to the topic exchange under the device's downlink routing key. Needs
   * `ledgerFile` (opened shared, as with `shareGroup`); excludes `shareGroup` and `brokerUrls`.
   */
  amqp?: CloudAmqpOptions;
  /**
   * Devices registered before the first uplink can arrive (as `registerDevice` after start): a
   * durable queue may hold a backlog that is delivered as soon as the instance consumes.
   */
  devices?: readonly { deviceId: string; publicKey: Uint8Array }[];
}

/**
 * Refuses option combinations `CloudCore.start` cannot run: a group of instances (`shareGroup`,
 * `amqp`) without the ledger file they share, a bad group name, AMQP with MQTT-only options, or
 * neither broker.
 *
 * @throws Error naming the option and the fix.
 */
export function checkCloudCoreOptions(options: CloudCoreOptions): void {
  if (options.shareGroup !== undefined && options.ledgerFile === undefined)
    throw new Error('CloudCore: shareGroup needs the ledgerFile the instances share');
  if (options.shareGroup !== undefined && !/^[A-Za-z0-9_-]+$/.test(options.shareGroup))
    throw new Error('CloudCore: shareGroup is letters, digits, _ and - only');
  if (options.amqp !== undefined) {
    if (options.ledgerFile === undefined)
      throw new Error('CloudCore: amqp needs the ledgerFile the instances share');
    if (options.shareGroup !== undefined || options.brokerUrls !== undefined)
      throw new Error('CloudCore: amqp excludes shareGroup and brokerUrls (uplinks are AMQP)');
  } else if (options.brokerUrl === undefined)
    throw new Error('CloudCore: brokerUrl (mqtt://…) or amqp ({ url, queue }) is required');
}

/** Events of `CloudCore` (cloud-core.ts). */
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
