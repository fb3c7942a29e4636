import { ISO, type Migration } from './migration.js';

/**
 * Migration 7 — fewer WAL pages per payment commit (issue 9: a payment's store work at the speed
 * of the disk). A commit is fsync-bound and every b-tree it touches costs at least one 4 KiB WAL
 * page; an offline payment's commit touched 21 b-trees and wrote ~28 pages (~19 after this),
 * against ~3 for a bare single-row commit (bench/wal-pages.ts). Three tables are rebuilt with
 * the same columns, in the same order, and the same rules; only b-trees no query reads go:
 *
 * - `events`: the `UNIQUE (hash)` index goes. No query looks an event up by its hash; the chain
 *   (each `prev_hash` equal to the previous event's `hash`, checked by `events_link` on insert
 *   and by the walk) is what makes an event's place certain, and a random 32-byte key put every
 *   event on its own leaf: ~3.5 pages of an offline commit. The foreign key `outbox.event_seq`
 *   is replaced by a condition of `events_no_delete` (below), so nothing references `events`.
 * - `outbox`: `seq` becomes the rowid (`INTEGER PRIMARY KEY`): the queue's own order is the
 *   table's, `max(seq)` is the last row, and the separate `UNIQUE (seq)` index goes; `key` keeps
 *   its uniqueness (`UNIQUE`), `(payment_id, type)` too. `UNIQUE (event_seq)` and its foreign key
 *   go (no query reads outbox by event; one index page per record): `outbox_insert_rules` now
 *   also refuses a second record of the same event, and `events_no_delete` refuses to
 *   delete an event a record still names, both through the `(payment_id, type)` index.
 *   `outbox_by_state` is `(state)`, which is `(state, seq)` with seq the rowid.
 * - `sealed_cards`: `WITHOUT ROWID`, keyed by `payment_id`: one b-tree instead of two.
 * - `outbox_counts` (a table of four rows, one more page per commit with an outbox record) becomes
 *   four columns of the `chain_head` row, which every such commit writes anyway, and a view of
 *   the same name and shape for the readers; `chain_head_forward_only` now watches `seq` and
 *   `hash` only.
 * - `payments_by_created` goes: `payments_by_state_created` serves the list without a state too
 *   (sql.ts `listPayments`: the newest page of each of the 12 states, merged; at most limit × 12
 *   index entries read), so a payment's creation updates one created_at index, not two.
 *
 * - `ack_event_members` gets an index on `event_seq`: start-up reads the payments an ack event
 *   changed after the verified checkpoint (sql.ts `paymentsChangedAfter`), which scanned every
 *   member row ever written without it. One more page per ack commit (of ~180 records), none
 *   per payment.
 *
 * Every trigger of the rebuilt tables is created again as it was (the latest version of each),
 * with the two conditions above added. `PRAGMA legacy_alter_table` is on for the drops and
 * renames only, so that triggers of other tables naming `outbox` or `events` (which exist again
 * by the end) are left as written.
 * The rebuild runs once, at the upgrade (~1.2 s for 20,000 payments); the old tables' pages stay
 * in the file as free pages that later commits reuse.
 * Literal text like every migration; test/store-forward/migration-v7.test.ts upgrades a version 6
 * file with data and checks rows, rules and query plans.
 */
const V7_SQL = `
PRAGMA legacy_alter_table = ON;

-- events: the chain without a hash index.
CREATE TABLE events_v7 (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  payment_id TEXT NOT NULL REFERENCES payments (id),
  type TEXT NOT NULL CHECK (type IN ('payment_started', 'card_read', 'pin_requested',
    'authorization_requested', 'approved', 'declined', 'payment_stored', 'forwarded',
    'cloud_approved', 'cloud_declined', 'confirmed', 'dead_lettered', 'requeued', 'canceled',
    'failed', 'reversed')),
  at TEXT NOT NULL CHECK (at GLOB ${ISO}),
  data TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
  hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO events_v7 (seq, payment_id, type, at, data, prev_hash, hash)
  SELECT seq, payment_id, type, at, data, prev_hash, hash FROM events ORDER BY seq;

-- outbox: seq is the rowid; the event's uniqueness and existence kept by triggers.
CREATE TABLE outbox_v7 (
  key TEXT NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 255 AND key NOT GLOB '*[^!-~]*'),
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  payment_id TEXT NOT NULL REFERENCES payments (id),
  event_seq INTEGER NOT NULL CHECK (event_seq > 0),
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
INSERT INTO outbox_v7 (key, seq, payment_id, event_seq, type, state, batch_id, attempts,
    ack_status, dead_reason, created_at, updated_at, acked_at)
  SELECT key, seq, payment_id, event_seq, type, state, batch_id, attempts, ack_status,
    dead_reason, created_at, updated_at, acked_at FROM outbox ORDER BY seq;

-- sealed_cards: one b-tree keyed by the payment.
CREATE TABLE sealed_cards_v7 (
  payment_id TEXT NOT NULL PRIMARY KEY REFERENCES payments (id),
  sealed TEXT CHECK (sealed IS NULL OR (length(sealed) BETWEEN 96 AND 8192
    AND length(sealed) % 4 = 0 AND sealed NOT GLOB '*[^A-Za-z0-9+/=]*')),
  sred_ksn TEXT CHECK (sred_ksn IS NULL OR (length(sred_ksn) IN (20, 24)
    AND sred_ksn NOT GLOB '*[^0-9A-F]*')),
  sred_ciphertext TEXT CHECK (sred_ciphertext IS NULL OR (length(sred_ciphertext) BETWEEN 16 AND 8192
    AND length(sred_ciphertext) % 2 = 0 AND sred_ciphertext NOT GLOB '*[^0-9A-F]*')),
  created_at TEXT NOT NULL CHECK (created_at GLOB ${ISO}),
  CHECK (sealed IS NOT NULL OR sred_ksn IS NOT NULL),
  CHECK ((sred_ksn IS NULL) = (sred_ciphertext IS NULL))
) STRICT, WITHOUT ROWID;
INSERT INTO sealed_cards_v7 (payment_id, sealed, sred_ksn, sred_ciphertext, created_at)
  SELECT payment_id, sealed, sred_ksn, sred_ciphertext, created_at FROM sealed_cards;

-- Children first: nothing references outbox or sealed_cards; events only from outbox.
DROP TABLE sealed_cards;
DROP TABLE outbox;
DROP TABLE events;
ALTER TABLE events_v7 RENAME TO events;
ALTER TABLE outbox_v7 RENAME TO outbox;
ALTER TABLE sealed_cards_v7 RENAME TO sealed_cards;

PRAGMA legacy_alter_table = OFF;

CREATE INDEX events_by_payment ON events (payment_id, seq);
CREATE INDEX outbox_by_state ON outbox (state);
DROP INDEX payments_by_created;

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

-- Migration 3's rule, and what the foreign key outbox.event_seq did: an event an outbox record
-- names stays (one trigger, so the append-only rule has one name and one message).
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM purged_events WHERE seq = OLD.seq AND hash = OLD.hash)
  OR EXISTS (SELECT 1 FROM outbox WHERE payment_id = OLD.payment_id AND event_seq = OLD.seq)
BEGIN
  SELECT RAISE(ABORT, 'events are append-only: DELETE refused unless retention kept the link in purged_events and no outbox record names the event (POS220)');
END;

CREATE TRIGGER outbox_insert_rules BEFORE INSERT ON outbox
WHEN NEW.seq <= coalesce((SELECT max(seq) FROM outbox), 0)
  OR (NEW.type = 'payment'
    AND NEW.key IS NOT (SELECT idempotency_key FROM payments WHERE id = NEW.payment_id))
  OR NEW.payment_id IS NOT (SELECT payment_id FROM events WHERE seq = NEW.event_seq)
  OR EXISTS (SELECT 1 FROM outbox WHERE payment_id = NEW.payment_id AND event_seq = NEW.event_seq)
  OR NEW.state <> 'pending'
BEGIN
  SELECT RAISE(ABORT, 'outbox: a new record is pending, comes after every other record, carries its payment''s idempotency key and an event of that payment no other record carries (POS215)');
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

CREATE TRIGGER outbox_ack_deletes_sealed AFTER UPDATE OF state ON outbox
WHEN NEW.state = 'acked'
BEGIN
  DELETE FROM sealed_cards WHERE payment_id = NEW.payment_id;
END;

CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
WHEN OLD.state <> 'acked' OR NOT EXISTS (SELECT 1 FROM purged_payments WHERE id = OLD.payment_id)
BEGIN
  SELECT RAISE(ABORT, 'outbox records are never deleted: a failed record goes to dead; only acked records of a purged payment go (POS215)');
END;

-- The queue's counts per state ride in the chain head's row (one page that every commit with an
-- event writes anyway, instead of a table of their own); outbox_counts is a view of them.
DROP TRIGGER chain_head_forward_only;
ALTER TABLE chain_head ADD COLUMN outbox_pending INTEGER NOT NULL DEFAULT 0
  CHECK (outbox_pending >= 0);
ALTER TABLE chain_head ADD COLUMN outbox_in_flight INTEGER NOT NULL DEFAULT 0
  CHECK (outbox_in_flight >= 0);
ALTER TABLE chain_head ADD COLUMN outbox_acked INTEGER NOT NULL DEFAULT 0
  CHECK (outbox_acked >= 0);
ALTER TABLE chain_head ADD COLUMN outbox_dead INTEGER NOT NULL DEFAULT 0 CHECK (outbox_dead >= 0);
UPDATE chain_head SET
  outbox_pending = (SELECT count(*) FROM outbox WHERE state = 'pending'),
  outbox_in_flight = (SELECT count(*) FROM outbox WHERE state = 'in_flight'),
  outbox_acked = (SELECT count(*) FROM outbox WHERE state = 'acked'),
  outbox_dead = (SELECT count(*) FROM outbox WHERE state = 'dead')
WHERE id = 1;
DROP TABLE outbox_counts;

CREATE VIEW outbox_counts (state, n) AS
  SELECT 'pending', coalesce((SELECT outbox_pending FROM chain_head WHERE id = 1), 0)
  UNION ALL SELECT 'in_flight', coalesce((SELECT outbox_in_flight FROM chain_head WHERE id = 1), 0)
  UNION ALL SELECT 'acked', coalesce((SELECT outbox_acked FROM chain_head WHERE id = 1), 0)
  UNION ALL SELECT 'dead', coalesce((SELECT outbox_dead FROM chain_head WHERE id = 1), 0);

-- Migration 1's rule for the head itself; the counts beside it move freely.
CREATE TRIGGER chain_head_forward_only BEFORE UPDATE OF seq, hash ON chain_head
WHEN NEW.seq IS NOT OLD.seq + 1
BEGIN
  SELECT RAISE(ABORT, 'chain_head only moves forward by one event (POS220)');
END;

-- Every outbox record comes after an event, so the head's row exists when these run.
CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox
BEGIN
  UPDATE chain_head SET outbox_pending = outbox_pending + (NEW.state = 'pending'),
    outbox_in_flight = outbox_in_flight + (NEW.state = 'in_flight'),
    outbox_acked = outbox_acked + (NEW.state = 'acked'),
    outbox_dead = outbox_dead + (NEW.state = 'dead')
  WHERE id = 1;
END;

CREATE TRIGGER outbox_counts_update AFTER UPDATE OF state ON outbox
WHEN OLD.state IS NOT NEW.state
BEGIN
  UPDATE chain_head SET outbox_pending = outbox_pending - (OLD.state = 'pending'),
    outbox_in_flight = outbox_in_flight - (OLD.state = 'in_flight'),
    outbox_acked = outbox_acked - (OLD.state = 'acked'),
    outbox_dead = outbox_dead - (OLD.state = 'dead')
  WHERE id = 1;
  UPDATE chain_head SET outbox_pending = outbox_pending + (NEW.state = 'pending'),
    outbox_in_flight = outbox_in_flight + (NEW.state = 'in_flight'),
    outbox_acked = outbox_acked + (NEW.state = 'acked'),
    outbox_dead = outbox_dead + (NEW.state = 'dead')
  WHERE id = 1;
END;

CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox
BEGIN
  UPDATE chain_head SET outbox_pending = outbox_pending - (OLD.state = 'pending'),
    outbox_in_flight = outbox_in_flight - (OLD.state = 'in_flight'),
    outbox_acked = outbox_acked - (OLD.state = 'acked'),
    outbox_dead = outbox_dead - (OLD.state = 'dead')
  WHERE id = 1;
END;

CREATE TRIGGER sealed_cards_not_after_ack BEFORE INSERT ON sealed_cards
WHEN EXISTS (SELECT 1 FROM outbox WHERE payment_id = NEW.payment_id AND state = 'acked')
BEGIN
  SELECT RAISE(ABORT, 'sealed_cards: the cloud already acknowledged this payment (POS212)');
END;

CREATE TRIGGER sealed_cards_immutable BEFORE UPDATE ON sealed_cards
BEGIN
  SELECT RAISE(ABORT, 'sealed_cards rows never change (POS212)');
END;

CREATE INDEX ack_event_members_by_event ON ack_event_members (event_seq);
`;

/** Migration 7: `PRAGMA user_version` 7. */
export const V7: Migration = {
  version: 7,
  name: 'fewer b-trees per payment commit',
  sql: V7_SQL,
};
