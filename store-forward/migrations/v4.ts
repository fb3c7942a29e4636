import { ISO, type Migration } from './migration.js';

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

/** Migration 4: `PRAGMA user_version` 4. */
export const V4: Migration = {
  version: 4,
  name: 'store kernel: ack events, chain checkpoints, outbox counts',
  sql: V4_SQL,
};
