/**
 * `PaymentStore`: payments, their event log, the transactional outbox and the sealed card data
 * in one SQLite file (DESIGN §4; the interface of docs/internal-contracts.md).
 *
 * ```
 * createPayment ──► payments (projection) ◄── applyEvent(events) ── checkProjection()
 *        │                ▲
 *        ├──► events (append-only, hash chain) ───────────────────── verifyChain()
 *        ├──► outbox: pending ─markInFlight─► in_flight ─applyAcks─► acked (sealed row deleted)
 *        │             ▲   └──────────────────────┬──applyAcks(rejected)──► dead
 *        │             └── releaseInFlight / retryDead ◄──────────────────────┘
 *        └──► sealed_cards (until the cloud acknowledges, PCI DSS 4.0.1 req. 3.3.1)
 * ```
 *
 * Every method is synchronous on purpose (better-sqlite3): each write runs in one
 * `BEGIN IMMEDIATE` transaction that commits with `synchronous=FULL` before the method returns,
 * so once `createPayment` returns, the payment survives a power cut (the API answers the POS
 * app only after that). Every payment state change goes through one internal function that
 * appends the event and writes what {@link applyEvent} makes of it, in the same transaction.
 */
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { AgentError, isAgentError } from '../common/agent-error.js';
import { isoAt, systemClock, type Clock } from '../common/clock.js';
import { openDatabase, type SqliteDatabase } from './database.js';
import { storeError, type StoreErrorCode } from './errors.js';
import { GENESIS_HASH, canonicalJson, eventHash } from './hash-chain.js';
import {
  APPROVED_STATES,
  FINAL_STATES,
  IN_PROGRESS_STATES,
  OFFLINE_MODES,
  OFFLINE_OPEN_STATES,
  PAYMENT_STATES,
  VOID_KEY_SUFFIX,
  type OfflineMode,
  type AckResult,
  type AppliedAck,
  type ChainReport,
  type EventType,
  type NewPayment,
  type OutboxRecord,
  type OutboxState,
  type Payment,
  type PaymentCard,
  type PaymentState,
  type ProjectionReport,
  type PurgeReport,
  type QueueStats,
  type StoredEvent,
} from './model.js';
import {
  decideOffline,
  type OfflineDecision,
  type OfflineExposure,
  type OfflinePolicy,
} from './offline-policy.js';
import { applyEvent } from './projection.js';
import { checkInteger, checkNewPayment, safeReason } from './validate.js';

/** The store's types, re-exported so callers import them with the store (they live in model.ts). */
export type { OfflineDecision, OfflineExposure, OfflinePolicy } from './offline-policy.js';
export type {
  AckResult,
  Approval,
  OfflineMode,
  AppliedAck,
  CardBrand,
  ChainReport,
  EntryMode,
  EventType,
  NewPayment,
  OutboxRecord,
  OutboxState,
  Payment,
  PaymentCard,
  PaymentState,
  ProjectionReport,
  PurgeReport,
  QueueStats,
  SredData,
  StoredEvent,
} from './model.js';

/** Result of {@link PaymentStore.recoverInterrupted}. */
export interface RecoveryReport {
  /** Payments brought to a final state (`failed`, or `declined` with a void record). */
  recovered: Payment[];
  /** Payments left as they were: their own change was rolled back; `error` says why (POS2xx). */
  failed: {
    paymentId: string;
    idempotencyKey: string;
    /** The state the payment is still in. */
    state: PaymentState;
    error: AgentError;
  }[];
}

/** Options of {@link PaymentStore.open}. */
export interface PaymentStoreOptions {
  /** Path of the SQLite file; its directory must exist. In-memory databases are refused (POS205). */
  path: string;
  /** Source of timestamps; default: the system clock. */
  clock?: Clock;
  /**
   * How long a stored payment may wait to reach the cloud; it is written to each payment's
   * `forwardingDeadlineAt` by `createPayment` and `storeOffline` alike. The ONE source of the
   * deadline: `storeOffline` does not read the policy's `forwardingDeadlineHours` (the agent opens
   * the store with it, cloud overrides applied, so a change takes effect at the next start).
   * > 0 and ≤ 8760 (one year), default: 72 hours.
   */
  forwardingDeadlineHours?: number;
  /** How long a locked database is waited for; ≥ 0, default: 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * Open for reading only (the field tech's `doctor`, `verify`, `queue`): see
   * `OpenDatabaseOptions.readonly`; every write method then fails with POS207. Default false.
   */
  readonly?: boolean;
}

/**
 * The card columns of `payments` (the schema guarantees all or none are NULL), shared by the
 * row types below and {@link cardOf}.
 */
interface CardColumns {
  card_token: string | null;
  card_brand: string | null;
  card_first6: string | null;
  card_last4: string | null;
  card_expiry_month: number | null;
  card_expiry_year: number | null;
  card_entry_mode: string | null;
}

/** Row of `payments`. */
interface PaymentRow extends CardColumns {
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
interface OutboxRow {
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
interface ChainRow {
  seq: number;
  payment_id: string;
  type: EventType | null;
  at: string | null;
  data: string | null;
  prev_hash: Buffer;
  hash: Buffer;
}

/** Row of `events`. */
interface EventRow {
  seq: number;
  payment_id: string;
  type: EventType;
  at: string;
  data: string;
  prev_hash: Buffer;
  hash: Buffer;
}

/** Row of the `nextPending` join. */
interface PendingRow extends CardColumns {
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

const MAX_PROBLEMS = 100;

/** A syntactically valid card used only to run the shared input checks before a card exists. */
const PLACEHOLDER_CARD: NewPayment['card'] = {
  token: 'tok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  brand: 'unknown',
  first6: '000000',
  last4: '0000',
  expiryMonth: 1,
  expiryYear: 2099,
  entryMode: 'manual',
};
const PAGE = 500;

/** A state list as the inside of an SQL `IN (…)`: quoted literals of known constants only. */
function sqlStates(states: readonly PaymentState[]): string {
  return states.map((state) => `'${state}'`).join(', ');
}

const SQL = {
  paymentById: 'SELECT * FROM payments WHERE id = ?',
  paymentByKey: 'SELECT * FROM payments WHERE idempotency_key = ?',
  listPayments: 'SELECT * FROM payments ORDER BY created_at DESC, id DESC LIMIT ?',
  listPaymentsByState:
    'SELECT * FROM payments WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT ?',
  paymentsPage: 'SELECT * FROM payments WHERE id > ? ORDER BY id LIMIT ?',
  insertPayment: `INSERT INTO payments (id, idempotency_key, amount_minor, currency, reference, state,
      card_token, card_first6, card_brand, card_last4, card_expiry_month, card_expiry_year,
      card_entry_mode, cardholder_name, auth_code, decline_code, reason, created_at, updated_at,
      forwarding_deadline_at, approval, offline_mode)
    VALUES (@id, @idempotency_key, @amount_minor, @currency, @reference, @state,
      @card_token, @card_first6, @card_brand, @card_last4, @card_expiry_month, @card_expiry_year,
      @card_entry_mode, @cardholder_name, @auth_code, @decline_code, @reason, @created_at,
      @updated_at, @forwarding_deadline_at, @approval, @offline_mode)`,
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
  // Stored events and the links of purged ones (migration 3), one chain in seq order.
  allEvents: `SELECT seq, payment_id, type, at, data, prev_hash, hash FROM events
    UNION ALL SELECT seq, payment_id, NULL, NULL, NULL, prev_hash, hash FROM purged_events
    ORDER BY seq`,
  // Never below a purged record's seq: the cloud sees seq only grow.
  nextOutboxSeq: `SELECT max(coalesce((SELECT max(seq) FROM outbox), 0),
      coalesce((SELECT max(last_outbox_seq) FROM purged_payments), 0)) + 1 AS seq`,
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
    WHERE o.state = 'pending'
    ORDER BY o.seq LIMIT ?`,
  deleteSealed: 'DELETE FROM sealed_cards WHERE payment_id = ?',
  outboxOfPayment: 'SELECT * FROM outbox WHERE payment_id = ? ORDER BY seq',
  paymentsInStates: `SELECT * FROM payments WHERE state IN (${sqlStates(IN_PROGRESS_STATES)})
    ORDER BY created_at`,
  offlineExposure: `SELECT currency, count(*) AS n, sum(amount_minor) AS total,
      min(forwarding_deadline_at) AS deadline
    FROM payments WHERE approval = 'offline' AND state IN (${sqlStates(OFFLINE_OPEN_STATES)})
    GROUP BY currency`,
  deadlineWarnings: `SELECT * FROM payments WHERE approval = 'offline'
      AND state IN (${sqlStates(OFFLINE_OPEN_STATES)}) AND forwarding_deadline_at <= ?
    ORDER BY forwarding_deadline_at LIMIT 100`,
  setInFlight: `UPDATE outbox SET state = 'in_flight', attempts = attempts + 1, batch_id = ?,
      updated_at = ? WHERE key = ?`,
  setAcked: `UPDATE outbox SET state = 'acked', ack_status = ?, acked_at = ?, updated_at = ?,
      dead_reason = NULL WHERE key = ?`,
  setDead: "UPDATE outbox SET state = 'dead', dead_reason = ?, updated_at = ? WHERE key = ?",
  setPending: `UPDATE outbox SET state = 'pending', dead_reason = NULL, batch_id = NULL,
      updated_at = ? WHERE key = ?`,
  releaseInFlight: `UPDATE outbox SET state = 'pending', batch_id = NULL, updated_at = ?
    WHERE state = 'in_flight'`,
  countByState: 'SELECT state, count(*) AS n FROM outbox GROUP BY state',
  // The first record of each undelivered state by seq (index outbox_by_state), not a scan.
  oldestQueued: `SELECT min(at) AS at FROM (
      SELECT * FROM (SELECT created_at AS at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1)
      UNION ALL
      SELECT * FROM (SELECT created_at AS at FROM outbox WHERE state = 'in_flight' ORDER BY seq LIMIT 1))`,
} as const;

type Statements = { [K in keyof typeof SQL]: Database.Statement };

/**
 * The payment store (DESIGN §4). Open with {@link PaymentStore.open}; one instance per database
 * file per process; not for use after {@link PaymentStore.close} (POS206).
 *
 * Errors: every method throws only `AgentError`s with POS2xx codes — the ones named on each
 * method, plus POS206 after `close()`, and POS207 when SQLite cannot write (disk full, I/O error,
 * database locked past `busyTimeoutMs`); a write that fails changes nothing.
 */
export class PaymentStore {
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;
  readonly #deadlineMs: number;
  readonly #stmts: Statements;
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Path of the database file. */
  readonly path: string;

  private constructor(db: SqliteDatabase, path: string, clock: Clock, deadlineMs: number) {
    this.#db = db;
    this.path = path;
    this.#clock = clock;
    this.#deadlineMs = deadlineMs;
    this.#stmts = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Statements;
    this.#tx = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Opens (creating if needed) the store: pragmas WAL + synchronous=FULL + foreign_keys +
   * secure_delete, then every pending migration in one transaction.
   *
   * @throws AgentError POS201 cannot open the file (names path and fix), POS202 a migration
   *   failed, POS203 the database is newer than this agent, POS204 not a pos-agent database,
   *   POS205 a pragma did not take (or an in-memory path), POS213 an option out of range.
   */
  static open(opts: PaymentStoreOptions): PaymentStore {
    const hours = opts.forwardingDeadlineHours ?? 72;
    if (typeof hours !== 'number' || !Number.isFinite(hours) || hours <= 0 || hours > 8760) {
      throw storeError(
        'POS213',
        `forwardingDeadlineHours is ${String(hours)}; it must be > 0 and ≤ 8760 (hours)`,
      );
    }
    const db = openDatabase(opts.path, {
      ...(opts.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: opts.busyTimeoutMs }),
      ...(opts.readonly === true ? { readonly: true } : {}),
    });
    return new PaymentStore(
      db,
      opts.path,
      opts.clock ?? systemClock,
      Math.round(hours * 3_600_000),
    );
  }

  /** Closes the database (checkpointing the WAL). Calling it twice is harmless. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /**
   * Stores a payment for forwarding: in ONE transaction the `payments` row (state `stored`, a
   * `forwardingDeadlineAt`), its `payment_stored` event (hash chain), its `pending` outbox row
   * (keyed by the idempotency key, next `seq`) and, when given, its `sealed_cards` row.
   *
   * Same `idempotencyKey` + same amount, currency, reference and card token →
   * `{ created: false, payment: <the original> }`, nothing written (DESIGN §4).
   *
   * @param input — see {@link NewPayment}; `amountMinor` in integer minor units of `currency`.
   * @returns the payment as stored, and whether this call created it.
   * @throws AgentError POS210 the key was used with other parameters (message names the field,
   *   never card values; the local API answers 409); POS213 a field out of its rules;
   *   POS214 PAN-shaped text in `reference`, `idempotencyKey` or `cardholderName`.
   */
  createPayment(input: NewPayment): { payment: Payment; created: boolean } {
    const checked = checkNewPayment(input);
    return this.#write(() => {
      this.#refusePurgedKey(checked.idempotencyKey);
      const existing = this.#stmts.paymentByKey.get(checked.idempotencyKey) as
        PaymentRow | undefined;
      if (existing !== undefined) {
        const original = toPayment(existing);
        assertSameParameters(original, checked);
        return { payment: original, created: false };
      }
      const nowMs = this.#clock.now();
      const at = isoAt(nowMs);
      const id = `pay_${uuidv7({ msecs: nowMs })}`;
      const payment = this.#record(id, 'payment_stored', at, {
        id,
        idempotencyKey: checked.idempotencyKey,
        amountMinor: checked.amountMinor,
        currency: checked.currency,
        reference: checked.reference,
        card: { ...checked.card },
        forwardingDeadlineAt: isoAt(nowMs + this.#deadlineMs),
      });
      const eventSeq = (this.#stmts.chainHead.get() as { seq: number }).seq;
      const { seq } = this.#stmts.nextOutboxSeq.get() as { seq: number };
      this.#stmts.insertOutbox.run({
        key: checked.idempotencyKey,
        seq,
        payment_id: id,
        event_seq: eventSeq,
        type: 'payment',
        at,
      });
      if (checked.sealed !== undefined || checked.sred !== undefined) {
        this.#stmts.insertSealed.run({
          payment_id: id,
          sealed: checked.sealed ?? null,
          sred_ksn: checked.sred?.ksnHex ?? null,
          sred_ciphertext: checked.sred?.ciphertextHex ?? null,
          created_at: at,
        });
      }
      return { payment, created: true };
    });
  }

  /**
   * Starts a payment of the state machine (issue 3): in ONE transaction the `payments` row in
   * `awaiting_card` (no card yet) and its `payment_started` event. The idempotency key is stored
   * before the card is read, so a retry of the POS app finds the payment whatever happens next.
   *
   * Same key + same amount, currency and reference → `{ created: false, payment: <original> }`.
   *
   * @throws AgentError POS210 the key was used with other parameters; POS213 a field out of its
   *   rules; POS214 PAN-shaped text in `reference` or the key.
   */
  startPayment(input: {
    idempotencyKey: string;
    amountMinor: number;
    currency: string;
    reference?: string | undefined;
    offlineMode: OfflineMode;
  }): { payment: Payment; created: boolean } {
    const checked = checkNewPayment({ ...input, card: PLACEHOLDER_CARD });
    if (!(OFFLINE_MODES as readonly string[]).includes(input.offlineMode)) {
      throw storeError(
        'POS213',
        `offlineMode ${JSON.stringify(String(input.offlineMode).slice(0, 32))} is not one of ${OFFLINE_MODES.join(', ')}; fix: send one of them`,
      );
    }
    return this.#write(() => {
      this.#refusePurgedKey(checked.idempotencyKey);
      const existing = this.#stmts.paymentByKey.get(checked.idempotencyKey) as
        PaymentRow | undefined;
      if (existing !== undefined) {
        const original = toPayment(existing);
        assertSameParameters(original, checked, { card: false });
        return { payment: original, created: false };
      }
      const nowMs = this.#clock.now();
      const id = `pay_${uuidv7({ msecs: nowMs })}`;
      const payment = this.#record(id, 'payment_started', isoAt(nowMs), {
        id,
        idempotencyKey: checked.idempotencyKey,
        amountMinor: checked.amountMinor,
        currency: checked.currency,
        reference: checked.reference,
        offlineMode: input.offlineMode,
      });
      return { payment, created: true };
    });
  }

  /**
   * The card boundary handed out a token: `awaiting_card → card_read`, with the sealed card data
   * (or SRED data) kept in `sealed_cards` until the cloud no longer needs it.
   *
   * @throws AgentError POS211 unknown payment; POS212 not awaiting a card; POS213 a card field
   *   out of its rules.
   */
  recordCardRead(
    paymentId: string,
    card: NewPayment['card'],
    secret: { sealed?: string | undefined; sred?: NewPayment['sred'] } = {},
  ): Payment {
    const checked = checkNewPayment({
      idempotencyKey: 'x',
      amountMinor: 1,
      currency: 'XXX',
      card,
      sealed: secret.sealed,
      sred: secret.sred,
    });
    return this.#write(() => {
      const at = this.#now();
      const payment = this.#record(this.#requireId(paymentId), 'card_read', at, {
        card: { ...checked.card },
      });
      if (checked.sealed !== undefined || checked.sred !== undefined) {
        this.#stmts.insertSealed.run({
          payment_id: paymentId,
          sealed: checked.sealed ?? null,
          sred_ksn: checked.sred?.ksnHex ?? null,
          sred_ciphertext: checked.sred?.ciphertextHex ?? null,
          created_at: at,
        });
      }
      return payment;
    });
  }

  /**
   * A step of the payment that only changes its state: `pin_requested` (card_read →
   * awaiting_pin), `authorization_requested` (→ authorizing), `failed` (the terminal part of the
   * payment ended without an outcome, `reason` says why).
   *
   * @throws AgentError POS211 unknown payment; POS212 the machine refuses the event.
   */
  recordStep(
    paymentId: string,
    type: 'pin_requested' | 'authorization_requested' | 'failed',
    data: { reason?: string } = {},
  ): Payment {
    return this.#write(() =>
      this.#record(this.#requireId(paymentId), type, this.#now(), {
        reason: data.reason === undefined ? undefined : safeReason(data.reason),
      }),
    );
  }

  /**
   * The cloud answered the online authorization: `authorizing → approved` (approval `online`)
   * with a `payment` outbox record, so the cloud's ledger gets the record and its chain hash; or
   * `→ declined` with the issuer's code. Either way the sealed card data is deleted now: the
   * authorization is done (PCI DSS 4.0.1 req. 3.3.1).
   *
   * @throws AgentError POS211 unknown payment; POS212 not authorizing.
   */
  recordOnlineOutcome(
    paymentId: string,
    answer:
      | { outcome: 'approved'; authCode?: string | undefined }
      | { outcome: 'declined'; declineCode?: string | undefined },
  ): Payment {
    return this.#write(() => {
      const at = this.#now();
      const id = this.#requireId(paymentId);
      let payment: Payment;
      if (answer.outcome === 'approved') {
        payment = this.#record(id, 'approved', at, { authCode: answer.authCode });
        this.#queue(payment, 'payment', at);
      } else {
        payment = this.#record(id, 'declined', at, {
          declineCode: answer.declineCode ?? 'declined',
          reason: `declined by the issuer (code ${answer.declineCode ?? 'none'})`,
          by: 'issuer',
        });
      }
      this.#stmts.deleteSealed.run(id);
      return payment;
    });
  }

  /**
   * Offline approval under `policy`, decided and written in ONE transaction, so two payments can
   * never both take the last room under a cap: within the caps the payment goes to `stored`
   * (approval `offline`, its forwarding deadline from the store's `forwardingDeadlineHours`
   * option — not the policy's) with a `payment` outbox record; over a cap it is
   * declined locally with the cap's code — and when `ambiguous` (the online request may have
   * reached the cloud) a `void` record with the same idempotency key is queued, so the cloud
   * cancels whatever it approved.
   *
   * @returns the payment and the policy's decision.
   * @throws AgentError POS211 unknown payment; POS212 not in card_read/authorizing.
   */
  storeOffline(
    paymentId: string,
    policy: OfflinePolicy,
    options: { ambiguous: boolean },
  ): { payment: Payment; decision: OfflineDecision } {
    return this.#write(() => {
      const nowMs = this.#clock.now();
      const at = isoAt(nowMs);
      const id = this.#requireId(paymentId);
      const current = toPayment(this.#stmts.paymentById.get(id) as PaymentRow);
      const decision = decideOffline(
        policy,
        this.#exposure(),
        current.amountMinor,
        current.currency,
      );
      if (!decision.ok) {
        const payment = this.#declineLocally(current, decision.code, decision.reason, at, {
          voidRecord: options.ambiguous,
        });
        return { payment, decision };
      }
      const payment = this.#record(id, 'payment_stored', at, {
        // The store's option, like createPayment: one deadline rule for every stored payment.
        forwardingDeadlineAt: isoAt(nowMs + this.#deadlineMs),
        ambiguous: options.ambiguous,
      });
      this.#queue(payment, 'payment', at);
      return { payment, decision };
    });
  }

  /**
   * Declines a payment locally with a named `code` (`online_pin_required`,
   * `offline_not_allowed`, `authorization_timeout`, …) and `reason`. With `voidRecord` (the
   * online request may have reached the cloud) a `void` record with the payment's idempotency key
   * is queued, so a charge the cloud made is undone. Sealed card data is deleted.
   *
   * @throws AgentError POS211 unknown payment; POS212 the machine refuses a decline here.
   */
  declineLocally(
    paymentId: string,
    code: string,
    reason: string,
    options: { voidRecord: boolean },
  ): Payment {
    return this.#write(() => {
      const id = this.#requireId(paymentId);
      const current = toPayment(this.#stmts.paymentById.get(id) as PaymentRow);
      return this.#declineLocally(current, code, reason, this.#now(), options);
    });
  }

  /**
   * Cancels a payment for the POS app (`POST /v1/payments/:id/cancel`):
   * - before authorization (awaiting_card, card_read, awaiting_pin) → `canceled`, nothing reaches
   *   the cloud;
   * - after an approval (stored, forwarded, approved, confirmed) → `canceled` and a `void`
   *   record (key `<idempotency key>.void`) forwarded, so the cloud takes no money for it.
   *
   * @returns the payment and whether a void record was queued.
   * @throws AgentError POS211 unknown payment; POS212 while authorizing (the outcome is on its
   *   way: cancel after it) or after a final outcome.
   */
  cancelPayment(paymentId: string, reason: string): { payment: Payment; voided: boolean } {
    return this.#write(() => {
      const at = this.#now();
      const id = this.#requireId(paymentId);
      const before = toPayment(this.#stmts.paymentById.get(id) as PaymentRow);
      const payment = this.#record(id, 'canceled', at, { reason: safeReason(reason) });
      const approvedBefore = APPROVED_STATES.includes(before.state);
      if (approvedBefore) this.#queue(payment, 'void', at);
      else this.#stmts.deleteSealed.run(id);
      return { payment, voided: approvedBefore };
    });
  }

  /**
   * Start-up recovery (issue 3 §7): every payment left in a non-final state by a crash is brought
   * to a defined state, one transaction with one savepoint per payment:
   * - `awaiting_card`, `card_read`, `awaiting_pin` → `failed` ("interrupted before an outcome");
   * - `authorizing` → the request may have reached the cloud, so it is treated like an ambiguous
   *   timeout, on the safe side: `declined` with `authorization_interrupted` and a `void` record
   *   with its idempotency key, so the cloud undoes anything it approved.
   *
   * A payment that cannot be recovered (e.g. its void record's key is already taken by another
   * payment's record in a database written before `.void` keys were reserved) is rolled back to
   * its savepoint, left as it was and reported in `failed`; it never blocks the others nor the
   * agent's start. Only a failure of the transaction itself (POS206, POS207) throws.
   *
   * @returns the payments changed (`recovered`), and the ones left as they were with the
   *   card-data-free error that stopped each (`failed`), for the agent's log.
   */
  recoverInterrupted(): RecoveryReport {
    return this.#write(() => {
      const at = this.#now();
      const rows = this.#stmts.paymentsInStates.all() as PaymentRow[];
      const report: RecoveryReport = { recovered: [], failed: [] };
      for (const row of rows) {
        try {
          report.recovered.push(this.#tx(() => this.#recoverOne(toPayment(row), at)) as Payment);
        } catch (error) {
          const agentError = toAgentError(error);
          if (isAgentError(agentError, 'POS206') || isAgentError(agentError, 'POS207')) {
            throw agentError;
          }
          report.failed.push({
            paymentId: row.id,
            idempotencyKey: row.idempotency_key,
            state: row.state,
            error: agentError,
          });
        }
      }
      return report;
    });
  }

  #recoverOne(current: Payment, at: string): Payment {
    if (current.state === 'authorizing') {
      return this.#declineLocally(
        current,
        'authorization_interrupted',
        'the agent stopped while the online authorization was under way; the cloud is told to void it',
        at,
        { voidRecord: true },
      );
    }
    this.#stmts.deleteSealed.run(current.id);
    return this.#record(current.id, 'failed', at, {
      reason: `the agent stopped in ${current.state} before the payment had an outcome`,
    });
  }

  /** Offline exposure: payments approved offline whose issuer outcome is not yet known. */
  offlineExposure(): OfflineExposure {
    return this.#read(() => this.#exposure());
  }

  /**
   * Offline payments still to settle whose forwarding deadline is at or before `untilAt`
   * (ISO 8601 UTC; pass now + the warning hours), earliest first, at most 100.
   */
  deadlineWarnings(untilAt: string): Payment[] {
    return (this.#read(() => this.#stmts.deadlineWarnings.all(untilAt)) as PaymentRow[]).map(
      toPayment,
    );
  }

  /** Dead outbox records with their reasons, in `seq` order (for `pos-agent queue`). */
  deadRecords(): {
    key: string;
    seq: number;
    paymentId: string;
    type: 'payment' | 'void';
    reason: string;
    attempts: number;
    updatedAt: string;
  }[] {
    return (this.#read(() => this.#stmts.deadOutbox.all()) as OutboxRow[]).map((row) => ({
      key: row.key,
      seq: row.seq,
      paymentId: row.payment_id,
      type: row.type,
      reason: row.dead_reason ?? '',
      attempts: row.attempts,
      updatedAt: row.updated_at,
    }));
  }

  #exposure(): OfflineExposure {
    const exposure: OfflineExposure = { count: 0, byCurrency: {}, earliestDeadlineAt: null };
    for (const row of this.#stmts.offlineExposure.all() as {
      currency: string;
      n: number;
      total: number;
      deadline: string | null;
    }[]) {
      exposure.count += row.n;
      exposure.byCurrency[row.currency] = { amountMinor: row.total, count: row.n };
      if (
        row.deadline !== null &&
        (exposure.earliestDeadlineAt === null || row.deadline < exposure.earliestDeadlineAt)
      ) {
        exposure.earliestDeadlineAt = row.deadline;
      }
    }
    return exposure;
  }

  #declineLocally(
    current: Payment,
    code: string,
    reason: string,
    at: string,
    options: { voidRecord: boolean },
  ): Payment {
    const payment = this.#record(current.id, 'declined', at, {
      declineCode: code,
      reason: safeReason(reason),
      by: 'agent',
    });
    if (options.voidRecord) this.#queue(payment, 'void', at);
    // A void needs no card data: the cloud finds what it approved by the key.
    this.#stmts.deleteSealed.run(current.id);
    return payment;
  }

  /** Queues the outbox record of `payment`'s latest event (inside the caller's transaction). */
  #queue(payment: Payment, type: 'payment' | 'void', at: string): void {
    const eventSeq = (this.#stmts.chainHead.get() as { seq: number }).seq;
    const { seq } = this.#stmts.nextOutboxSeq.get() as { seq: number };
    const hasPaymentRecord = (this.#stmts.outboxOfPayment.all(payment.id) as OutboxRow[]).some(
      (row) => row.type === 'payment',
    );
    // A void of a payment the cloud already has a record of needs its own key; a void of a
    // payment that never had one (declined after an ambiguous timeout) carries the payment's
    // own key, so the cloud finds the authorization it may have made under it.
    const key =
      type === 'void' && hasPaymentRecord
        ? `${payment.idempotencyKey}${VOID_KEY_SUFFIX}`
        : payment.idempotencyKey;
    this.#stmts.insertOutbox.run({
      key,
      seq,
      payment_id: payment.id,
      event_seq: eventSeq,
      type,
      at,
    });
  }

  /** POS210 when `key` belongs to a payment purged by retention: it must never be charged again. */
  #refusePurgedKey(key: string): void {
    const purged = this.#stmts.purgedByKey.get(key) as
      { id: string; purged_at: string } | undefined;
    if (purged === undefined) return;
    throw storeError(
      'POS210',
      `Idempotency-Key ${JSON.stringify(key)} was already used for payment ${purged.id}, which was ` +
        `settled and purged by retention at ${purged.purged_at}; fix: send a new Idempotency-Key for a new payment`,
      { details: { field: 'idempotencyKey', paymentId: purged.id, idempotencyKey: key } },
    );
  }

  #requireId(paymentId: string): string {
    const row = this.#stmts.paymentById.get(paymentId) as PaymentRow | undefined;
    if (row === undefined) {
      throw storeError(
        'POS211',
        `payment ${JSON.stringify(String(paymentId).slice(0, 64))} not found; fix: use the id returned by POST /v1/payments`,
        { details: { paymentId } },
      );
    }
    return row.id;
  }

  /** The payment with this id (`pay_…`), or `undefined`. */
  getPayment(id: string): Payment | undefined {
    const row = this.#read(() => this.#stmts.paymentById.get(id)) as PaymentRow | undefined;
    return row === undefined ? undefined : toPayment(row);
  }

  /**
   * The payment with this id.
   *
   * @throws AgentError POS211 when there is none (the local API answers 404).
   */
  requirePayment(id: string): Payment {
    const payment = this.getPayment(id);
    if (payment === undefined) {
      throw storeError(
        'POS211',
        `payment ${JSON.stringify(id.slice(0, 64))} not found; fix: use the id returned by POST /v1/payments, or look it up by its idempotency key`,
        { details: { paymentId: id } },
      );
    }
    return payment;
  }

  /** The payment created with this idempotency key, or `undefined`. */
  getPaymentByKey(idempotencyKey: string): Payment | undefined {
    const row = this.#read(() => this.#stmts.paymentByKey.get(idempotencyKey)) as
      PaymentRow | undefined;
    return row === undefined ? undefined : toPayment(row);
  }

  /**
   * Payments, newest first.
   *
   * @param filter.state — only payments in this state.
   * @param filter.limit — 1–1000, default: 100.
   * @throws AgentError POS213 unknown state or limit out of range.
   */
  listPayments(
    filter: { state?: PaymentState | undefined; limit?: number | undefined } = {},
  ): Payment[] {
    const limit = checkInteger('limit', filter.limit ?? 100, 1, 1000);
    const state = filter.state;
    if (state !== undefined && !(PAYMENT_STATES as readonly string[]).includes(state)) {
      throw storeError(
        'POS213',
        `state is not one of ${PAYMENT_STATES.join(', ')}; fix: send one of them`,
      );
    }
    const rows = this.#read(() =>
      state === undefined
        ? this.#stmts.listPayments.all(limit)
        : this.#stmts.listPaymentsByState.all(state, limit),
    ) as PaymentRow[];
    return rows.map(toPayment);
  }

  /** The events of one payment in `seq` order (empty for an unknown id). */
  listEvents(paymentId: string): StoredEvent[] {
    const rows = this.#read(() => this.#stmts.eventsOfPayment.all(paymentId)) as EventRow[];
    return rows.map((row) => ({
      seq: row.seq,
      paymentId: row.payment_id,
      type: row.type,
      at: row.at,
      data: JSON.parse(row.data) as Record<string, unknown>,
      prevHash: row.prev_hash.toString('hex'),
      hash: row.hash.toString('hex'),
    }));
  }

  /**
   * Up to `limit` pending outbox records in `seq` order, shaped for the wire (DESIGN §5).
   * Call {@link markInFlight} once they are published.
   *
   * A pending record that cannot be built (POS221: e.g. its payment has no card) would otherwise
   * block the queue forever: it is moved to `dead` with the reason (a `dead_lettered` event on
   * its payment; counted in {@link queueStats}, listed by {@link deadRecords} and
   * `pos-agent queue`, retried with {@link retryDead}) and the records after it are returned.
   * That is the only write this method makes.
   *
   * @param limit — 1–10000.
   * @throws AgentError POS213 limit out of range.
   */
  nextPending(limit: number): OutboxRecord[] {
    checkInteger('limit', limit, 1, 10_000);
    // Each round dead-letters at least one pending record, so the loop ends.
    for (;;) {
      const rows = this.#read(() => this.#stmts.nextPending.all(limit)) as PendingRow[];
      const records: OutboxRecord[] = [];
      const unbuildable: { key: string; error: AgentError }[] = [];
      for (const row of rows) {
        try {
          records.push(toOutboxRecord(row));
        } catch (error) {
          if (!isAgentError(error)) throw error;
          unbuildable.push({ key: row.key, error });
        }
      }
      if (unbuildable.length === 0) return records;
      this.#write(() => {
        const at = this.#now();
        for (const { key, error } of unbuildable) {
          const row = this.#stmts.outboxByKey.get(key) as OutboxRow | undefined;
          if (row?.state !== 'pending') continue;
          const reason = safeReason(`the record cannot be built for the wire: ${error.message}`);
          try {
            this.#tx(() => this.#deadLetter(row, reason, at, error.code));
          } catch {
            // The payment cannot even take its dead_lettered event: the record still leaves the
            // queue, visible as dead with its reason.
            this.#stmts.setDead.run(reason, at, key);
          }
        }
      });
    }
  }

  /**
   * Marks records as published in batch `batchId`: `pending` or `in_flight` (a resend) →
   * `in_flight`, `attempts + 1`. The first time, the payment goes `stored → forwarded` with a
   * `forwarded` event. Records already `acked` or `dead` are left alone (an ack may overtake
   * the publish). One transaction.
   *
   * @param batchId — 1–128 characters, the batch id of the `up/records` message.
   * @throws AgentError POS215 a key that has no outbox record (nothing is changed);
   *   POS213 batchId out of its rules.
   */
  markInFlight(keys: readonly string[], batchId: string): void {
    if (typeof batchId !== 'string' || batchId.length < 1 || batchId.length > 128) {
      throw storeError('POS213', 'batchId must be 1–128 characters; fix: send the batch id');
    }
    this.#write(() => {
      const at = this.#now();
      for (const key of new Set(keys)) {
        const row = this.#outboxRow(key);
        if (row.state !== 'pending' && row.state !== 'in_flight') continue;
        this.#stmts.setInFlight.run(batchId, at, key);
        const payment = this.#stmts.paymentById.get(row.payment_id) as PaymentRow;
        if (row.type === 'payment' && payment.state === 'stored') {
          this.#record(row.payment_id, 'forwarded', at, { key, batchId });
        }
      }
    });
  }

  /**
   * Applies the cloud's acknowledgements, in one transaction (each result in its own savepoint):
   *
   * - `accepted`/`duplicate` → outbox `acked`, the sealed card data deleted (a trigger does it,
   *   PCI DSS 4.0.1 req. 3.3.1), the payment → `approved` (`cloud_approved` event, `authCode`),
   *   `declined` (`cloud_declined`, `declineCode`, `reason`) or, without an `outcome`,
   *   `confirmed` (`confirmed` event). If that cannot be applied (an illegal state change, a
   *   malformed code) the record goes to `dead` with the reason instead — never lost silently.
   * - `rejected` → outbox `dead` with `code: reason` (PAN-shaped runs redacted, ≤ 500
   *   characters) and a `dead_lettered` event.
   * - a key already `acked` (or already `dead`, for a rejection) → `already`, nothing changes:
   *   a second acknowledgement is harmless.
   * - an unknown key → `unknown_key`; a malformed result → `invalid`; neither throws.
   *
   * When a record was acked, the WAL is then checkpointed and truncated: `secure_delete` zeroes
   * the deleted sealed data in the database file, but the WAL would keep the frames that wrote
   * it until they are overwritten (PCI DSS 4.0.1 req. 3.3.1 — not recoverable after
   * authorization). If a reader holds the WAL, the checkpoint is skipped and the next one, or
   * `close()`, does it.
   *
   * @returns one {@link AppliedAck} per result, in order.
   */
  applyAcks(results: readonly AckResult[]): AppliedAck[] {
    const applied = this.#write(() => {
      const at = this.#now();
      return results.map((result) => this.#applyAck(result, at));
    });
    if (applied.some((a) => a.action === 'acked')) this.#purgeWal();
    return applied;
  }

  /**
   * Start-up: every `in_flight` record back to `pending` (its batch was never acknowledged by a
   * running agent; the cloud dedupes a resend by key).
   *
   * @returns how many records were released.
   */
  releaseInFlight(): number {
    return this.#write(() => this.#stmts.releaseInFlight.run(this.#now()).changes);
  }

  /**
   * For the field tech: `dead` records back to `pending`, each with a `requeued` event. Records
   * in another state are skipped.
   *
   * @param keys — the records to retry; default: every dead record.
   * @returns how many records were requeued.
   * @throws AgentError POS215 a key that has no outbox record (nothing is changed).
   */
  retryDead(keys?: readonly string[]): number {
    return this.#write(() => {
      const at = this.#now();
      const rows =
        keys === undefined
          ? (this.#stmts.deadOutbox.all() as OutboxRow[])
          : keys.map((key) => this.#outboxRow(key));
      let requeued = 0;
      for (const row of rows) {
        if (row.state !== 'dead') continue;
        this.#stmts.setPending.run(at, row.key);
        this.#record(row.payment_id, 'requeued', at, { key: row.key });
        requeued++;
      }
      return requeued;
    });
  }

  /**
   * Outbox counts per state and `oldestAt`: the `at` of the first record, in `seq` order, that
   * is still to deliver (`pending` or `in_flight`); `null` when there is none.
   */
  queueStats(): QueueStats {
    return this.#read(() => {
      const counts: Record<OutboxState, number> = { pending: 0, in_flight: 0, acked: 0, dead: 0 };
      for (const row of this.#stmts.countByState.all() as { state: OutboxState; n: number }[]) {
        counts[row.state] = row.n;
      }
      const oldest = this.#stmts.oldestQueued.get() as { at: string | null };
      return {
        depth: counts.pending + counts.in_flight,
        pending: counts.pending,
        inFlight: counts.in_flight,
        dead: counts.dead,
        acked: counts.acked,
        oldestAt: oldest.at,
      };
    });
  }

  /**
   * SQLite's own structural check (`PRAGMA quick_check`, https://sqlite.org/pragma.html#pragma_quick_check):
   * b-tree pages, record formats, NOT NULL and CHECK constraints; not index contents, which
   * `integrity_check` would add at several times the cost. For `pos-agent doctor`.
   *
   * @returns `{ ok: true }` or `{ ok: false, problems }` (SQLite's messages, at most 100).
   */
  quickCheck(): { ok: true } | { ok: false; problems: string[] } {
    const rows = this.#db.pragma('quick_check(100)') as Array<{ quick_check: string }>;
    const problems = rows.map((r) => r.quick_check).filter((m) => m !== 'ok');
    return problems.length === 0 ? { ok: true } : { ok: false, problems };
  }

  /**
   * Recomputes every event hash in `seq` order and compares: detects an edited row (its hash no
   * longer matches its content), a missing row (a gap in `seq`, or a `prev_hash` that does not
   * match), and a truncated tail (`chain_head` is ahead of the last event). Streams the log, so
   * memory stays flat. Someone who rewrites every later hash and the head is not detectable
   * locally; the cloud holds each payment's `chain` hash for that.
   *
   * @returns `{ ok: true, events }` or `{ ok: false, problems }` (at most 100 sentences, POS220).
   */
  verifyChain(): ChainReport {
    return this.#read(() => {
      const problems = new Problems();
      const note = (text: string) => problems.add(`${text} (POS220)`);
      const head = this.#stmts.chainHead.get() as { seq: number; hash: Buffer } | undefined;
      let expectedSeq = 1;
      let prev: Buffer = GENESIS_HASH;
      let events = 0;
      let purgedLinks = 0;
      for (const row of this.#stmts.allEvents.iterate() as IterableIterator<ChainRow>) {
        if (row.type === null || row.at === null || row.data === null) purgedLinks++;
        else events++;
        if (row.seq !== expectedSeq) {
          note(
            row.seq > expectedSeq
              ? `events ${expectedSeq}–${row.seq - 1} are missing before event ${row.seq}`
              : `event ${row.seq} is out of order after event ${expectedSeq - 1}`,
          );
        }
        if (!Buffer.from(row.prev_hash).equals(prev)) {
          note(`event ${row.seq}: prev_hash is not the hash of the event before it`);
        }
        // A purged event's content is gone on purpose (retention): only its link is checked.
        const recomputed =
          row.type === null || row.at === null || row.data === null
            ? row.hash
            : eventHash(row.prev_hash, {
                seq: row.seq,
                paymentId: row.payment_id,
                type: row.type,
                at: row.at,
                data: row.data,
              });
        if (!Buffer.from(recomputed).equals(row.hash)) {
          note(
            `event ${row.seq} (${row.type} of ${row.payment_id}): stored hash differs from the ` +
              'SHA-256 of its content, the row was edited',
          );
        }
        prev = Buffer.from(row.hash);
        expectedSeq = row.seq + 1;
      }
      if (head === undefined) {
        if (events > 0) note(`chain_head is missing while ${events} events exist`);
      } else if (head.seq !== expectedSeq - 1 || !Buffer.from(head.hash).equals(prev)) {
        note(
          `chain_head names event ${head.seq}, but the log ends at event ${expectedSeq - 1}: ` +
            'events at the end are missing or were replaced',
        );
      }
      if (problems.empty)
        return purgedLinks === 0 ? { ok: true, events } : { ok: true, events, purgedLinks };
      return { ok: false, problems: problems.list() };
    });
  }

  /**
   * Retention (issue 3 §8): purges the settled payments last changed before `before` — in a
   * final state (approved, declined, confirmed, reversed, canceled, failed) with every outbox
   * record acknowledged by the cloud (or none at all: declined or canceled before anything was
   * recorded). A payment stored, forwarded, dead-lettered or still in progress is never purged;
   * the schema refuses it too (migration 3 triggers).
   *
   * Per payment, in one transaction per batch of `batchSize`: a `purged_payments` tombstone (id,
   * idempotency key, final state, times — no card data, no amount), the link of each of its
   * events in `purged_events` (seq, prev_hash, hash), then its outbox records, events and row
   * are deleted. `secure_delete` zeroes the freed bytes in the database file, and the WAL is
   * checkpointed and truncated after the last batch, so the card token, first 6 / last 4 and
   * expiry of a purged payment are no longer in either file (PCI DSS 4.0.1 req. 3.5, 3.2.1).
   * `verifyChain()` still verifies: it checks a purged event's link, not its content.
   * A later request with a purged payment's idempotency key is refused (POS210), never charged
   * again.
   *
   * @param before — ISO 8601 UTC instant; e.g. now − `retention.acknowledgedDays`.
   * @param options.batchSize — payments per transaction, 1–10000, default 500: the write lock
   *   is held for one batch at a time, so payments of the POS app are not kept waiting.
   * @throws AgentError POS213 `before` is not an ISO 8601 UTC instant or batchSize out of range;
   *   POS207 SQLite could not write (nothing of the failed batch changed).
   */
  purgeSettled(before: string, options: { batchSize?: number } = {}): PurgeReport {
    const batchSize = checkInteger('batchSize', options.batchSize ?? 500, 1, 10_000);
    if (
      typeof before !== 'string' ||
      Number.isNaN(Date.parse(before)) ||
      isoAt(Date.parse(before)) !== before
    ) {
      throw storeError(
        'POS213',
        `before ${JSON.stringify(String(before).slice(0, 40))} is not an ISO 8601 UTC instant; fix: pass e.g. new Date(ms).toISOString()`,
      );
    }
    const report: PurgeReport = { payments: 0, events: 0, before };
    for (;;) {
      const done = this.#write(() => {
        const purgedAt = this.#now();
        const rows = this.#stmts.settledBefore.all(before, batchSize) as PaymentRow[];
        for (const row of rows) {
          const { seq } = this.#stmts.lastOutboxSeqOf.get(row.id) as { seq: number | null };
          this.#stmts.deleteSealed.run(row.id);
          this.#stmts.insertPurgedPayment.run({
            id: row.id,
            idempotency_key: row.idempotency_key,
            state: row.state,
            created_at: row.created_at,
            updated_at: row.updated_at,
            purged_at: purgedAt,
            last_outbox_seq: seq,
          });
          this.#stmts.keepLinks.run(row.id);
          this.#stmts.deleteOutboxOf.run(row.id);
          report.events += this.#stmts.deleteEventsOf.run(row.id).changes;
          this.#stmts.deletePayment.run(row.id);
          report.payments++;
        }
        return rows.length < batchSize;
      });
      if (done) break;
    }
    if (report.payments > 0) this.#purgeWal();
    return report;
  }

  /**
   * Folds each payment's events with {@link applyEvent} and compares the result with its
   * `payments` row, field by field; pages through payments 500 at a time.
   *
   * @returns `{ ok: true, payments }` or `{ ok: false, problems }` (at most 100 sentences naming
   *   the payment and the fields that differ, POS221).
   */
  checkProjection(): ProjectionReport {
    return this.#read(() => {
      const problems = new Problems();
      let payments = 0;
      let after = '';
      for (;;) {
        const page = this.#stmts.paymentsPage.all(after, PAGE) as PaymentRow[];
        const first = page[0];
        const last = page[page.length - 1];
        if (first === undefined || last === undefined) break;
        const byPayment = new Map<string, EventRow[]>();
        for (const row of this.#stmts.eventsOfPaymentRange.all(first.id, last.id) as EventRow[]) {
          const list = byPayment.get(row.payment_id) ?? [];
          list.push(row);
          byPayment.set(row.payment_id, list);
        }
        for (const row of page) {
          payments++;
          const problem = projectionProblem(row, byPayment.get(row.id) ?? []);
          if (problem !== undefined) problems.add(`${problem} (POS221)`);
        }
        after = last.id;
      }
      if (problems.empty) return { ok: true, payments };
      return { ok: false, problems: problems.list() };
    });
  }

  /**
   * THE payment state change: folds the event into the payment with {@link applyEvent}, writes
   * the projection row (insert for a creating event), and appends the event to the hash chain.
   * Runs inside the caller's transaction.
   */
  #record(paymentId: string, type: EventType, at: string, data: Record<string, unknown>): Payment {
    const dataText = canonicalJson(data);
    const parsed = JSON.parse(dataText) as Record<string, unknown>;
    const row = this.#stmts.paymentById.get(paymentId) as PaymentRow | undefined;
    const next = applyEvent(row === undefined ? undefined : toPayment(row), {
      type,
      at,
      data: parsed,
    });
    if (row === undefined) this.#stmts.insertPayment.run(toRow(next));
    else this.#stmts.updatePayment.run(toRow(next));
    const head = this.#stmts.chainHead.get() as { seq: number; hash: Buffer } | undefined;
    const seq = (head?.seq ?? 0) + 1;
    const prevHash = head?.hash ?? GENESIS_HASH;
    this.#stmts.insertEvent.run({
      seq,
      payment_id: paymentId,
      type,
      at,
      data: dataText,
      prev_hash: prevHash,
      hash: eventHash(prevHash, { seq, paymentId, type, at, data: dataText }),
    });
    return next;
  }

  #applyAck(result: AckResult, at: string): AppliedAck {
    const key = typeof result.key === 'string' ? result.key : String(result.key);
    const problem = ackProblem(result);
    if (problem !== undefined) return { key, action: 'invalid', detail: problem };
    const row = this.#stmts.outboxByKey.get(key) as OutboxRow | undefined;
    if (row === undefined) return { key, action: 'unknown_key' };
    const paymentId = row.payment_id;
    if (row.state === 'acked' || (row.state === 'dead' && result.status === 'rejected')) {
      return { key, action: 'already', paymentId, outboxState: row.state };
    }
    if (result.status === 'rejected') {
      const text = [result.code, result.reason].filter((part) => part !== undefined).join(': ');
      const reason = safeReason(text === '' ? 'rejected by the cloud without a reason' : text);
      this.#deadLetter(row, reason, at, result.code);
      return { key, action: 'dead_lettered', paymentId, outboxState: 'dead', detail: reason };
    }
    try {
      return this.#tx(() => {
        // A void record's acknowledgement changes no state: the payment is already declined or
        // canceled. What the cloud had done under the key (e.g. approved an authorization whose
        // answer the agent never got) is kept in the event as the recorded difference.
        const type: EventType =
          row.type === 'void'
            ? 'confirmed'
            : result.outcome === 'approved'
              ? 'cloud_approved'
              : result.outcome === 'declined'
                ? 'cloud_declined'
                : 'confirmed';
        const payment = this.#record(paymentId, type, at, {
          key,
          record: row.type,
          ...(row.type === 'void' ? { cloudOutcome: result.outcome ?? 'none' } : {}),
          status: result.status,
          authCode: result.authCode,
          declineCode: result.declineCode,
          reason: result.reason === undefined ? undefined : safeReason(result.reason),
        });
        this.#stmts.setAcked.run(result.status, at, at, key);
        return {
          key,
          action: 'acked',
          paymentId,
          paymentState: payment.state,
          outboxState: 'acked',
        } satisfies AppliedAck;
      }) as AppliedAck;
    } catch (error) {
      const agentError = toAgentError(error);
      if (!isAgentError(agentError, 'POS212') && !isAgentError(agentError, 'POS213')) {
        throw agentError;
      }
      const reason = safeReason(
        `cloud ${result.status}${result.outcome === undefined ? '' : ` (${result.outcome})`} ` +
          `could not be applied: ${agentError.reason}`,
      );
      if (row.state === 'dead') {
        return { key, action: 'already', paymentId, outboxState: 'dead', detail: reason };
      }
      this.#deadLetter(row, reason, at, agentError.code);
      return { key, action: 'dead_lettered', paymentId, outboxState: 'dead', detail: reason };
    }
  }

  #deadLetter(row: OutboxRow, reason: string, at: string, code: string | undefined): void {
    this.#stmts.setDead.run(reason, at, row.key);
    this.#record(row.payment_id, 'dead_lettered', at, {
      key: row.key,
      reason,
      code: code === undefined ? undefined : safeReason(code).slice(0, 64),
    });
  }

  #outboxRow(key: string): OutboxRow {
    const row = this.#stmts.outboxByKey.get(key) as OutboxRow | undefined;
    if (row === undefined) {
      throw storeError(
        'POS215',
        `no outbox record has key ${JSON.stringify(String(key).slice(0, 64))}; nothing was changed; ` +
          'fix: use keys from nextPending() or `pos-agent queue`',
        { details: { key } },
      );
    }
    return row;
  }

  #purgeWal(): void {
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (error) {
      throw toAgentError(error);
    }
  }

  #now(): string {
    return isoAt(this.#clock.now());
  }

  #live(): void {
    if (!this.#db.open) {
      throw storeError(
        'POS206',
        `the payment store at ${this.path} is closed; fix: open a new PaymentStore`,
      );
    }
  }

  #write<T>(fn: () => T): T {
    this.#live();
    try {
      return this.#tx.immediate(fn) as T;
    } catch (error) {
      throw toAgentError(error);
    }
  }

  #read<T>(fn: () => T): T {
    this.#live();
    try {
      return this.#tx.deferred(fn) as T;
    } catch (error) {
      throw toAgentError(error);
    }
  }
}

/** Maps a SQLite error to a POS2xx `AgentError`; other `AgentError`s pass through. */
function toAgentError(error: unknown): AgentError {
  if (error instanceof AgentError) return error;
  if (error instanceof Database.SqliteError) {
    const raised = /\((POS2\d\d)\)$/.exec(error.message)?.[1] as StoreErrorCode | undefined;
    if (raised !== undefined) {
      return storeError(raised, `the schema refused the change: ${error.message.slice(0, -9)}`, {
        cause: error,
      });
    }
    if (error.code.startsWith('SQLITE_CONSTRAINT')) {
      return storeError(
        'POS213',
        `the schema refused a value: ${error.message}; fix: send values within the documented rules`,
        { cause: error, details: { sqlite: error.code } },
      );
    }
    return storeError(
      'POS207',
      `SQLite could not complete the write (${error.code}: ${error.message}); nothing was changed; ` +
        'fix: free disk space, check the storage for I/O errors, or stop the other program holding the database',
      { cause: error, details: { sqlite: error.code } },
    );
  }
  throw error;
}

function assertSameParameters(
  original: Payment,
  input: NewPayment,
  compare: { card: boolean } = { card: true },
): void {
  const key = input.idempotencyKey;
  const conflict = (field: string, what: string): never => {
    throw storeError(
      'POS210',
      `Idempotency-Key ${JSON.stringify(key)} was already used for payment ${original.id} ` +
        `with another ${field} (${what}); fix: send a new Idempotency-Key for a new payment, ` +
        'or repeat the original request unchanged',
      { details: { field, paymentId: original.id, idempotencyKey: key } },
    );
  };
  if (original.amountMinor !== input.amountMinor) {
    conflict('amountMinor', `first ${original.amountMinor}, now ${input.amountMinor}`);
  }
  if (original.currency !== input.currency) {
    conflict('currency', `first ${original.currency}, now ${input.currency}`);
  }
  if (original.reference !== input.reference) {
    conflict(
      'reference',
      `first ${JSON.stringify(original.reference ?? null)}, now ${JSON.stringify(input.reference ?? null)}`,
    );
  }
  if (compare.card && original.card?.token !== input.card.token) {
    conflict('card', 'another card was presented: the card token differs');
  }
}

function ackProblem(result: AckResult): string | undefined {
  if (typeof result !== 'object' || result === null) return 'the result is not an object';
  if (typeof result.key !== 'string' || result.key.length < 1 || result.key.length > 255) {
    return 'key must be 1–255 characters';
  }
  if (!['accepted', 'duplicate', 'rejected'].includes(result.status)) {
    return 'status must be accepted, duplicate or rejected';
  }
  if (result.outcome !== undefined && !['approved', 'declined'].includes(result.outcome)) {
    return 'outcome must be approved or declined';
  }
  for (const field of ['code', 'reason', 'authCode', 'declineCode'] as const) {
    const value = result[field];
    if (value !== undefined && typeof value !== 'string') return `${field} must be text`;
  }
  return undefined;
}

/** Collects at most {@link MAX_PROBLEMS} sentences and counts the rest, so memory stays flat. */
class Problems {
  readonly #list: string[] = [];
  #more = 0;
  add(text: string): void {
    if (this.#list.length < MAX_PROBLEMS) this.#list.push(text);
    else this.#more++;
  }
  get empty(): boolean {
    return this.#list.length === 0;
  }
  list(): string[] {
    return this.#more === 0 ? this.#list : [...this.#list, `… and ${this.#more} more problems`];
  }
}

const PAYMENT_FIELDS = [
  'id',
  'idempotencyKey',
  'amountMinor',
  'currency',
  'reference',
  'state',
  'approval',
  'offlineMode',
  'card',
  'authCode',
  'declineCode',
  'reason',
  'createdAt',
  'updatedAt',
  'forwardingDeadlineAt',
] as const satisfies readonly (keyof Payment)[];

function projectionProblem(row: PaymentRow, events: readonly EventRow[]): string | undefined {
  if (events.length === 0) return `payment ${row.id} has no events`;
  let projected: Payment | undefined;
  for (const event of events) {
    try {
      projected = applyEvent(projected, {
        type: event.type,
        at: event.at,
        data: JSON.parse(event.data) as Record<string, unknown>,
      });
    } catch (error) {
      if (!isAgentError(error)) throw error;
      return `payment ${row.id}: event ${event.seq} (${event.type}) cannot be applied: ${error.reason}`;
    }
  }
  if (projected === undefined) return `payment ${row.id} has no creating event`;
  let stored: Payment;
  try {
    stored = toPayment(row);
  } catch (error) {
    if (!isAgentError(error)) throw error;
    return `payment ${row.id}: the row cannot be read: ${error.reason}`;
  }
  const differing = PAYMENT_FIELDS.filter(
    (field) => canonicalJson(stored[field] ?? null) !== canonicalJson(projected[field] ?? null),
  );
  if (differing.length === 0) return undefined;
  const states =
    stored.state === projected.state
      ? ''
      : ` (state is ${stored.state} in payments, ${projected.state} by its events)`;
  const verb = differing.length === 1 ? 'differs' : 'differ';
  return `payment ${row.id}: ${differing.join(', ')} ${verb} from its events${states}`;
}

function toPayment(row: PaymentRow): Payment {
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
function cardOf(row: CardColumns): PaymentCard | undefined {
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

function toRow(payment: Payment): PaymentRow {
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

function toOutboxRecord(row: PendingRow): OutboxRecord {
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
