import { ISO, type Migration } from './migration.js';

/**
 * Migration 1 — the payments projection, payment_transitions, the event log with its chain head,
 * the outbox and sealed_cards.
 */
const V1_SQL = `
CREATE TABLE payments (
  id TEXT PRIMARY KEY
    CHECK (length(id) = 40 AND id GLOB 'pay_*' AND substr(id, 5) NOT GLOB '*[^0-9a-f-]*'),
  idempotency_key TEXT NOT NULL UNIQUE
    CHECK (length(idempotency_key) BETWEEN 1 AND 255 AND idempotency_key NOT GLOB '*[^!-~]*'),
  amount_minor INTEGER NOT NULL CHECK (amount_minor > 0 AND amount_minor <= 9007199254740991),
  currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]'),
  reference TEXT CHECK (reference IS NULL OR length(reference) BETWEEN 1 AND 128),
  state TEXT NOT NULL CHECK (state IN ('awaiting_card', 'card_read', 'awaiting_pin',
    'authorizing', 'approved', 'declined', 'stored', 'forwarded', 'confirmed', 'reversed',
    'canceled', 'failed')),
  -- Card columns. A token can never be a PAN: 'tok_' + 32 base32 letters (a-z, 2-7). first6 and
  -- last4 are kept apart by card_brand so their digits never sit next to each other in a record.
  card_token TEXT CHECK (card_token IS NULL OR (length(card_token) = 36
    AND card_token GLOB 'tok_*' AND substr(card_token, 5) NOT GLOB '*[^a-z2-7]*')),
  card_first6 TEXT CHECK (card_first6 IS NULL OR card_first6 GLOB '[0-9][0-9][0-9][0-9][0-9][0-9]'),
  card_brand TEXT CHECK (card_brand IS NULL OR card_brand IN ('visa', 'mastercard', 'amex',
    'discover', 'jcb', 'diners', 'unionpay', 'unknown')),
  card_last4 TEXT CHECK (card_last4 IS NULL OR card_last4 GLOB '[0-9][0-9][0-9][0-9]'),
  card_expiry_month INTEGER CHECK (card_expiry_month IS NULL OR card_expiry_month BETWEEN 1 AND 12),
  card_expiry_year INTEGER CHECK (card_expiry_year IS NULL OR card_expiry_year BETWEEN 2000 AND 2099),
  card_entry_mode TEXT CHECK (card_entry_mode IS NULL
    OR card_entry_mode IN ('swipe', 'chip', 'contactless', 'manual')),
  cardholder_name TEXT CHECK (cardholder_name IS NULL OR (length(cardholder_name) BETWEEN 2 AND 26
    AND cardholder_name NOT GLOB '*[0-9]*')),
  auth_code TEXT CHECK (auth_code IS NULL OR (length(auth_code) BETWEEN 1 AND 16
    AND auth_code NOT GLOB '*[^0-9A-Za-z]*')),
  decline_code TEXT CHECK (decline_code IS NULL OR (length(decline_code) BETWEEN 1 AND 32
    AND decline_code NOT GLOB '*[^0-9A-Za-z_.-]*')),
  reason TEXT CHECK (reason IS NULL OR length(reason) BETWEEN 1 AND 500),
  created_at TEXT NOT NULL CHECK (created_at GLOB ${ISO}),
  updated_at TEXT NOT NULL CHECK (updated_at GLOB ${ISO}),
  forwarding_deadline_at TEXT CHECK (forwarding_deadline_at IS NULL
    OR (forwarding_deadline_at GLOB ${ISO} AND forwarding_deadline_at >= created_at)),
  -- The card is all there or not at all.
  CHECK ((card_token IS NULL) = (card_first6 IS NULL) AND (card_token IS NULL) = (card_brand IS NULL)
    AND (card_token IS NULL) = (card_last4 IS NULL)
    AND (card_token IS NULL) = (card_expiry_month IS NULL)
    AND (card_token IS NULL) = (card_expiry_year IS NULL)
    AND (card_token IS NULL) = (card_entry_mode IS NULL)),
  CHECK (cardholder_name IS NULL OR card_token IS NOT NULL),
  CHECK (card_token IS NOT NULL OR state IN ('awaiting_card', 'canceled', 'failed')),
  CHECK (auth_code IS NULL OR state IN ('approved', 'confirmed', 'reversed')),
  CHECK (decline_code IS NULL OR state = 'declined'),
  CHECK (forwarding_deadline_at IS NOT NULL OR state NOT IN ('stored', 'forwarded'))
) STRICT;

CREATE INDEX payments_by_state ON payments (state, created_at);

CREATE TRIGGER payments_no_delete BEFORE DELETE ON payments
BEGIN
  SELECT RAISE(ABORT, 'payments are never deleted (POS212)');
END;

CREATE TRIGGER payments_identity_immutable
BEFORE UPDATE OF id, idempotency_key, amount_minor, currency, reference, created_at ON payments
WHEN NEW.id IS NOT OLD.id OR NEW.idempotency_key IS NOT OLD.idempotency_key
  OR NEW.amount_minor IS NOT OLD.amount_minor OR NEW.currency IS NOT OLD.currency
  OR NEW.reference IS NOT OLD.reference OR NEW.created_at IS NOT OLD.created_at
BEGIN
  SELECT RAISE(ABORT, 'payments: id, idempotency key, amount, currency, reference and created_at never change (POS212)');
END;

CREATE TRIGGER payments_card_once
BEFORE UPDATE OF card_token, card_first6, card_brand, card_last4, card_expiry_month,
  card_expiry_year, card_entry_mode, cardholder_name ON payments
WHEN OLD.card_token IS NOT NULL AND (NEW.card_token IS NOT OLD.card_token
  OR NEW.card_first6 IS NOT OLD.card_first6 OR NEW.card_brand IS NOT OLD.card_brand
  OR NEW.card_last4 IS NOT OLD.card_last4 OR NEW.card_expiry_month IS NOT OLD.card_expiry_month
  OR NEW.card_expiry_year IS NOT OLD.card_expiry_year
  OR NEW.card_entry_mode IS NOT OLD.card_entry_mode
  OR NEW.cardholder_name IS NOT OLD.cardholder_name)
BEGIN
  SELECT RAISE(ABORT, 'payments: the card of a payment never changes once read (POS212)');
END;

-- The allowed state changes; the payment state machine adds rows in a later migration.
CREATE TABLE payment_transitions (
  from_state TEXT NOT NULL CHECK (from_state IN ('awaiting_card', 'card_read', 'awaiting_pin',
    'authorizing', 'approved', 'declined', 'stored', 'forwarded', 'confirmed', 'reversed',
    'canceled', 'failed')),
  to_state TEXT NOT NULL CHECK (to_state IN ('awaiting_card', 'card_read', 'awaiting_pin',
    'authorizing', 'approved', 'declined', 'stored', 'forwarded', 'confirmed', 'reversed',
    'canceled', 'failed')),
  PRIMARY KEY (from_state, to_state),
  CHECK (from_state <> to_state)
) STRICT, WITHOUT ROWID;

INSERT INTO payment_transitions (from_state, to_state) VALUES
  ('stored', 'forwarded'), ('stored', 'approved'), ('stored', 'declined'), ('stored', 'confirmed'),
  ('forwarded', 'approved'), ('forwarded', 'declined'), ('forwarded', 'confirmed'),
  ('confirmed', 'approved'), ('confirmed', 'declined');

CREATE TRIGGER payments_legal_transition BEFORE UPDATE OF state ON payments
WHEN NEW.state IS NOT OLD.state AND NOT EXISTS (
  SELECT 1 FROM payment_transitions WHERE from_state = OLD.state AND to_state = NEW.state)
BEGIN
  SELECT RAISE(ABORT, 'payments: illegal state change, not in payment_transitions (POS212)');
END;

-- The event log: append-only, one hash chain over all events in seq order.
CREATE TABLE events (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  payment_id TEXT NOT NULL REFERENCES payments (id),
  type TEXT NOT NULL CHECK (type IN ('payment_started', 'card_read', 'pin_requested',
    'authorization_requested', 'approved', 'declined', 'payment_stored', 'forwarded',
    'cloud_approved', 'cloud_declined', 'confirmed', 'dead_lettered', 'requeued', 'canceled',
    'failed', 'reversed')),
  at TEXT NOT NULL CHECK (at GLOB ${ISO}),
  data TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;

CREATE INDEX events_by_payment ON events (payment_id, seq);

-- The head of the chain, kept by trigger: a truncated tail is detectable.
CREATE TABLE chain_head (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL CHECK (seq > 0),
  hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE TRIGGER events_link BEFORE INSERT ON events
WHEN NEW.seq IS NOT coalesce((SELECT seq FROM chain_head WHERE id = 1), 0) + 1
  OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM chain_head WHERE id = 1), zeroblob(32))
BEGIN
  SELECT RAISE(ABORT, 'events: seq must follow the chain head and prev_hash must equal its hash (POS220)');
END;

CREATE TRIGGER events_advance_head AFTER INSERT ON events
BEGIN
  INSERT INTO chain_head (id, seq, hash) VALUES (1, NEW.seq, NEW.hash)
    ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
END;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only: UPDATE refused (POS220)');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only: DELETE refused (POS220)');
END;

CREATE TRIGGER chain_head_forward_only BEFORE UPDATE ON chain_head
WHEN NEW.seq IS NOT OLD.seq + 1
BEGIN
  SELECT RAISE(ABORT, 'chain_head only moves forward by one event (POS220)');
END;

CREATE TRIGGER chain_head_no_delete BEFORE DELETE ON chain_head
BEGIN
  SELECT RAISE(ABORT, 'chain_head is never deleted (POS220)');
END;

-- The transactional outbox: one row per record to forward, keyed by its idempotency key.
CREATE TABLE outbox (
  key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255 AND key NOT GLOB '*[^!-~]*'),
  seq INTEGER NOT NULL UNIQUE CHECK (seq > 0),
  payment_id TEXT NOT NULL REFERENCES payments (id),
  event_seq INTEGER NOT NULL UNIQUE REFERENCES events (seq),
  type TEXT NOT NULL CHECK (type IN ('payment', 'void')),
  state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'acked', 'dead')),
  batch_id TEXT CHECK (batch_id IS NULL OR length(batch_id) BETWEEN 1 AND 128),
  attempts INTEGER NOT NULL CHECK (attempts >= 0),
  ack_status TEXT CHECK (ack_status IS NULL OR ack_status IN ('accepted', 'duplicate')),
  dead_reason TEXT CHECK (dead_reason IS NULL OR length(dead_reason) BETWEEN 1 AND 500),
  created_at TEXT NOT NULL CHECK (created_at GLOB ${ISO}),
  updated_at TEXT NOT NULL CHECK (updated_at GLOB ${ISO}),
  acked_at TEXT CHECK (acked_at IS NULL OR acked_at GLOB ${ISO}),
  UNIQUE (payment_id, type),
  CHECK ((state = 'dead') = (dead_reason IS NOT NULL)),
  CHECK ((state = 'acked') = (acked_at IS NOT NULL)),
  CHECK ((state = 'acked') = (ack_status IS NOT NULL)),
  CHECK (state <> 'in_flight' OR (batch_id IS NOT NULL AND attempts >= 1))
) STRICT;

CREATE INDEX outbox_by_state ON outbox (state, seq);

CREATE TRIGGER outbox_insert_rules BEFORE INSERT ON outbox
WHEN NEW.seq <= coalesce((SELECT max(seq) FROM outbox), 0)
  OR (NEW.type = 'payment'
    AND NEW.key IS NOT (SELECT idempotency_key FROM payments WHERE id = NEW.payment_id))
  OR NEW.payment_id IS NOT (SELECT payment_id FROM events WHERE seq = NEW.event_seq)
  OR NEW.state <> 'pending'
BEGIN
  SELECT RAISE(ABORT, 'outbox: a new record is pending, comes after every other record, carries its payment''s idempotency key and an event of that payment (POS215)');
END;

CREATE TRIGGER outbox_identity_immutable
BEFORE UPDATE OF key, seq, payment_id, event_seq, type, created_at ON outbox
WHEN NEW.key IS NOT OLD.key OR NEW.seq IS NOT OLD.seq OR NEW.payment_id IS NOT OLD.payment_id
  OR NEW.event_seq IS NOT OLD.event_seq OR NEW.type IS NOT OLD.type
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
  SELECT RAISE(ABORT, 'outbox: key, seq, payment, event, type and created_at never change (POS215)');
END;

CREATE TRIGGER outbox_acked_is_final BEFORE UPDATE ON outbox
WHEN OLD.state = 'acked'
BEGIN
  SELECT RAISE(ABORT, 'outbox: an acked record is final (POS215)');
END;

CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
BEGIN
  SELECT RAISE(ABORT, 'outbox records are never deleted: a failed record goes to dead (POS215)');
END;

-- Sealed card data for the cloud, deleted as soon as the cloud has acknowledged the payment
-- (PCI DSS 4.0.1 req. 3.3.1). secure_delete=ON overwrites the freed bytes.
CREATE TABLE sealed_cards (
  payment_id TEXT PRIMARY KEY REFERENCES payments (id),
  sealed TEXT CHECK (sealed IS NULL OR (length(sealed) BETWEEN 96 AND 8192
    AND length(sealed) % 4 = 0 AND sealed NOT GLOB '*[^A-Za-z0-9+/=]*')),
  sred_ksn TEXT CHECK (sred_ksn IS NULL OR (length(sred_ksn) IN (20, 24)
    AND sred_ksn NOT GLOB '*[^0-9A-F]*')),
  sred_ciphertext TEXT CHECK (sred_ciphertext IS NULL OR (length(sred_ciphertext) BETWEEN 16 AND 8192
    AND length(sred_ciphertext) % 2 = 0 AND sred_ciphertext NOT GLOB '*[^0-9A-F]*')),
  created_at TEXT NOT NULL CHECK (created_at GLOB ${ISO}),
  CHECK (sealed IS NOT NULL OR sred_ksn IS NOT NULL),
  CHECK ((sred_ksn IS NULL) = (sred_ciphertext IS NULL))
) STRICT;

CREATE TRIGGER sealed_cards_not_after_ack BEFORE INSERT ON sealed_cards
WHEN EXISTS (SELECT 1 FROM outbox WHERE payment_id = NEW.payment_id AND state = 'acked')
BEGIN
  SELECT RAISE(ABORT, 'sealed_cards: the cloud already acknowledged this payment (POS212)');
END;

CREATE TRIGGER sealed_cards_immutable BEFORE UPDATE ON sealed_cards
BEGIN
  SELECT RAISE(ABORT, 'sealed_cards rows never change (POS212)');
END;

CREATE TRIGGER outbox_ack_deletes_sealed AFTER UPDATE OF state ON outbox
WHEN NEW.state = 'acked'
BEGIN
  DELETE FROM sealed_cards WHERE payment_id = NEW.payment_id;
END;
`;

/** Migration 1: `PRAGMA user_version` 1. */
export const V1: Migration = {
  version: 1,
  name: 'payments, events, outbox, sealed_cards',
  sql: V1_SQL,
};
