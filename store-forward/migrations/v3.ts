import { ISO, type Migration } from './migration.js';

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

/** Migration 3: `PRAGMA user_version` 3. */
export const V3: Migration = {
  version: 3,
  name: 'retention: purged payments and kept chain links',
  sql: V3_SQL,
};
