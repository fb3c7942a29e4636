/**
 * The store's SQL, prepared once per connection: every statement the store runs is here, by
 * name, so the schema (migrations/) and the queries can be read side by side.
 */
import type Database from 'better-sqlite3';
import {
  FINAL_STATES,
  IN_PROGRESS_STATES,
  OFFLINE_OPEN_STATES,
  PAYMENT_STATES,
  type PaymentState,
} from './model.js';

/** The `type` the chain walk gives an `ack_events` row (payment id `''`). */
export const ACK_EVENT_TYPE = 'acks_applied';

/** Sorts before every ISO timestamp / payment id: the "no cursor" end of a keyset page. */
export const KEYSET_END = '\uffff';

/** A state list as the inside of an SQL `IN (…)`: quoted literals of known constants only. */
function sqlStates(states: readonly PaymentState[]): string {
  return states.map((state) => `'${state}'`).join(', ');
}

/** One state's newest keys after the cursor (@a, @b), at most @n: a branch of `listPayments`. */
function newestKeysOfState(state: PaymentState): string {
  return `SELECT * FROM (SELECT created_at, id FROM payments WHERE state = '${state}'
        AND (created_at, id) < (@a, @b) ORDER BY created_at DESC, id DESC LIMIT @n)`;
}

/** Every statement of the store, by name (prepared once per connection, {@link Statements}). */
export const SQL = {
  paymentById: 'SELECT * FROM payments WHERE id = ?',
  paymentByKey: 'SELECT * FROM payments WHERE idempotency_key = ?',
  // Newest first by index (payments_by_state_created), keyset pagination: the page after
  // (created_at, id) of the last payment of the previous page. Without a state: the newest page
  // of each state (one index range each, covered: keys only), merged, then the page's rows; it
  // reads at most limit × 12 index entries, whatever the table holds, and spares every commit
  // that creates a payment a second created_at index (migration 7 drops payments_by_created).
  listPayments: `SELECT p.* FROM (SELECT created_at, id FROM (
      ${PAYMENT_STATES.map(newestKeysOfState).join('\n      UNION ALL ')})
      ORDER BY created_at DESC, id DESC LIMIT @n) k
    JOIN payments p ON p.id = k.id ORDER BY k.created_at DESC, k.id DESC`,
  listPaymentsByState: `SELECT * FROM payments WHERE state = ? AND (created_at, id) < (?, ?)
    ORDER BY state DESC, created_at DESC, id DESC LIMIT ?`,
  paymentsPage: 'SELECT * FROM payments WHERE id > ? ORDER BY id LIMIT ?',
  // The open batch is set here (index batches_one_open), so the trigger payments_join_open_batch
  // (migration 5, for other writers) does not UPDATE the row it just inserted.
  insertPayment: `INSERT INTO payments (id, idempotency_key, amount_minor, currency, reference, state,
      card_token, card_first6, card_brand, card_last4, card_expiry_month, card_expiry_year,
      card_entry_mode, cardholder_name, auth_code, decline_code, reason, created_at, updated_at,
      forwarding_deadline_at, approval, offline_mode, batch_id)
    VALUES (@id, @idempotency_key, @amount_minor, @currency, @reference, @state,
      @card_token, @card_first6, @card_brand, @card_last4, @card_expiry_month, @card_expiry_year,
      @card_entry_mode, @cardholder_name, @auth_code, @decline_code, @reason, @created_at,
      @updated_at, @forwarding_deadline_at, @approval, @offline_mode,
      (SELECT id FROM batches WHERE state = 'open'))`,
  updatePayment: `UPDATE payments SET state = @state, card_token = @card_token,
      card_first6 = @card_first6, card_brand = @card_brand, card_last4 = @card_last4,
      card_expiry_month = @card_expiry_month, card_expiry_year = @card_expiry_year,
      card_entry_mode = @card_entry_mode, cardholder_name = @cardholder_name,
      auth_code = @auth_code, decline_code = @decline_code, reason = @reason,
      updated_at = @updated_at, forwarding_deadline_at = @forwarding_deadline_at,
      approval = @approval
    WHERE id = @id`,
  chainHead: 'SELECT seq, hash FROM chain_head WHERE id = 1',
  insertEvent: `INSERT INTO events (seq, payment_id, type, at, data, prev_hash, hash)
    VALUES (@seq, @payment_id, @type, @at, @data, @prev_hash, @hash)`,
  eventsOfPayment: 'SELECT * FROM events WHERE payment_id = ? ORDER BY seq',
  eventsOfPaymentRange:
    'SELECT * FROM events WHERE payment_id >= ? AND payment_id <= ? ORDER BY payment_id, seq',
  // Payment events, ack events (payment_id ''), batch events (payment_id = the batch id,
  // migration 5) and the links of purged events: one chain in seq
  // order, from a checkpoint on (seq > ?), a page at a time (LIMIT ?).
  chainFrom: `SELECT * FROM (
      SELECT seq, payment_id, type, at, data, prev_hash, hash FROM events WHERE seq > @a
      UNION ALL SELECT seq, '', '${ACK_EVENT_TYPE}', at, data, prev_hash, hash FROM ack_events WHERE seq > @a
      UNION ALL SELECT seq, batch_id, type, at, data, prev_hash, hash FROM batch_events WHERE seq > @a
      UNION ALL SELECT seq, payment_id, NULL, NULL, NULL, prev_hash, hash FROM purged_events WHERE seq > @a)
    ORDER BY seq LIMIT @b`,
  lastCheckpoint:
    'SELECT seq, hash, events, verified_at FROM chain_checkpoints ORDER BY seq DESC LIMIT 1',
  insertCheckpoint: `INSERT OR IGNORE INTO chain_checkpoints (seq, hash, events, verified_at)
    VALUES (@seq, @hash, @events, @verified_at)`,
  insertBatchEvent: `INSERT INTO batch_events (seq, batch_id, type, at, data, prev_hash, hash)
    VALUES (@seq, @batch_id, @type, @at, @data, @prev_hash, @hash)`,
  insertAckEvent: `INSERT INTO ack_events (seq, at, data, prev_hash, hash)
    VALUES (@seq, @at, @data, @prev_hash, @hash)`,
  // One statement for the whole set: the members of an ack event (a JSON array of payment ids).
  insertAckMembers: `INSERT OR IGNORE INTO ack_event_members (payment_id, event_seq)
    SELECT value, @b FROM json_each(@a)`,
  ackEventsOfPayment: `SELECT a.seq, a.at, a.data FROM ack_event_members m
      JOIN ack_events a ON a.seq = m.event_seq
    WHERE m.payment_id = ? ORDER BY a.seq`,
  ackEventsOfPaymentRange: `SELECT m.payment_id, a.seq, a.at, a.data FROM ack_event_members m
      JOIN ack_events a ON a.seq = m.event_seq
    WHERE m.payment_id >= ? AND m.payment_id <= ? ORDER BY m.payment_id, a.seq`,
  // Payments with an event after seq ? (start-up checks only those against their events).
  // Both sides are index ranges: the events after the checkpoint a range of the primary key
  // (NOT INDEXED: with DISTINCT or UNION the planner preferred the covering index
  // events_by_payment and scanned every event, 33 ms of start-up with 100,000 stored), the ack
  // members one of their event_seq index (migration 7). UNION ALL, then DISTINCT: a UNION's
  // merge wants both sides in payment_id order, so it scanned ack_event_members by its key.
  paymentsChangedAfter: `SELECT DISTINCT id FROM (
      SELECT payment_id AS id FROM events NOT INDEXED WHERE seq > @a
      UNION ALL SELECT payment_id FROM ack_event_members WHERE event_seq > @a)`,
  // Never below a purged record's seq: the cloud sees seq only grow.
  // Batch records (migration 5) share the outbox's seq space: the cloud sees one order.
  nextOutboxSeq: `SELECT max(coalesce((SELECT max(seq) FROM outbox), 0),
      coalesce((SELECT max(last_outbox_seq) FROM purged_payments), 0),
      coalesce((SELECT max(seq) FROM batch_records), 0)) + 1 AS seq`,
  purgedByKey: 'SELECT id, purged_at FROM purged_payments WHERE idempotency_key = ?',
  settledBefore: `SELECT p.* FROM payments p
    WHERE p.state IN (${sqlStates(FINAL_STATES)})
      AND p.updated_at < ?
      AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.payment_id = p.id AND o.state <> 'acked')
    ORDER BY p.updated_at LIMIT ?`,
  lastOutboxSeqOf: 'SELECT max(seq) AS seq FROM outbox WHERE payment_id = ?',
  insertPurgedPayment: `INSERT INTO purged_payments (id, idempotency_key, state, created_at,
      updated_at, purged_at, last_outbox_seq)
    VALUES (@id, @idempotency_key, @state, @created_at, @updated_at, @purged_at, @last_outbox_seq)`,
  keepLinks: `INSERT INTO purged_events (seq, payment_id, prev_hash, hash)
    SELECT seq, payment_id, prev_hash, hash FROM events WHERE payment_id = ?`,
  deleteOutboxOf: 'DELETE FROM outbox WHERE payment_id = ?',
  deleteEventsOf: 'DELETE FROM events WHERE payment_id = ?',
  deleteAckMembersOf: 'DELETE FROM ack_event_members WHERE payment_id = ?',
  deletePayment: 'DELETE FROM payments WHERE id = ?',
  insertOutbox: `INSERT INTO outbox (key, seq, payment_id, event_seq, type, state, attempts,
      created_at, updated_at)
    VALUES (@key, @seq, @payment_id, @event_seq, @type, 'pending', 0, @at, @at)`,
  insertSealed: `INSERT INTO sealed_cards (payment_id, sealed, sred_ksn, sred_ciphertext, created_at)
    VALUES (@payment_id, @sealed, @sred_ksn, @sred_ciphertext, @created_at)`,
  outboxByKey: 'SELECT * FROM outbox WHERE key = ?',
  deadOutbox: "SELECT * FROM outbox WHERE state = 'dead' ORDER BY seq",
  nextPending: `SELECT o.key, o.seq, o.type, o.created_at AS at, p.id, p.amount_minor, p.currency,
      p.reference, p.created_at AS payment_created_at, p.card_token, p.card_brand, p.card_first6,
      p.card_last4, p.card_expiry_month, p.card_expiry_year, p.card_entry_mode,
      s.sealed, s.sred_ksn, s.sred_ciphertext, e.hash AS chain
    FROM outbox o
      JOIN payments p ON p.id = o.payment_id
      JOIN events e ON e.seq = o.event_seq
      LEFT JOIN sealed_cards s ON s.payment_id = o.payment_id
    WHERE o.state = 'pending' AND o.seq > ?
    ORDER BY o.seq LIMIT ?`,
  deleteSealed: 'DELETE FROM sealed_cards WHERE payment_id = ?',
  outboxOfPayment: 'SELECT * FROM outbox WHERE payment_id = ? ORDER BY seq',
  paymentsInStates: `SELECT * FROM payments WHERE state IN (${sqlStates(IN_PROGRESS_STATES)})
    ORDER BY created_at`,
  // The running total (migration 6, kept by triggers): a row per currency ever approved offline
  // (n = 0 once all settled), whatever the backlog.
  offlineExposure: 'SELECT currency, n, total_minor AS total FROM offline_exposure',
  // The first entry of the partial index payments_offline_open (migration 6), not a scan.
  offlineEarliestDeadline: `SELECT min(forwarding_deadline_at) AS deadline
    FROM payments INDEXED BY payments_offline_open WHERE approval = 'offline' AND state IN (${sqlStates(OFFLINE_OPEN_STATES)})`,
  // The exposure counted from the payments (the integrity pass compares it with the running
  // total): reads only the partial index payments_offline_open, which covers it.
  offlineExposureCounted: `SELECT currency, count(*) AS n, sum(amount_minor) AS total
    FROM payments INDEXED BY payments_offline_open WHERE approval = 'offline' AND state IN (${sqlStates(OFFLINE_OPEN_STATES)})
    GROUP BY currency`,
  deadlineWarnings: `SELECT * FROM payments INDEXED BY payments_offline_open
    WHERE approval = 'offline'
      AND state IN (${sqlStates(OFFLINE_OPEN_STATES)}) AND forwarding_deadline_at <= ?
    ORDER BY forwarding_deadline_at LIMIT 100`,
  setDead: "UPDATE outbox SET state = 'dead', dead_reason = ?, updated_at = ? WHERE key = ?",
  setPending: `UPDATE outbox SET state = 'pending', dead_reason = NULL, batch_id = NULL,
      updated_at = ? WHERE key = ?`,
  releaseInFlight: `UPDATE outbox SET state = 'pending', batch_id = NULL, updated_at = ?
    WHERE state = 'in_flight'`,
  countByState: 'SELECT state, n FROM outbox_counts',
  // The outbox rows of a set of keys (a JSON array) and the payment fields an acknowledgement
  // reads or changes, for applying acks as a set (ack-set.ts reads it in raw mode, by position).
  ackTargets: `SELECT o.key, o.payment_id, o.type, o.state, p.state, p.approval, p.auth_code,
      p.decline_code, p.reason, p.updated_at
    FROM json_each(?) j JOIN outbox o ON o.key = j.value JOIN payments p ON p.id = o.payment_id`,
  // Set-based: the sealed card data of the acknowledged payments (JSON array of ids), deleted
  // before the outbox update so its per-row trigger (outbox_ack_deletes_sealed, the schema's
  // guarantee) finds nothing left to delete: one DELETE costs a tenth of 180 trigger deletes.
  deleteSealedOfPayments: `DELETE FROM sealed_cards WHERE payment_id IN (SELECT value FROM json_each(?))`,
  // Set-based: the keys of the JSON array → acked with one status (@s: one run per status,
  // accepted or duplicate). A constant status and `IN` read each key once; `j.value ->> n` parsed
  // every element's JSON again per column (~15 % of the statement).
  ackKeys: `UPDATE outbox SET state = 'acked', ack_status = @s, acked_at = @b, updated_at = @b,
      dead_reason = NULL
    WHERE key IN (SELECT value FROM json_each(@a))`,
  // The first record of each undelivered state by seq (index outbox_by_state), not a scan.
  oldestQueued: `SELECT min(at) AS at FROM (
      SELECT * FROM (SELECT created_at AS at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1)
      UNION ALL
      SELECT * FROM (SELECT created_at AS at FROM outbox WHERE state = 'in_flight' ORDER BY seq LIMIT 1))`,
} as const;

/**
 * The payment columns an acknowledgement can change, in the order {@link applyPaymentRowsSql}
 * expects their values after the payment id.
 */
export const ACK_PAYMENT_COLUMNS = [
  'state',
  'auth_code',
  'decline_code',
  'reason',
  'approval',
  'updated_at',
] as const;

/** One of {@link ACK_PAYMENT_COLUMNS}. */
export type AckPaymentColumn = (typeof ACK_PAYMENT_COLUMNS)[number];

/**
 * Set-based: the new projection of every payment whose row the acks changed. `@a` is a JSON array
 * of `[id, ...values]`, one value per column of `columns` (in that order); `updated_at` is `@b`
 * (the ack's time, the same for every row) unless `columns` names it. Only the columns some row
 * of the set changes are written: each costs a JSON extraction, its CHECKs and its `UPDATE OF`
 * triggers per row, and an acknowledgement usually changes state and auth code only.
 *
 * @param columns — a subset of {@link ACK_PAYMENT_COLUMNS} (constants only: they become SQL text).
 */
export function applyPaymentRowsSql(columns: readonly AckPaymentColumn[]): string {
  const sets = columns.map((column, i) => {
    if (!ACK_PAYMENT_COLUMNS.includes(column)) throw new Error(`not an ack column: ${column}`);
    return `${column} = j.value ->> ${i + 1}`;
  });
  if (!columns.includes('updated_at')) sets.push('updated_at = @b');
  return `UPDATE payments SET ${sets.join(', ')}
    FROM json_each(@a) j WHERE payments.id = j.value ->> 0`;
}

/** The prepared form of {@link SQL}, one better-sqlite3 statement per name. */
export type Statements = { [K in keyof typeof SQL]: Database.Statement };

/** Prepares every statement of a table of SQL texts on `db`, by the same names. */
export function prepareAll<T extends Record<string, string>>(
  db: Database.Database,
  texts: T,
): { [K in keyof T]: Database.Statement } {
  return Object.fromEntries(
    Object.entries(texts).map(([name, text]) => [name, db.prepare(text)]),
  ) as { [K in keyof T]: Database.Statement };
}

/** Prepares every statement of {@link SQL} on `db`. */
export function prepareStatements(db: Database.Database): Statements {
  return prepareAll(db, SQL);
}
