import { ISO, type Migration } from './migration.js';

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

/** Migration 5: `PRAGMA user_version` 5. */
export const V5: Migration = {
  version: 5,
  name: 'reconciliation: batches, batch events, exceptions',
  sql: V5_SQL,
};
