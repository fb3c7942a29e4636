/**
 * The schema of store-and-forward: forward-only migrations numbered in `PRAGMA user_version`
 * (architecture.md §4 — "the schema is the most important code in the project: it must make invalid
 * states impossible").
 *
 * Rules for this file:
 * - A migration, once released, never changes: fix forward with a new one. The SQL is literal
 *   text, not generated from the TypeScript constants, so editing `model.ts` cannot silently
 *   rewrite history; `test/store-forward/schema.test.ts` proves the two agree.
 * - Every table is `STRICT`; every enumerated column has a `CHECK`; every reference is a foreign
 *   key; money is `INTEGER` minor units; timestamps are ISO 8601 UTC text with milliseconds
 *   (`YYYY-MM-DDTHH:MM:SS.sssZ`, what `Date.prototype.toISOString` writes), chosen over epoch
 *   integers because they are what the wire carries (`at`, `oldestAt`), sort chronologically as
 *   text, and read plainly in the `sqlite3` shell a field tech has.
 * - Triggers carry the rules a `CHECK` cannot: events are append-only and chained, state changes
 *   follow `payment_transitions`, acked outbox rows are final, nothing is deleted except sealed
 *   card data, which goes when the cloud has acknowledged (PCI DSS 4.0.1 req. 3.3.1), and,
 *   from migration 3, settled payments purged by retention (their chain links stay).
 */

/** One forward-only migration. */
export interface Migration {
  /** `PRAGMA user_version` after this migration: 1, 2, 3, … without gaps. */
  readonly version: number;
  /** Short description, shown in POS202. */
  readonly name: string;
  /** SQL run with `db.exec` inside the start-up transaction. */
  readonly sql: string;
}

/** GLOB of an ISO 8601 UTC timestamp with milliseconds. Frozen: part of migration 1. */
const ISO = `'[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9].[0-9][0-9][0-9]Z'`;

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

/**
 * Migration 2 — the payment state machine (issue 3, `payment-machine.ts`): every state change the
 * machine makes becomes a `payment_transitions` row (the rows of migration 1 stay), and the
 * projection gains how a payment was approved and which offline mode the POS app asked for.
 * Literal text like migration 1; `test/store-forward/schema.test.ts` compares it with
 * `machineTransitions()`.
 */
const V2_SQL = `
INSERT OR IGNORE INTO payment_transitions (from_state, to_state) VALUES
  ('approved', 'canceled'), ('approved', 'reversed'), ('authorizing', 'approved'),
  ('authorizing', 'declined'), ('authorizing', 'failed'), ('authorizing', 'stored'),
  ('awaiting_card', 'canceled'), ('awaiting_card', 'card_read'), ('awaiting_card', 'failed'),
  ('awaiting_pin', 'authorizing'), ('awaiting_pin', 'canceled'), ('awaiting_pin', 'declined'),
  ('awaiting_pin', 'failed'), ('card_read', 'authorizing'), ('card_read', 'awaiting_pin'),
  ('card_read', 'canceled'), ('card_read', 'declined'), ('card_read', 'failed'),
  ('card_read', 'stored'), ('confirmed', 'approved'), ('confirmed', 'canceled'),
  ('confirmed', 'declined'), ('confirmed', 'reversed'), ('forwarded', 'approved'),
  ('forwarded', 'canceled'), ('forwarded', 'confirmed'), ('forwarded', 'declined'),
  ('forwarded', 'reversed'), ('stored', 'approved'), ('stored', 'canceled'),
  ('stored', 'confirmed'), ('stored', 'declined'), ('stored', 'forwarded'), ('stored', 'reversed');

-- How the payment was approved: by the cloud while the customer waited, or offline by policy.
ALTER TABLE payments ADD COLUMN approval TEXT
  CHECK (approval IS NULL OR approval IN ('online', 'offline'));
-- What the POS app asked for; NULL for payments of the walking skeleton.
ALTER TABLE payments ADD COLUMN offline_mode TEXT
  CHECK (offline_mode IS NULL OR offline_mode IN ('prefer_online', 'require_online', 'force_offline'));

CREATE INDEX payments_by_approval ON payments (approval, state, currency);
`;

/**
 * Migration 3 — retention (issue 3 §8): payments the cloud acknowledged long ago are purged, their
 * card columns and events deleted (`secure_delete` zeroes the bytes), while the hash chain keeps
 * a link for every deleted event and a tombstone keeps the idempotency key, so:
 * - `verifyChain()` still walks an unbroken chain (`purged_events` holds `seq`, `prev_hash`,
 *   `hash` of each deleted event; its content is gone, its place in the chain is not);
 * - the same idempotency key is never charged a second time (`purged_payments` keeps it);
 * - outbox `seq` never goes back (`purged_payments.last_outbox_seq` is its high-water mark).
 * Only a payment in a final state whose every outbox record is `acked` may be purged: a stored,
 * forwarded or dead record is never deleted. The delete triggers of migration 1 are replaced by
 * ones that let exactly these rows go, and nothing else.
 */
const V3_SQL = `
CREATE TABLE purged_payments (
  id TEXT PRIMARY KEY
    CHECK (length(id) = 40 AND id GLOB 'pay_*' AND substr(id, 5) NOT GLOB '*[^0-9a-f-]*'),
  idempotency_key TEXT NOT NULL UNIQUE
    CHECK (length(idempotency_key) BETWEEN 1 AND 255 AND idempotency_key NOT GLOB '*[^!-~]*'),
  state TEXT NOT NULL CHECK (state IN ('approved', 'declined', 'confirmed', 'reversed',
    'canceled', 'failed')),
  created_at TEXT NOT NULL CHECK (created_at GLOB ${ISO}),
  updated_at TEXT NOT NULL CHECK (updated_at GLOB ${ISO}),
  purged_at TEXT NOT NULL CHECK (purged_at GLOB ${ISO}),
  last_outbox_seq INTEGER CHECK (last_outbox_seq IS NULL OR last_outbox_seq > 0)
) STRICT;

CREATE INDEX purged_payments_by_outbox_seq ON purged_payments (last_outbox_seq);

CREATE TRIGGER purged_payments_only_settled BEFORE INSERT ON purged_payments
WHEN NOT EXISTS (SELECT 1 FROM payments WHERE id = NEW.id
    AND idempotency_key = NEW.idempotency_key AND state = NEW.state
    AND created_at = NEW.created_at AND updated_at = NEW.updated_at)
  OR EXISTS (SELECT 1 FROM outbox WHERE payment_id = NEW.id AND state <> 'acked')
  OR NEW.last_outbox_seq IS NOT (SELECT max(seq) FROM outbox WHERE payment_id = NEW.id)
BEGIN
  SELECT RAISE(ABORT, 'purged_payments: only a payment in a final state whose every outbox record the cloud acknowledged is purged (POS212)');
END;

CREATE TRIGGER purged_payments_immutable BEFORE UPDATE ON purged_payments
BEGIN
  SELECT RAISE(ABORT, 'purged_payments rows never change (POS212)');
END;

CREATE TRIGGER purged_payments_no_delete BEFORE DELETE ON purged_payments
BEGIN
  SELECT RAISE(ABORT, 'purged_payments rows are never deleted (POS212)');
END;

CREATE TRIGGER payments_key_not_purged BEFORE INSERT ON payments
WHEN EXISTS (SELECT 1 FROM purged_payments WHERE idempotency_key = NEW.idempotency_key)
BEGIN
  SELECT RAISE(ABORT, 'payments: this idempotency key belongs to a purged payment (POS210)');
END;

-- The link of each deleted event: its place in the chain, without its content.
CREATE TABLE purged_events (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  payment_id TEXT NOT NULL REFERENCES purged_payments (id),
  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;

CREATE TRIGGER purged_events_copy_of_event BEFORE INSERT ON purged_events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq AND payment_id = NEW.payment_id
  AND prev_hash = NEW.prev_hash AND hash = NEW.hash)
BEGIN
  SELECT RAISE(ABORT, 'purged_events: a link is the exact copy of an event of a purged payment (POS220)');
END;

CREATE TRIGGER purged_events_immutable BEFORE UPDATE ON purged_events
BEGIN
  SELECT RAISE(ABORT, 'purged_events are append-only: UPDATE refused (POS220)');
END;

CREATE TRIGGER purged_events_no_delete BEFORE DELETE ON purged_events
BEGIN
  SELECT RAISE(ABORT, 'purged_events are append-only: DELETE refused (POS220)');
END;

DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM purged_events WHERE seq = OLD.seq AND hash = OLD.hash)
BEGIN
  SELECT RAISE(ABORT, 'events are append-only: DELETE refused unless retention kept the link in purged_events (POS220)');
END;

DROP TRIGGER payments_no_delete;
CREATE TRIGGER payments_no_delete BEFORE DELETE ON payments
WHEN NOT EXISTS (SELECT 1 FROM purged_payments WHERE id = OLD.id)
BEGIN
  SELECT RAISE(ABORT, 'payments are never deleted, except by retention after a purged_payments tombstone (POS212)');
END;

DROP TRIGGER outbox_no_delete;
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
WHEN OLD.state <> 'acked' OR NOT EXISTS (SELECT 1 FROM purged_payments WHERE id = OLD.payment_id)
BEGIN
  SELECT RAISE(ABORT, 'outbox records are never deleted: a failed record goes to dead; only acked records of a purged payment go (POS215)');
END;
`;

/**
 * Migration 4 — the store kernel at the speed of the disk (issue 9):
 * - `ack_events`: ONE hash-chained event per applied acknowledgement message, holding the cloud's
 *   results for the whole batch (`{ batch, results: [{ key, paymentId, type, data }] }`). It takes
 *   the next `seq` of the one chain, like an `events` row (same link and head triggers), so a gap,
 *   an edit or a truncated tail is found by the same walk. `ack_event_members` is its index by
 *   payment (no card data), for the projection check and a payment's history; it has no foreign
 *   key to `payments` because retention deletes payments and keeps the chain.
 * - `chain_checkpoints`: a verified prefix of the chain (last seq, its hash, how many events), so
 *   start-up verifies only the events after it; `pos-agent verify` still walks everything.
 * - `outbox_counts`: the queue's counts per state, kept by trigger, so queue stats read four rows
 *   instead of counting the table.
 * - Indexes that keep the payment list flat in table size (newest first, keyset pagination).
 * In-flight is no longer written (the sync worker keeps it in memory); `in_flight` stays a legal
 * value so that databases written by older agents open, and start-up releases such rows.
 */
const V4_SQL = `
CREATE TABLE ack_events (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  at TEXT NOT NULL CHECK (at GLOB ${ISO}),
  data TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;

CREATE TRIGGER ack_events_link BEFORE INSERT ON ack_events
WHEN NEW.seq IS NOT coalesce((SELECT seq FROM chain_head WHERE id = 1), 0) + 1
  OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM chain_head WHERE id = 1), zeroblob(32))
BEGIN
  SELECT RAISE(ABORT, 'ack_events: seq must follow the chain head and prev_hash must equal its hash (POS220)');
END;

CREATE TRIGGER ack_events_advance_head AFTER INSERT ON ack_events
BEGIN
  INSERT INTO chain_head (id, seq, hash) VALUES (1, NEW.seq, NEW.hash)
    ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
END;

CREATE TRIGGER ack_events_no_update BEFORE UPDATE ON ack_events
BEGIN
  SELECT RAISE(ABORT, 'ack_events are append-only: UPDATE refused (POS220)');
END;

CREATE TRIGGER ack_events_no_delete BEFORE DELETE ON ack_events
BEGIN
  SELECT RAISE(ABORT, 'ack_events are append-only: DELETE refused (POS220)');
END;

CREATE TABLE ack_event_members (
  payment_id TEXT NOT NULL
    CHECK (length(payment_id) = 40 AND payment_id GLOB 'pay_*'),
  event_seq INTEGER NOT NULL REFERENCES ack_events (seq),
  PRIMARY KEY (payment_id, event_seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER ack_event_members_immutable BEFORE UPDATE ON ack_event_members
BEGIN
  SELECT RAISE(ABORT, 'ack_event_members rows never change (POS220)');
END;

CREATE TABLE chain_checkpoints (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  hash BLOB NOT NULL CHECK (length(hash) = 32),
  events INTEGER NOT NULL CHECK (events >= 0),
  verified_at TEXT NOT NULL CHECK (verified_at GLOB ${ISO})
) STRICT;

CREATE TRIGGER chain_checkpoints_immutable BEFORE UPDATE ON chain_checkpoints
BEGIN
  SELECT RAISE(ABORT, 'chain_checkpoints rows never change (POS220)');
END;

CREATE TABLE outbox_counts (
  state TEXT PRIMARY KEY CHECK (state IN ('pending', 'in_flight', 'acked', 'dead')),
  n INTEGER NOT NULL CHECK (n >= 0)
) STRICT;

INSERT INTO outbox_counts (state, n)
  SELECT s.column1, (SELECT count(*) FROM outbox WHERE state = s.column1)
  FROM (VALUES ('pending'), ('in_flight'), ('acked'), ('dead')) AS s;

CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox
BEGIN
  UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER outbox_counts_update AFTER UPDATE OF state ON outbox
WHEN OLD.state IS NOT NEW.state
BEGIN
  UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
  UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox
BEGIN
  UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
END;

CREATE INDEX payments_by_created ON payments (created_at, id);
-- Replaces payments_by_state (state, created_at): the same order plus the id for the keyset, and
-- one index less to update on every state change.
CREATE INDEX payments_by_state_created ON payments (state, created_at, id);
DROP INDEX payments_by_state;
`;

/**
 * Migration 5 — reconciliation (issue 17): terminal batches that close, match the cloud's ledger
 * and raise exceptions a person can work (store-forward/batches.ts, docs/reconciliation.md).
 *
 * - `batches`: one row per batch of this terminal (one database = one terminal). Exactly one is
 *   `open` at a time (a partial unique index); a payment joins the open batch when it is created
 *   (trigger `payments_join_open_batch`), and keeps it. Closing writes the totals, the chain
 *   position (first / last event seq, chain head) and opens the next batch in the same
 *   transaction. `reconciliation` is what the cloud's answer made of it.
 * - `batch_events`: the batch's hash-chained events (`batch_closed`, `batch_reconciled`,
 *   `exception_resolved`), on the ONE chain of `events` and `ack_events` (same link and head
 *   triggers, append-only). Their `batch_id` takes the place of the payment id in the hash.
 * - `batch_exceptions`: what matching found, each raised by a `batch_reconciled` event and
 *   resolved (requeue, void, accept with a note) by an `exception_resolved` event; resolved is
 *   final.
 * - `batch_records`: the batch records for the cloud (a batch report at close, a drift check, and
 *   the records a resolution sends again), in the outbox's `seq` space so the sync worker sends
 *   them in order with the payment records; `answer` keeps the cloud's signed answer.
 * - Existing payments join an initial batch, opened at the oldest payment (or now).
 */
const V5_SQL = `
CREATE TABLE batches (
  id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 5 AND 64 AND id GLOB 'bat_*'
    AND substr(id, 5) NOT GLOB '*[^0-9a-z-]*'),
  terminal TEXT NOT NULL CHECK (length(terminal) BETWEEN 1 AND 128 AND terminal NOT GLOB '*[^!-~]*'),
  opened_at TEXT NOT NULL CHECK (opened_at GLOB ${ISO}),
  closed_at TEXT CHECK (closed_at IS NULL OR (closed_at GLOB ${ISO} AND closed_at >= opened_at)),
  state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
  totals TEXT CHECK (totals IS NULL OR (json_valid(totals) AND json_type(totals) = 'object')),
  first_event_seq INTEGER CHECK (first_event_seq IS NULL OR first_event_seq > 0),
  last_event_seq INTEGER CHECK (last_event_seq IS NULL OR last_event_seq >= 0),
  chain_head TEXT CHECK (chain_head IS NULL OR length(chain_head) = 43),
  close_seq INTEGER CHECK (close_seq IS NULL OR close_seq > 0),
  reconciliation TEXT NOT NULL DEFAULT 'none' CHECK (reconciliation IN ('none', 'awaiting_cloud',
    'matched', 'exceptions', 'resolved')),
  reconciled_at TEXT CHECK (reconciled_at IS NULL OR reconciled_at GLOB ${ISO}),
  CHECK ((state = 'closed') = (closed_at IS NOT NULL)),
  CHECK ((state = 'closed') = (totals IS NOT NULL)),
  CHECK ((state = 'closed') = (close_seq IS NOT NULL)),
  CHECK ((state = 'closed') = (last_event_seq IS NOT NULL)),
  CHECK (state = 'closed' OR reconciliation = 'none')
) STRICT;

CREATE UNIQUE INDEX batches_one_open ON batches (state) WHERE state = 'open';

CREATE TRIGGER batches_closed_is_final BEFORE UPDATE OF id, terminal, opened_at, closed_at, state,
  forced, totals, first_event_seq, last_event_seq, chain_head, close_seq ON batches
WHEN OLD.state = 'closed'
BEGIN
  SELECT RAISE(ABORT, 'batches: a closed batch never changes, only its reconciliation (POS212)');
END;

CREATE TRIGGER batches_identity_immutable BEFORE UPDATE OF id, terminal, opened_at ON batches
WHEN NEW.id IS NOT OLD.id OR NEW.terminal IS NOT OLD.terminal OR NEW.opened_at IS NOT OLD.opened_at
BEGIN
  SELECT RAISE(ABORT, 'batches: id, terminal and opened_at never change (POS212)');
END;

CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches
BEGIN
  SELECT RAISE(ABORT, 'batches are never deleted (POS212)');
END;

ALTER TABLE payments ADD COLUMN batch_id TEXT REFERENCES batches (id);

CREATE INDEX payments_by_batch ON payments (batch_id, id);

CREATE TRIGGER payments_join_open_batch AFTER INSERT ON payments
WHEN NEW.batch_id IS NULL
BEGIN
  UPDATE payments SET batch_id = (SELECT id FROM batches WHERE state = 'open') WHERE id = NEW.id;
END;

CREATE TRIGGER payments_batch_once BEFORE UPDATE OF batch_id ON payments
WHEN OLD.batch_id IS NOT NULL AND NEW.batch_id IS NOT OLD.batch_id
BEGIN
  SELECT RAISE(ABORT, 'payments: a payment stays in the batch it was created in (POS212)');
END;

CREATE TABLE batch_events (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  batch_id TEXT NOT NULL REFERENCES batches (id),
  type TEXT NOT NULL CHECK (type IN ('batch_closed', 'batch_reconciled', 'exception_resolved')),
  at TEXT NOT NULL CHECK (at GLOB ${ISO}),
  data TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
  hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;

CREATE INDEX batch_events_by_batch ON batch_events (batch_id, seq);

CREATE TRIGGER batch_events_link BEFORE INSERT ON batch_events
WHEN NEW.seq IS NOT coalesce((SELECT seq FROM chain_head WHERE id = 1), 0) + 1
  OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM chain_head WHERE id = 1), zeroblob(32))
BEGIN
  SELECT RAISE(ABORT, 'batch_events: seq must follow the chain head and prev_hash must equal its hash (POS220)');
END;

CREATE TRIGGER batch_events_advance_head AFTER INSERT ON batch_events
BEGIN
  INSERT INTO chain_head (id, seq, hash) VALUES (1, NEW.seq, NEW.hash)
    ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
END;

CREATE TRIGGER batch_events_no_update BEFORE UPDATE ON batch_events
BEGIN
  SELECT RAISE(ABORT, 'batch_events are append-only: UPDATE refused (POS220)');
END;

CREATE TRIGGER batch_events_no_delete BEFORE DELETE ON batch_events
BEGIN
  SELECT RAISE(ABORT, 'batch_events are append-only: DELETE refused (POS220)');
END;

CREATE TABLE batch_exceptions (
  id INTEGER PRIMARY KEY CHECK (id > 0),
  batch_id TEXT NOT NULL REFERENCES batches (id),
  kind TEXT NOT NULL CHECK (kind IN ('missing_at_cloud', 'missing_here', 'amount_differs',
    'state_differs', 'charged_declined_here', 'totals_differ')),
  found_by TEXT NOT NULL CHECK (found_by IN ('close', 'drift')),
  idempotency_key TEXT CHECK (idempotency_key IS NULL
    OR (length(idempotency_key) BETWEEN 1 AND 255 AND idempotency_key NOT GLOB '*[^!-~]*')),
  payment_id TEXT CHECK (payment_id IS NULL OR (length(payment_id) = 40 AND payment_id GLOB 'pay_*')),
  detail TEXT NOT NULL CHECK (json_valid(detail) AND json_type(detail) = 'object'),
  raised_seq INTEGER NOT NULL REFERENCES batch_events (seq),
  raised_at TEXT NOT NULL CHECK (raised_at GLOB ${ISO}),
  state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
  resolution TEXT CHECK (resolution IS NULL OR resolution IN ('requeue', 'void', 'accept')),
  note TEXT CHECK (note IS NULL OR length(note) BETWEEN 1 AND 500),
  resolved_seq INTEGER REFERENCES batch_events (seq),
  resolved_at TEXT CHECK (resolved_at IS NULL OR resolved_at GLOB ${ISO}),
  CHECK ((state = 'resolved') = (resolution IS NOT NULL)),
  CHECK ((state = 'resolved') = (resolved_seq IS NOT NULL)),
  CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
  CHECK (resolution IS NOT 'accept' OR note IS NOT NULL)
) STRICT;

CREATE UNIQUE INDEX batch_exceptions_open_once
  ON batch_exceptions (batch_id, kind, coalesce(idempotency_key, '')) WHERE state = 'open';
CREATE INDEX batch_exceptions_by_state ON batch_exceptions (state, id);

CREATE TRIGGER batch_exceptions_resolved_is_final BEFORE UPDATE ON batch_exceptions
WHEN OLD.state = 'resolved'
BEGIN
  SELECT RAISE(ABORT, 'batch_exceptions: a resolved exception is final (POS212)');
END;

CREATE TRIGGER batch_exceptions_identity_immutable BEFORE UPDATE OF id, batch_id, kind, found_by,
  idempotency_key, payment_id, detail, raised_seq, raised_at ON batch_exceptions
BEGIN
  SELECT RAISE(ABORT, 'batch_exceptions: what was found never changes, only its resolution (POS212)');
END;

CREATE TRIGGER batch_exceptions_no_delete BEFORE DELETE ON batch_exceptions
BEGIN
  SELECT RAISE(ABORT, 'batch_exceptions are never deleted (POS212)');
END;

CREATE TABLE batch_records (
  key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255 AND key NOT GLOB '*[^!-~]*'),
  seq INTEGER NOT NULL UNIQUE CHECK (seq > 0),
  batch_id TEXT NOT NULL REFERENCES batches (id),
  kind TEXT NOT NULL CHECK (kind IN ('close', 'check', 'resend', 'void')),
  wire_key TEXT NOT NULL CHECK (length(wire_key) BETWEEN 1 AND 255 AND wire_key NOT GLOB '*[^!-~]*'),
  body TEXT NOT NULL CHECK (json_valid(body) AND json_type(body) = 'object'),
  state TEXT NOT NULL CHECK (state IN ('pending', 'acked', 'dead')),
  answer TEXT CHECK (answer IS NULL OR (json_valid(answer) AND json_type(answer) = 'object')),
  dead_reason TEXT CHECK (dead_reason IS NULL OR length(dead_reason) BETWEEN 1 AND 500),
  matched INTEGER NOT NULL DEFAULT 0 CHECK (matched IN (0, 1)),
  created_at TEXT NOT NULL CHECK (created_at GLOB ${ISO}),
  acked_at TEXT CHECK (acked_at IS NULL OR acked_at GLOB ${ISO}),
  CHECK ((state = 'acked') = (acked_at IS NOT NULL)),
  CHECK ((state = 'dead') = (dead_reason IS NOT NULL)),
  CHECK (matched = 0 OR answer IS NOT NULL)
) STRICT;

CREATE INDEX batch_records_by_state ON batch_records (state, seq);
CREATE INDEX batch_records_by_wire_key ON batch_records (wire_key, state);

CREATE TRIGGER batch_records_seq_forward BEFORE INSERT ON batch_records
WHEN NEW.seq <= coalesce((SELECT max(seq) FROM outbox), 0)
  OR NEW.seq <= coalesce((SELECT max(seq) FROM batch_records), 0)
  OR NEW.state <> 'pending'
BEGIN
  SELECT RAISE(ABORT, 'batch_records: a new record is pending and comes after every outbox and batch record (POS215)');
END;

CREATE TRIGGER batch_records_identity_immutable BEFORE UPDATE OF key, seq, batch_id, kind, wire_key,
  body, created_at ON batch_records
BEGIN
  SELECT RAISE(ABORT, 'batch_records: key, seq, batch, kind and body never change (POS215)');
END;

CREATE TRIGGER batch_records_no_delete BEFORE DELETE ON batch_records
BEGIN
  SELECT RAISE(ABORT, 'batch_records are never deleted (POS215)');
END;

-- Existing payments join an initial batch (issue 17).
INSERT INTO batches (id, terminal, opened_at, state)
  VALUES ('bat_' || lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-'
      || lower(hex(randomblob(2))) || '-' || lower(hex(randomblob(2))) || '-'
      || lower(hex(randomblob(6))),
    'terminal',
    coalesce((SELECT min(created_at) FROM payments), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    'open');
UPDATE payments SET batch_id = (SELECT id FROM batches WHERE state = 'open');
`;

/**
 * All migrations, in order. `MIGRATIONS.at(-1).version` is the schema version this agent writes.
 *
 * 1 — payments projection, payment_transitions, events + chain_head, outbox, sealed_cards.
 * 2 — the payment state machine's transitions; `approval` and `offline_mode` columns.
 * 3 — retention: `purged_payments` tombstones and `purged_events` chain links.
 * 4 — store kernel: `ack_events` (one event per ack message), chain checkpoints, outbox counts,
 *     payment list indexes.
 * 5 — reconciliation: batches, payments.batch_id, batch events (hash-chained), exceptions, batch
 *     records for the cloud.
 */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'payments, events, outbox, sealed_cards', sql: V1_SQL },
  { version: 2, name: 'payment state machine: transitions, approval, offline mode', sql: V2_SQL },
  { version: 3, name: 'retention: purged payments and kept chain links', sql: V3_SQL },
  { version: 4, name: 'store kernel: ack events, chain checkpoints, outbox counts', sql: V4_SQL },
  { version: 5, name: 'reconciliation: batches, batch events, exceptions', sql: V5_SQL },
];

/** The schema version of this agent: the highest migration version. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
