/**
 * `PaymentStore`: the payment lifecycle on the store kernel, and the one `open()` that hands out
 * the store's parts over one SQLite connection (architecture.md §4; docs/internal-contracts.md):
 *
 * ```
 *  PaymentStore.open(path)
 *    ├─ kernel     (kernel.ts)     transactions, the event append (hash chain), the SQL (sql.ts)
 *    ├─ lifecycle  (this file)     start → card read → authorize / store offline → outcome
 *    ├─ outbox     (outbox.ts)     pending records for the cloud, acks applied as a set
 *    ├─ integrity  (integrity.ts)  chain, projection, checkpoints, quick_check
 *    └─ retention  (purge.ts)      settled payments purged, chain links and keys kept
 * ```
 *
 * Every method is synchronous on purpose (better-sqlite3): each write runs in one
 * `BEGIN IMMEDIATE` transaction that commits with `synchronous=FULL` before the method returns,
 * so once a method returns, its change survives a power cut (the API answers the POS app only
 * after that). Every payment state change goes through `StoreKernel.record`, which appends the
 * event and writes what `applyEvent` makes of it, in the same transaction.
 */
import { v7 as uuidv7 } from 'uuid';
import { isAgentError, type AgentError } from '../common/agent-error.js';
import { isoAt, systemClock, type Clock } from '../common/clock.js';
import { BatchBook } from './batches.js';
import { openDatabase } from './database.js';
import { storeError } from './errors.js';
import { ackEntriesFor, StoreIntegrity } from './integrity.js';
import { StoreKernel, toAgentError } from './kernel.js';
import {
  APPROVED_STATES,
  OFFLINE_MODES,
  PAYMENT_STATES,
  type AckResult,
  type AppliedAck,
  type ChainReport,
  type NewPayment,
  type OfflineMode,
  type Payment,
  type PaymentState,
  type ProjectionReport,
  type PurgeReport,
  type QueueStats,
  type StoredEvent,
  type UplinkRecord,
} from './model.js';
import {
  decideOffline,
  type OfflineDecision,
  type OfflineExposure,
  type OfflinePolicy,
} from './offline-policy.js';
import { SqliteOutbox, type DeadRecord } from './outbox.js';
import { purgeSettled } from './purge.js';
import { toPayment, type PaymentRow } from './rows.js';
import { KEYSET_END } from './sql.js';
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
  UplinkRecord,
  BatchReportRecord,
  BatchTotals,
  ReconState,
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

/** A page of {@link PaymentStore.listPayments}: the payments and the cursor of the next page. */
export interface PaymentPage {
  payments: Payment[];
  /** Pass as `before` for the next (older) page; `null` on the last page. */
  next: string | null;
}

/**
 * The payment store (architecture.md §4). Open with {@link PaymentStore.open}; one instance per database
 * file per process; not for use after {@link PaymentStore.close} (POS206).
 *
 * Errors: every method throws only `AgentError`s with POS2xx codes — the ones named on each
 * method, plus POS206 after `close()`, and POS207 when SQLite cannot write (disk full, I/O error,
 * database locked past `busyTimeoutMs`); a write that fails changes nothing.
 */
export class PaymentStore {
  readonly #k: StoreKernel;
  readonly #deadlineMs: number;
  /** The outbox: pending records, acks applied as a set, dead records (outbox.ts). */
  readonly outbox: SqliteOutbox;
  /** Chain, projection, checkpoints and quick_check (integrity.ts). */
  readonly integrity: StoreIntegrity;
  /** Terminal batches, their close, the match with the cloud and exceptions (batches.ts). */
  readonly batches: BatchBook;
  /** Path of the database file. */
  readonly path: string;

  private constructor(kernel: StoreKernel, deadlineMs: number) {
    this.#k = kernel;
    this.path = kernel.path;
    this.#deadlineMs = deadlineMs;
    this.outbox = new SqliteOutbox(kernel);
    this.batches = new BatchBook(kernel, this.outbox);
    this.outbox.addKind(this.batches);
    this.integrity = new StoreIntegrity(kernel, [() => this.batches.checkProjection()]);
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
      new StoreKernel(db, opts.path, opts.clock ?? systemClock),
      Math.round(hours * 3_600_000),
    );
  }

  /** Closes the database (checkpointing the WAL). Calling it twice is harmless. */
  close(): void {
    this.#k.close();
  }

  /**
   * Stores a payment for forwarding: in ONE transaction the `payments` row (state `stored`, a
   * `forwardingDeadlineAt`), its `payment_stored` event (hash chain), its `pending` outbox row
   * (keyed by the idempotency key, next `seq`) and, when given, its `sealed_cards` row.
   *
   * Same `idempotencyKey` + same amount, currency, reference and card token →
   * `{ created: false, payment: <the original> }`, nothing written (architecture.md §4).
   *
   * @param input — see {@link NewPayment}; `amountMinor` in integer minor units of `currency`.
   * @returns the payment as stored, and whether this call created it.
   * @throws AgentError POS210 the key was used with other parameters (message names the field,
   *   never card values; the local API answers 409); POS213 a field out of its rules;
   *   POS214 PAN-shaped text in `reference`, `idempotencyKey` or `cardholderName`.
   */
  createPayment(input: NewPayment): { payment: Payment; created: boolean } {
    const checked = checkNewPayment(input);
    return this.#k.write(() => {
      this.#refusePurgedKey(checked.idempotencyKey);
      const existing = this.#k.stmts.paymentByKey.get(checked.idempotencyKey) as
        PaymentRow | undefined;
      if (existing !== undefined) {
        const original = toPayment(existing);
        assertSameParameters(original, checked);
        return { payment: original, created: false };
      }
      const nowMs = this.#k.clock.now();
      const at = isoAt(nowMs);
      const id = `pay_${uuidv7({ msecs: nowMs })}`;
      const payment = this.#k.record(id, 'payment_stored', at, {
        id,
        idempotencyKey: checked.idempotencyKey,
        amountMinor: checked.amountMinor,
        currency: checked.currency,
        reference: checked.reference,
        card: { ...checked.card },
        forwardingDeadlineAt: isoAt(nowMs + this.#deadlineMs),
      });
      this.outbox.queue(payment, 'payment', at);
      if (checked.sealed !== undefined || checked.sred !== undefined) {
        this.#k.stmts.insertSealed.run({
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
   * A light commit (no fsync, `StoreKernel.writeLight`): nobody has an answer yet; the decision's
   * FULL commit makes it durable.
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
    return this.#k.writeLight(() => {
      this.#refusePurgedKey(checked.idempotencyKey);
      const existing = this.#k.stmts.paymentByKey.get(checked.idempotencyKey) as
        PaymentRow | undefined;
      if (existing !== undefined) {
        const original = toPayment(existing);
        assertSameParameters(original, checked, { card: false });
        return { payment: original, created: false };
      }
      const nowMs = this.#k.clock.now();
      const id = `pay_${uuidv7({ msecs: nowMs })}`;
      const payment = this.#k.record(id, 'payment_started', isoAt(nowMs), {
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
   * (or SRED data) kept in `sealed_cards` until the cloud no longer needs it. A light commit, like
   * {@link startPayment}.
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
    return this.#k.writeLight(() => {
      const at = this.#k.now();
      const payment = this.#k.record(this.#requireId(paymentId), 'card_read', at, {
        card: { ...checked.card },
      });
      if (checked.sealed !== undefined || checked.sred !== undefined) {
        this.#k.stmts.insertSealed.run({
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
    const step = (): Payment =>
      this.#k.record(this.#requireId(paymentId), type, this.#k.now(), {
        reason: data.reason === undefined ? undefined : safeReason(data.reason),
      });
    // Asking for the PIN tells nobody anything; authorization_requested must be on the disk before
    // the request leaves (a crash is then recovered with a void record), failed ends the payment.
    return type === 'pin_requested' ? this.#k.writeLight(step) : this.#k.write(step);
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
    return this.#k.write(() => {
      const at = this.#k.now();
      const id = this.#requireId(paymentId);
      let payment: Payment;
      if (answer.outcome === 'approved') {
        payment = this.#k.record(id, 'approved', at, { authCode: answer.authCode });
        this.outbox.queue(payment, 'payment', at);
      } else {
        payment = this.#k.record(id, 'declined', at, {
          declineCode: answer.declineCode ?? 'declined',
          reason: `declined by the issuer (code ${answer.declineCode ?? 'none'})`,
          by: 'issuer',
        });
      }
      this.#k.stmts.deleteSealed.run(id);
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
    return this.#k.write(() => {
      const nowMs = this.#k.clock.now();
      const at = isoAt(nowMs);
      const id = this.#requireId(paymentId);
      const current = toPayment(this.#k.stmts.paymentById.get(id) as PaymentRow);
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
      const payment = this.#k.record(id, 'payment_stored', at, {
        // The store's option, like createPayment: one deadline rule for every stored payment.
        forwardingDeadlineAt: isoAt(nowMs + this.#deadlineMs),
        ambiguous: options.ambiguous,
      });
      this.outbox.queue(payment, 'payment', at);
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
    return this.#k.write(() => {
      const id = this.#requireId(paymentId);
      const current = toPayment(this.#k.stmts.paymentById.get(id) as PaymentRow);
      return this.#declineLocally(current, code, reason, this.#k.now(), options);
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
    return this.#k.write(() => {
      const at = this.#k.now();
      const id = this.#requireId(paymentId);
      const before = toPayment(this.#k.stmts.paymentById.get(id) as PaymentRow);
      const payment = this.#k.record(id, 'canceled', at, { reason: safeReason(reason) });
      const approvedBefore = APPROVED_STATES.includes(before.state);
      if (approvedBefore) this.outbox.queue(payment, 'void', at);
      else this.#k.stmts.deleteSealed.run(id);
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
    return this.#k.write(() => {
      const at = this.#k.now();
      const rows = this.#k.stmts.paymentsInStates.all() as PaymentRow[];
      const report: RecoveryReport = { recovered: [], failed: [] };
      for (const row of rows) {
        try {
          report.recovered.push(
            this.#k.savepoint(() => this.#recoverOne(toPayment(row), at)) as Payment,
          );
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
    this.#k.stmts.deleteSealed.run(current.id);
    return this.#k.record(current.id, 'failed', at, {
      reason: `the agent stopped in ${current.state} before the payment had an outcome`,
    });
  }

  /** Offline exposure: payments approved offline whose issuer outcome is not yet known. */

  offlineExposure(): OfflineExposure {
    return this.#k.read(() => this.#exposure());
  }

  /**
   * Offline payments still to settle whose forwarding deadline is at or before `untilAt`
   * (ISO 8601 UTC; pass now + the warning hours), earliest first, at most 100.
   */
  deadlineWarnings(untilAt: string): Payment[] {
    return (this.#k.read(() => this.#k.stmts.deadlineWarnings.all(untilAt)) as PaymentRow[]).map(
      toPayment,
    );
  }

  /** Dead outbox records with their reasons, in `seq` order (for `pos-agent queue`). */
  #exposure(): OfflineExposure {
    const exposure: OfflineExposure = { count: 0, byCurrency: {}, earliestDeadlineAt: null };
    for (const row of this.#k.stmts.offlineExposure.all() as {
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
    const payment = this.#k.record(current.id, 'declined', at, {
      declineCode: code,
      reason: safeReason(reason),
      by: 'agent',
    });
    if (options.voidRecord) this.outbox.queue(payment, 'void', at);
    // A void needs no card data: the cloud finds what it approved by the key.
    this.#k.stmts.deleteSealed.run(current.id);
    return payment;
  }

  /** Queues the outbox record of `payment`'s latest event (inside the caller's transaction). */
  #refusePurgedKey(key: string): void {
    const purged = this.#k.stmts.purgedByKey.get(key) as
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
    const row = this.#k.stmts.paymentById.get(paymentId) as PaymentRow | undefined;
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
    const row = this.#k.read(() => this.#k.stmts.paymentById.get(id)) as PaymentRow | undefined;
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
    const row = this.#k.read(() => this.#k.stmts.paymentByKey.get(idempotencyKey)) as
      PaymentRow | undefined;
    return row === undefined ? undefined : toPayment(row);
  }

  /** The events of one payment in `seq` order (empty for an unknown id). */

  /**
   * Payments, newest first, by index (flat in table size), a page at a time.
   *
   * @param filter.state — only payments in this state.
   * @param filter.limit — 1–1000, default: 100.
   * @param filter.before — the `next` cursor of the previous page; default: the newest.
   * @throws AgentError POS213 unknown state, limit out of range or a malformed cursor.
   */
  listPaymentPage(
    filter: {
      state?: PaymentState | undefined;
      limit?: number | undefined;
      before?: string | undefined;
    } = {},
  ): PaymentPage {
    const limit = checkInteger('limit', filter.limit ?? 100, 1, 1000);
    const state = filter.state;
    if (state !== undefined && !(PAYMENT_STATES as readonly string[]).includes(state)) {
      throw storeError(
        'POS213',
        `state is not one of ${PAYMENT_STATES.join(', ')}; fix: send one of them`,
      );
    }
    const [createdAt, id] = parseCursor(filter.before);
    const rows = this.#k.read(() =>
      state === undefined
        ? this.#k.stmts.listPayments.all(createdAt, id, limit)
        : this.#k.stmts.listPaymentsByState.all(state, createdAt, id, limit),
    ) as PaymentRow[];
    const payments = rows.map(toPayment);
    const last = payments[payments.length - 1];
    return {
      payments,
      next: payments.length === limit && last !== undefined ? `${last.createdAt}~${last.id}` : null,
    };
  }

  /** The first page of {@link listPaymentPage}: payments, newest first. Errors as there. */
  listPayments(
    filter: { state?: PaymentState | undefined; limit?: number | undefined } = {},
  ): Payment[] {
    return this.listPaymentPage(filter).payments;
  }

  /**
   * The history of one payment in chain order (empty for an unknown id): its own events, and its
   * entries in ack events (`seq` and hashes of the ack event they belong to).
   */
  listEvents(paymentId: string): StoredEvent[] {
    const { events, acks } = this.integrity.historyRows(paymentId);
    const list: StoredEvent[] = events.map((row) => ({
      seq: row.seq,
      paymentId: row.payment_id,
      type: row.type,
      at: row.at,
      data: JSON.parse(row.data) as Record<string, unknown>,
      prevHash: row.prev_hash.toString('hex'),
      hash: row.hash.toString('hex'),
    }));
    for (const ack of acks) {
      for (const entry of ackEntriesFor(paymentId, ack)) {
        list.push({ ...entry, paymentId, prevHash: '', hash: '' });
      }
    }
    return list.sort((a, b) => a.seq - b.seq);
  }

  /** See {@link SqliteOutbox.nextPending}. */
  nextPending(limit: number, afterSeq = 0): UplinkRecord[] {
    return this.outbox.nextPending(limit, afterSeq);
  }

  /** See {@link SqliteOutbox.applyAcks}. */
  applyAcks(results: readonly AckResult[], batches: readonly string[] = []): AppliedAck[] {
    return this.outbox.applyAcks(results, batches);
  }

  /** See {@link SqliteOutbox.releaseInFlight}. */
  releaseInFlight(): number {
    return this.outbox.releaseInFlight();
  }

  /** See {@link SqliteOutbox.retryDead}. */
  retryDead(keys?: readonly string[]): number {
    return this.outbox.retryDead(keys);
  }

  /** See {@link SqliteOutbox.queueStats}. */
  queueStats(): QueueStats {
    return this.outbox.queueStats();
  }

  /** See {@link SqliteOutbox.deadRecords}. */
  deadRecords(): DeadRecord[] {
    return this.outbox.deadRecords();
  }

  /** See {@link StoreIntegrity.verifyChain}. */
  verifyChain(): ChainReport {
    return this.integrity.verifyChain();
  }

  /** See {@link StoreIntegrity.checkProjection}. */
  checkProjection(): ProjectionReport {
    return this.integrity.checkProjection();
  }

  /** See {@link StoreIntegrity.quickCheck}. */
  quickCheck(): { ok: true } | { ok: false; problems: string[] } {
    return this.integrity.quickCheck();
  }

  /** Retention's purge; see {@link purgeSettled} (purge.ts). */
  purgeSettled(before: string, options: { batchSize?: number } = {}): PurgeReport {
    return purgeSettled(this.#k, before, options);
  }

  /**
   * Housekeeping off the payment and ack paths, for a timer (the agent: every second): when acks
   * deleted sealed card data since the last pass, checkpoints and truncates the WAL so its frames
   * no longer hold it (PCI DSS 4.0.1 req. 3.3.1).
   *
   * @returns whether a checkpoint ran.
   * @throws AgentError POS207 SQLite could not checkpoint (tried again at the next pass).
   */
  maintenance(): boolean {
    if (!this.outbox.walHoldsDeletedCardData) return false;
    this.#k.checkpointWal();
    this.outbox.walCheckpointed();
    return true;
  }
}

/** `before` cursor → (created_at, id) bounds; no cursor → past the newest payment. */
function parseCursor(before: string | undefined): [string, string] {
  if (before === undefined) return [KEYSET_END, KEYSET_END];
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)~(pay_[0-9a-f-]{36})$/.exec(before);
  if (match === null) {
    throw storeError(
      'POS213',
      'before is not a cursor of this list; fix: pass the `next` value of the previous page',
    );
  }
  return [match[1] as string, match[2] as string];
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
