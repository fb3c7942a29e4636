/**
 * The types of store-and-forward and the enumerations they share with the schema.
 *
 * The SQL `CHECK` constraints in `migrations/` are the truth (architecture.md §4); the constants here
 * mirror them, and `test/store-forward/schema.test.ts` proves each list matches what SQLite
 * accepts. The allowed state changes are not listed here: `payment-machine.ts` derives
 * `PAYMENT_TRANSITIONS` from its transition function. Timestamps are ISO 8601 UTC text with milliseconds, `YYYY-MM-DDTHH:MM:SS.sssZ`
 * (`Date.prototype.toISOString`), in the database and in these types alike.
 */
import type { CardBrand, EntryMode } from '../common/card.js';
import type { PaymentState } from '../common/payment-states.js';
import type { BatchTotals, ReconState } from '../common/reconciliation.js';

export { PAYMENT_STATES, type PaymentState } from '../common/payment-states.js';

/**
 * Event types of the append-only log (the `events.type` CHECK of migration 1). What each does to
 * a payment's state is `payment-machine.ts`'s `transition`.
 */
export const EVENT_TYPES = [
  'payment_started',
  'card_read',
  'pin_requested',
  'authorization_requested',
  'approved',
  'declined',
  'payment_stored',
  'forwarded',
  'cloud_approved',
  'cloud_declined',
  'confirmed',
  'dead_lettered',
  'requeued',
  'canceled',
  'failed',
  'reversed',
] as const;
/** One of {@link EVENT_TYPES}. */
export type EventType = (typeof EVENT_TYPES)[number];

/** States from which no further outcome can change the money: final for the POS app. */
export const FINAL_STATES: readonly PaymentState[] = [
  'approved',
  'declined',
  'confirmed',
  'reversed',
  'canceled',
  'failed',
];

/** States a payment is in while the customer is still at the terminal (recovery looks at these). */
export const IN_PROGRESS_STATES: readonly PaymentState[] = [
  'awaiting_card',
  'card_read',
  'awaiting_pin',
  'authorizing',
];

/**
 * States of a payment that was approved (online or offline) and not undone: money is due unless
 * it is voided, so canceling it queues a `void` record for the cloud.
 */
export const APPROVED_STATES: readonly PaymentState[] = [
  'stored',
  'forwarded',
  'approved',
  'confirmed',
];

/**
 * States of an offline approval whose issuer outcome is not yet known (offline exposure and
 * forwarding-deadline warnings count payments with approval `offline` in these).
 */
export const OFFLINE_OPEN_STATES: readonly PaymentState[] = ['stored', 'forwarded', 'confirmed'];

/**
 * What the POS app chooses per payment (architecture.md §4): `prefer_online` (default) authorizes online
 * and falls back to the offline policy only when the cloud cannot be reached or does not answer
 * in time; `require_online` never approves offline; `force_offline` approves under the offline
 * policy without asking the cloud (e.g. a known-bad uplink).
 */
export const OFFLINE_MODES = ['prefer_online', 'require_online', 'force_offline'] as const;
/** One of {@link OFFLINE_MODES}. */
export type OfflineMode = (typeof OFFLINE_MODES)[number];

/** How a payment was approved: by the cloud during the payment, or by the agent's offline policy. */
export type Approval = 'online' | 'offline';

/** Card brands and entry modes: the one card vocabulary of common/card.ts (architecture.md §2 step 3). */
export { CARD_BRANDS, ENTRY_MODES, type CardBrand, type EntryMode } from '../common/card.js';

/**
 * Suffix of the outbox key of a `void` record that follows a payment record of the same payment:
 * `<idempotency key>.void` (a payment canceled after approval). The namespace is the agent's:
 * a client idempotency key ending in it is refused (POS213 in the store, 400 in the local API),
 * so no payment's own key can ever equal another payment's void key (they share the outbox's
 * primary key).
 */
export const VOID_KEY_SUFFIX = '.void';

/** Outbox record states: `pending → in_flight → acked`, or `dead` with a reason (architecture.md §4). */
export const OUTBOX_STATES = ['pending', 'in_flight', 'acked', 'dead'] as const;
/** One of {@link OUTBOX_STATES}. */
export type OutboxState = (typeof OUTBOX_STATES)[number];

/**
 * The card as the store keeps it: the token and what may be shown (architecture.md §2 step 3).
 * Never a PAN: the store cannot even hold one (the schema refuses a token that is not
 * `tok_` + 32 base32 characters, and digit columns are 6 and 4 long).
 */
export interface PaymentCard {
  /** `tok_` + 32 lower-case RFC 4648 base32 characters (HMAC-SHA-256 of the PAN, architecture.md §2). */
  token: string;
  brand: CardBrand;
  /** First 6 digits (the BIN). */
  first6: string;
  /** Last 4 digits. */
  last4: string;
  /** 1–12. */
  expiryMonth: number;
  /** Four digits, 2000–2099. */
  expiryYear: number;
  entryMode: EntryMode;
  /** 2–26 characters without digits (ISO/IEC 7813 track 1 name), only when config allows it. */
  cardholderName?: string;
}

/** Reader-encrypted card data passed through unopened (SRED / P2PE, architecture.md §2). */
export interface SredData {
  /** DUKPT key serial number, 20 (TDES) or 24 (AES) hex digits; stored upper-case. */
  ksnHex: string;
  /** The reader's ciphertext, an even number of hex digits (16–8192); stored upper-case. */
  ciphertextHex: string;
}

/**
 * Input of `PaymentStore.createPayment`. Optional fields also accept an explicit `undefined`
 * (zod-inferred objects carry it under `exactOptionalPropertyTypes`).
 */
export interface NewPayment {
  /** The POS app's `Idempotency-Key`, or a UUIDv7 the agent made: 1–255 printable ASCII, no space. */
  idempotencyKey: string;
  /** amountMinor — integer minor units of the ISO 4217 currency, 1 … 2^53−1. */
  amountMinor: number;
  /** ISO 4217 alphabetic code, three upper-case letters, e.g. `EUR`. */
  currency: string;
  /** The POS app's own reference, 1–128 characters; refused if it holds a PAN-shaped run. */
  reference?: string | undefined;
  /** The card boundary's `CardToken` fields (not `sealed`/`sred`, which are passed apart). */
  card: Omit<PaymentCard, 'cardholderName'> & { cardholderName?: string | undefined };
  /**
   * base64 of ephemeralPublicKey(32) ‖ nonce(24) ‖ nacl.box ciphertext (architecture.md §2 step 4),
   * 96–8192 characters (the wire's limit).
   */
  sealed?: string | undefined;
  sred?: SredData | undefined;
}

/** A payment as the `payments` projection holds it. */
export interface Payment {
  /** `pay_` + UUIDv7. */
  id: string;
  idempotencyKey: string;
  /** amountMinor — integer minor units of `currency`. */
  amountMinor: number;
  /** ISO 4217 alphabetic code. */
  currency: string;
  reference?: string;
  state: PaymentState;
  /**
   * The card; absent only before the card was read (`awaiting_card`, and a payment canceled or
   * failed before that), which the schema enforces.
   */
  card?: PaymentCard;
  /** `online`/`offline` once approved (kept through forwarding, confirmation and reversal). */
  approval?: Approval;
  /** What the POS app asked for; absent for payments of the walking skeleton's path. */
  offlineMode?: OfflineMode;
  /** Issuer authorization code, only in `approved`, `confirmed`, `reversed`. */
  authCode?: string;
  /**
   * Issuer, cloud or local decline code, only in `declined`; local codes name the reason:
   * `offline_amount_limit`, `offline_total_limit`, `offline_count_limit`, `online_pin_required`,
   * `offline_not_allowed`, `authorization_timeout`, `authorization_interrupted`.
   */
  declineCode?: string;
  /** Human-readable reason of a decline, reversal, cancelation or failure, 1–500 characters. */
  reason?: string;
  /** ISO 8601 UTC. */
  createdAt: string;
  /** ISO 8601 UTC of the payment's latest event. */
  updatedAt: string;
  /** ISO 8601 UTC by which a stored payment must have reached the cloud (architecture.md §4). */
  forwardingDeadlineAt?: string;
}

/**
 * One outbox record shaped for the wire (architecture.md §5 `up/records`); cloud-sync's zod schema is the
 * contract, this mirrors it. `type` is `'payment'`, or `'void'` for a payment the store did not
 * take (canceled after approval, or declined locally after an ambiguous authorization timeout):
 * the cloud must make sure nothing is charged for it.
 */
export interface OutboxRecord {
  /** The idempotency key of the payment; the cloud dedupes by it. */
  key: string;
  /** Per-device order, 1, 2, 3, …; the cloud applies a payment's records in this order. */
  seq: number;
  type: 'payment' | 'void';
  /** ISO 8601 UTC when the record was queued. */
  at: string;
  payment: {
    id: string;
    /** amountMinor — integer minor units of `currency`. */
    amountMinor: number;
    currency: string;
    reference?: string;
    createdAt: string;
  };
  card: Omit<PaymentCard, 'cardholderName'>;
  sealed?: string;
  sred?: SredData;
  /**
   * Hash of the payment's `payment_stored` event as unpadded base64url (43 characters); not hex,
   * whose digit runs can look like a PAN to a scanner (see cloud-sync's OutboxRecordSchema).
   */
  chain: string;
}

/**
 * One result of the cloud's acknowledgement (architecture.md §5 `down/acks`, plus the outcome);
 * structurally the same as cloud-sync's zod-inferred ack result.
 */
export interface AckResult {
  key: string;
  status: 'accepted' | 'duplicate' | 'rejected';
  /** The cloud's code for a rejection. */
  code?: string | undefined;
  /** The cloud's reason text; PAN-shaped runs are redacted before it is stored. */
  reason?: string | undefined;
  /** Authorization outcome; absent: the payment becomes `confirmed`. */
  outcome?: 'approved' | 'declined' | undefined;
  /** 1–16 letters and digits. */
  authCode?: string | undefined;
  /** 1–32 of letters, digits, `_ . -`. */
  declineCode?: string | undefined;
}

/**
 * What `applyAcks` did with one {@link AckResult}:
 * - `acked`: the record is acked, its sealed data deleted, the payment moved to `paymentState`;
 * - `dead_lettered`: the record is `dead` (rejected, or an acceptance that could not be applied —
 *   `detail` says why);
 * - `already`: the record was already final (`acked`, or `dead` for a rejection); nothing changed;
 * - `unknown_key`: no outbox record has this key; nothing changed;
 * - `invalid`: the result itself is malformed (`detail`); nothing changed.
 */
export interface AppliedAck {
  key: string;
  action: 'acked' | 'dead_lettered' | 'already' | 'unknown_key' | 'invalid';
  paymentId?: string;
  paymentState?: PaymentState;
  outboxState?: OutboxState;
  detail?: string;
}

/** One row of the event log. */
export interface StoredEvent {
  seq: number;
  paymentId: string;
  type: EventType;
  /** ISO 8601 UTC. */
  at: string;
  /** The parsed canonical JSON `data` object. */
  data: Record<string, unknown>;
  /** Lower-case hex, 64 characters. */
  prevHash: string;
  /** Lower-case hex, 64 characters. */
  hash: string;
}

/** Queue figures for `pos-agent queue`, the status topic and `GET /v1/status`. */
export interface QueueStats {
  /** pending + in_flight: records not yet acknowledged and not dead. */
  depth: number;
  pending: number;
  inFlight: number;
  dead: number;
  acked: number;
  /** ISO 8601 UTC `at` of the oldest pending or in-flight record, or `null`. */
  oldestAt: string | null;
}

/**
 * Result of `verifyChain()`: problems are card-data-free sentences ending in `(POS220)`.
 * `events` counts the stored events whose hash was recomputed; `purgedLinks`, present only when
 * retention purged payments, counts the links of deleted events whose place in the chain was
 * checked (`prev_hash` follows) but whose content is gone.
 */
export type ChainReport =
  { ok: true; events: number; purgedLinks?: number } | { ok: false; problems: string[] };

/** Result of `purgeSettled()` (retention, issue 3 §8). */
export interface PurgeReport {
  /** Payments purged: row, outbox records and events deleted, tombstone and links kept. */
  payments: number;
  /** Events deleted (each one's link kept in `purged_events`). */
  events: number;
  /** The cut-off: payments last changed before this ISO 8601 UTC instant were eligible. */
  before: string;
}

/** Result of `checkProjection()`: problems are sentences ending in `(POS221)`. */
export type ProjectionReport = { ok: true; payments: number } | { ok: false; problems: string[] };

/**
 * A payment's state as reconciliation counts it (issue 17, docs/reconciliation.md), from its
 * `state` and `approval`:
 * `approved_online` (approved by the cloud while the customer waited), `approved_offline`
 * (approved by the offline policy and acknowledged: `approved`/`confirmed` without approval
 * `online`), `pending_forward` (stored or forwarded, not yet acknowledged), `declined`,
 * `reversed` (an offline approval the issuer declined), `voided` (canceled after an approval), and
 * `not_completed` (canceled before an approval, failed, or still in progress).
 */
export { RECON_STATES, type ReconState } from '../common/reconciliation.js';

export type { Amounts, BatchTotals } from '../common/reconciliation.js';

/** One payment of a batch report: what the cloud compares by idempotency key. */
export interface BatchReportLine {
  key: string;
  /** Integer minor units of `currency`. */
  amountMinor: number;
  currency: string;
  brand?: CardBrand;
  state: ReconState;
}

/**
 * A batch record for the cloud (architecture.md §5 `up/records`, issue 17): the report of a batch
 * at its close (`kind: close`) or between closes (`kind: check`, the drift check), in the outbox's
 * `seq` order. The cloud answers in the ack result with its own totals for the same batch.
 */
export interface BatchReportRecord {
  /** `<batch id>.close.<n>` or `<batch id>.check.<n>`; the cloud dedupes by it. */
  key: string;
  seq: number;
  type: 'batch';
  /** ISO 8601 UTC. */
  at: string;
  batch: {
    id: string;
    kind: 'close' | 'check';
    terminal: string;
    openedAt: string;
    closedAt?: string;
    /** The report is as of this instant (the close, or the check). */
    asOf: string;
    /** First event seq of the batch's payments; null for an empty batch. */
    firstEventSeq: number | null;
    /** The chain head seq when the report was made. */
    lastEventSeq: number;
    /** The chain head hash then, unpadded base64url (43 characters). */
    chainHead: string;
    totals: BatchTotals;
    payments: BatchReportLine[];
  };
  /** Hash of the batch's close event (or the chain head of a check), unpadded base64url. */
  chain: string;
}

/** What the outbox hands the sync worker: payment and void records, and batch records. */
export type UplinkRecord = OutboxRecord | BatchReportRecord;
