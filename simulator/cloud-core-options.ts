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

/** Options of `CloudCore.start` (cloud-core.ts). */
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
  /**
   * Run as one of several cloud core instances (issue 16): the uplinks are subscribed as the MQTT
   * shared subscription `$share/<group>/…` (Mosquitto, for MQTT 3.1.1 and 5 clients), so the
   * broker hands each message to one instance of the group, and `ledgerFile` (required then) is
   * opened shared: the instances book keys in that one file, where the first to insert a key wins
   * it and the others answer `duplicate`. Each instance needs every device registered.
   */
  shareGroup?: string;
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
