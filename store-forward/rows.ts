/**
 * The rows of the store's tables as better-sqlite3 returns them, and the mappers between them and
 * the model (`Payment`, `OutboxRecord`). Pure: no SQL runs here. Column names, types and
 * constraints are migrations/'s; these types mirror them.
 */
import { storeError } from './errors.js';
import type {
  EventType,
  OfflineMode,
  OutboxRecord,
  OutboxState,
  Payment,
  PaymentCard,
  PaymentState,
} from './model.js';

/**
 * The card columns of `payments` (the schema guarantees all or none are NULL), shared by the
 * row types below and {@link cardOf}.
 */
export interface CardColumns {
  card_token: string | null;
  card_brand: string | null;
  card_first6: string | null;
  card_last4: string | null;
  card_expiry_month: number | null;
  card_expiry_year: number | null;
  card_entry_mode: string | null;
}

/** Row of `payments`. */
export interface PaymentRow extends CardColumns {
  id: string;
  idempotency_key: string;
  amount_minor: number;
  currency: string;
  reference: string | null;
  state: PaymentState;
  cardholder_name: string | null;
  auth_code: string | null;
  decline_code: string | null;
  reason: string | null;
  created_at: string;
  updated_at: string;
  forwarding_deadline_at: string | null;
  approval: 'online' | 'offline' | null;
  offline_mode: OfflineMode | null;
}

/** Row of `outbox`. */
export interface OutboxRow {
  key: string;
  seq: number;
  payment_id: string;
  event_seq: number;
  type: 'payment' | 'void';
  state: OutboxState;
  batch_id: string | null;
  attempts: number;
  ack_status: string | null;
  dead_reason: string | null;
  created_at: string;
  updated_at: string;
  acked_at: string | null;
}

/** A row of the chain walk: a stored event, or (type, at and data `null`) a purged link. */
export interface ChainRow {
  seq: number;
  payment_id: string;
  type: EventType | null;
  at: string | null;
  data: string | null;
  prev_hash: Buffer;
  hash: Buffer;
}

/** Row of `events`. */
export interface EventRow {
  seq: number;
  payment_id: string;
  type: EventType;
  at: string;
  data: string;
  prev_hash: Buffer;
  hash: Buffer;
}

/** Row of the `nextPending` join. */
export interface PendingRow extends CardColumns {
  key: string;
  seq: number;
  type: 'payment' | 'void';
  at: string;
  id: string;
  amount_minor: number;
  currency: string;
  reference: string | null;
  payment_created_at: string;
  sealed: string | null;
  sred_ksn: string | null;
  sred_ciphertext: string | null;
  chain: Buffer;
}

/** A `payments` row as the store's {@link Payment} (card fields grouped, nulls as absent). */
export function toPayment(row: PaymentRow): Payment {
  const card = cardOf(row);
  if (card !== undefined && row.cardholder_name !== null) card.cardholderName = row.cardholder_name;
  const payment: Payment = {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    amountMinor: row.amount_minor,
    currency: row.currency,
    state: row.state,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (card !== undefined) payment.card = card;
  if (row.approval !== null) payment.approval = row.approval;
  if (row.offline_mode !== null) payment.offlineMode = row.offline_mode;
  if (row.reference !== null) payment.reference = row.reference;
  if (row.auth_code !== null) payment.authCode = row.auth_code;
  if (row.decline_code !== null) payment.declineCode = row.decline_code;
  if (row.reason !== null) payment.reason = row.reason;
  if (row.forwarding_deadline_at !== null) {
    payment.forwardingDeadlineAt = row.forwarding_deadline_at;
  }
  return payment;
}

/** The card of a row, or undefined for a card-less row. */
export function cardOf(row: CardColumns): PaymentCard | undefined {
  if (row.card_token === null) return undefined;
  return {
    token: row.card_token,
    brand: row.card_brand as PaymentCard['brand'],
    first6: row.card_first6 as string,
    last4: row.card_last4 as string,
    expiryMonth: row.card_expiry_month as number,
    expiryYear: row.card_expiry_year as number,
    entryMode: row.card_entry_mode as PaymentCard['entryMode'],
  };
}

/** A {@link Payment} as its `payments` row: the inverse of {@link toPayment}. */
export function toRow(payment: Payment): PaymentRow {
  return {
    id: payment.id,
    idempotency_key: payment.idempotencyKey,
    amount_minor: payment.amountMinor,
    currency: payment.currency,
    reference: payment.reference ?? null,
    state: payment.state,
    card_token: payment.card?.token ?? null,
    card_first6: payment.card?.first6 ?? null,
    card_brand: payment.card?.brand ?? null,
    card_last4: payment.card?.last4 ?? null,
    card_expiry_month: payment.card?.expiryMonth ?? null,
    card_expiry_year: payment.card?.expiryYear ?? null,
    card_entry_mode: payment.card?.entryMode ?? null,
    cardholder_name: payment.card?.cardholderName ?? null,
    auth_code: payment.authCode ?? null,
    decline_code: payment.declineCode ?? null,
    reason: payment.reason ?? null,
    created_at: payment.createdAt,
    updated_at: payment.updatedAt,
    forwarding_deadline_at: payment.forwardingDeadlineAt ?? null,
    approval: payment.approval ?? null,
    offline_mode: payment.offlineMode ?? null,
  };
}

/**
 * A pending outbox row joined with its payment (and sealed card data while it is kept) as the
 * {@link OutboxRecord} the sync worker sends.
 *
 * @throws AgentError POS221 when the row has no card or its payment is missing: the projection
 * is damaged and no record can be built.
 */
export function toOutboxRecord(row: PendingRow): OutboxRecord {
  const card = cardOf(row);
  if (card === undefined) {
    throw storeError(
      'POS221',
      `outbox record ${row.seq} belongs to payment ${row.id}, which has no card; fix: run checkProjection() and report`,
    );
  }
  const record: OutboxRecord = {
    key: row.key,
    seq: row.seq,
    type: row.type,
    at: row.at,
    payment: {
      id: row.id,
      amountMinor: row.amount_minor,
      currency: row.currency,
      createdAt: row.payment_created_at,
    },
    card,
    chain: row.chain.toString('base64url'),
  };
  if (row.reference !== null) record.payment.reference = row.reference;
  if (row.sealed !== null) record.sealed = row.sealed;
  if (row.sred_ksn !== null && row.sred_ciphertext !== null) {
    record.sred = { ksnHex: row.sred_ksn, ciphertextHex: row.sred_ciphertext };
  }
  return record;
}
