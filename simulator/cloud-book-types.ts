/**
 * The shapes of the cloud core simulator's ledger (cloud-book.ts) and its MQTT shell
 * (cloud-core.ts): decision rules, what the ledger knows per idempotency key, counters, ledger
 * faults, the book's options. Types and constants only (and a zeroed counter set).
 */
import type { Clock } from '../common/clock.js';
import type { AckResult } from '../cloud-sync/schemas.js';
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

/**
 * The default decision rules (each replaceable through `rules`):
 * - PAN 4000000000000002 (architecture.md §7 declined test card) → declined, decline code `05` (do not
 *   honour). The PAN comes from the sealed card data opened with the vault key; when a record has
 *   no sealed data (SRED or no `openSealed`), first 6 + last 4 are compared instead.
 * - `amountMinor` ending in 51 (e.g. 1051 = 10.51) → declined `51` (insufficient funds).
 * - Everything else → approved with a 6-character auth code derived from the idempotency key.
 * - Sealed data that cannot be opened → the record is rejected (`code: 'sealed_unreadable'`).
 * - `void` records are accepted without an outcome.
 */
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
  /** The payment's `createdAt` on the terminal (ISO 8601 UTC), for batch membership. */
  createdAt?: string;
  /** Card brand of the payment, for the batch totals per brand. */
  brand?: string;
  /** The terminal batch that claimed this payment at its close (issue 17). */
  batchId?: string;
  /** Fault `lose-record`: acknowledged, but the ledger lost it (a resend books it again). */
  lost?: boolean;
  /** Fault `decline-after-offline`: acknowledged approved, booked declined afterwards. */
  declinedLater?: boolean;
}

/** Counters of the cloud core (the ledger's and the MQTT shell's). */
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
  /** Ack publishes that failed (not connected, or refused by the broker: a publisher-confirm nack). */
  acksFailed: number;
  /**
   * Uplink messages not booked because their ledger commit failed (the group commit of
   * book-queue.ts: every message of the failed group counts). Not answered: given back / resent.
   */
  commitsFailed: number;
  /** Payloads refused (bad envelope, signature, unknown key, schema). */
  refused: number;
  /** New keys that arrived with a lower seq than one already seen from the device. */
  outOfOrder: number;
  /** Authorization requests received. */
  authRequests: number;
  /** Authorization responses published. */
  authResponses: number;
}

/** Every counter at zero, for a new ledger. */
export function zeroCounters(): CloudCoreCounters {
  return {
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
    commitsFailed: 0,
    refused: 0,
    outOfOrder: 0,
    authRequests: 0,
    authResponses: 0,
  };
}

/** The ledger's fault switches (see the file comment); counts count down as they act. */
export interface LedgerFaults {
  /** Decline every new payment with this ISO 8583 code; undefined follows the rules. */
  declineCode: string | undefined;
  /** The next N payment records are acknowledged, then lost by the ledger. */
  loseRecords: number;
  /** The next payment record is booked with its amount changed by this many minor units (0 off). */
  alterAmountMinor: number;
  /** The next N offline approvals are acknowledged approved and booked declined. */
  declineAfterOffline: number;
  /** The next N void records are acknowledged but not applied. */
  ignoreVoids: number;
  /** A charge of this many minor units the terminal never made appears at its next batch report. */
  phantomChargeMinor: number;
}

/** Every ledger fault off. */
export const NO_LEDGER_FAULTS: LedgerFaults = {
  declineCode: undefined,
  loseRecords: 0,
  alterAmountMinor: 0,
  declineAfterOffline: 0,
  ignoreVoids: 0,
  phantomChargeMinor: 0,
};

/** The cloud's answer to a batch record (the `batch` of its ack result). */
export type BatchAnswer = NonNullable<AckResult['batch']>;

/** Options of {@link CloudBook}. */
export interface CloudBookOptions {
  /** Opens sealed card data with the vault's X25519 secret key (drivers' `openSealedCard`). */
  openSealed?: ((sealedBase64: string) => OpenedCard) | undefined;
  /** Decision rules; default {@link DEFAULT_DECISION_RULES}. */
  rules?: Partial<DecisionRules> | undefined;
  clock?: Clock | undefined;
  logger?: SyncLogger | undefined;
  /** SQLite file of the ledger (created); default in memory (see cloud-ledger.ts). */
  ledgerFile?: string | undefined;
  /** Several instances book keys in `ledgerFile` at once (cloud-ledger.ts `DurableMap`). */
  sharedLedger?: boolean | undefined;
}

/** A logger that drops everything: the default of the ledger and the MQTT shell. */
export const SILENT_LOG: SyncLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
