/**
 * `PaymentStore`: the payment lifecycle on the store kernel, and the one `open()` that hands out
 * the store's parts over one SQLite connection (architecture.md §4; docs/internal-contracts.md):
 *
 * ```
 *  PaymentStore.open(path)
 *    ├─ kernel     (kernel.ts)     transactions, the event append (hash chain), the SQL (sql.ts)
 *    ├─ drafts     (payment-drafts.ts)    payments in progress, in memory until their decision
 *    ├─ lifecycle  (payment-lifecycle.ts) start → card read → authorize / store offline → outcome
 *    ├─ queries    (payment-queries.ts)   by id, by key, the list by index, one payment's history
 *    ├─ outbox     (outbox.ts)     pending records for the cloud, acks applied as a set
 *    ├─ integrity  (integrity.ts)  chain, projection, checkpoints, quick_check
 *    └─ retention  (purge.ts)      settled payments purged, chain links and keys kept
 * ```
 *
 * Every method is synchronous on purpose (better-sqlite3): each write runs in one
 * `BEGIN IMMEDIATE` transaction that commits with `synchronous=FULL` before the method returns,
 * so once a method returns, its change survives a power cut (the API answers the POS app only
 * after that). A payment commits as few times as its safety needs (issue 9 §2): offline once
 * (payment, card, events, outbox row), online twice (before the request leaves, and with the
 * outcome); the steps before the decision are a draft in memory. Every payment state change
 * goes through `StoreKernel.record`/`recordNew`, which append the events and write what
 * `applyEvent` makes of them, in the same transaction.
 */
import { systemClock, type Clock } from '../common/clock.js';
import { BatchBook } from './batches.js';
import { openDatabase } from './database.js';
import { storeError } from './errors.js';
import { StoreIntegrity } from './integrity.js';
import { StoreKernel } from './kernel.js';
import type {
  AckResult,
  AppliedAck,
  ChainReport,
  NewPayment,
  Payment,
  PaymentState,
  ProjectionReport,
  PurgeReport,
  QueueStats,
  StoredEvent,
  UplinkRecord,
} from './model.js';
import {
  checkOfflineExposure,
  readDeadlineWarnings,
  readOfflineExposure,
} from './offline-exposure.js';
import type { OfflineDecision, OfflineExposure, OfflinePolicy } from './offline-policy.js';
import { SqliteOutbox, type DeadRecord } from './outbox.js';
import { PaymentDrafts } from './payment-drafts.js';
import {
  PaymentLifecycle,
  type OnlineOutcome,
  type PaymentStart,
  type RecoveryReport,
} from './payment-lifecycle.js';
import { PaymentQueries, type PaymentPage, type PaymentPageFilter } from './payment-queries.js';
import { purgeSettled } from './purge.js';

export type { OnlineOutcome, PaymentStart, RecoveryReport } from './payment-lifecycle.js';
export type { PaymentPage, PaymentPageFilter } from './payment-queries.js';
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
 * The payment store (architecture.md §4). Open with {@link PaymentStore.open}; one instance per database
 * file per process; not for use after {@link PaymentStore.close} (POS206).
 *
 * Errors: every method throws only `AgentError`s with POS2xx codes — the ones named on each
 * method, plus POS206 after `close()`, and POS207 when SQLite cannot write (disk full, I/O error,
 * database locked past `busyTimeoutMs`); a write that fails changes nothing.
 */
export class PaymentStore {
  readonly #k: StoreKernel;
  readonly #lifecycle: PaymentLifecycle;
  readonly #queries: PaymentQueries;
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
    this.outbox = new SqliteOutbox(kernel);
    this.batches = new BatchBook(kernel, this.outbox);
    this.outbox.addKind(this.batches);
    this.integrity = new StoreIntegrity(kernel, [
      () => this.batches.checkProjection(),
      () => checkOfflineExposure(kernel),
    ]);
    const drafts = new PaymentDrafts();
    this.#lifecycle = new PaymentLifecycle(kernel, this.outbox, drafts, deadlineMs);
    this.#queries = new PaymentQueries(kernel, drafts, this.integrity);
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
   * `{ created: false, payment: <the original> }`, nothing written (architecture.md §4); a key
   * held by a payment in progress counts as used.
   *
   * @param input — see {@link NewPayment}; `amountMinor` in integer minor units of `currency`.
   * @returns the payment as stored, and whether this call created it.
   * @throws AgentError POS210 the key was used with other parameters (message names the field,
   *   never card values; the local API answers 409); POS213 a field out of its rules;
   *   POS214 PAN-shaped text in `reference`, `idempotencyKey` or `cardholderName`.
   */
  createPayment(input: NewPayment): { payment: Payment; created: boolean } {
    return this.#lifecycle.createPayment(input);
  }

  /**
   * Starts a payment of the state machine (issue 3) as a DRAFT in memory (issue 9 §2): state
   * `awaiting_card`, no card yet, nothing written — nobody has an answer yet, so a crash loses
   * nothing promised. The draft and its steps are written with its decision, in one FULL commit.
   * The draft is found by id and by key (`getPayment`, `getPaymentByKey`, the list), and its
   * key is taken: unique across drafts and stored payments.
   *
   * Same key + same amount, currency and reference → `{ created: false, payment: <original> }`
   * (the draft, or the stored payment).
   *
   * @throws AgentError POS210 the key was used with other parameters (or by a purged payment);
   *   POS213 a field out of its rules; POS214 PAN-shaped text in `reference` or the key.
   */
  startPayment(input: PaymentStart): { payment: Payment; created: boolean } {
    return this.#lifecycle.startPayment(input);
  }

  /**
   * The card boundary handed out a token: `awaiting_card → card_read`. On a draft nothing is
   * written: the card and its sealed (or SRED) data are held with the draft until the decision,
   * which writes the sealed data to `sealed_cards` only if the payment is stored for the cloud;
   * while it is authorized online the store holds it in memory (payment-lifecycle.ts).
   *
   * @throws AgentError POS211 unknown payment; POS212 not awaiting a card; POS213 a card field
   *   out of its rules.
   */
  recordCardRead(
    paymentId: string,
    card: NewPayment['card'],
    secret: { sealed?: string | undefined; sred?: NewPayment['sred'] } = {},
  ): Payment {
    return this.#lifecycle.recordCardRead(paymentId, card, secret);
  }

  /**
   * A step of the payment that only changes its state: `pin_requested` (card_read →
   * awaiting_pin; a draft stays in memory), `authorization_requested` (→ authorizing: FULL
   * commit before the request leaves, so a crash is recovered with a void record), `failed` (the
   * terminal part of the payment ended without an outcome, `reason` says why; FULL commit).
   *
   * @throws AgentError POS211 unknown payment; POS212 the machine refuses the event.
   */
  recordStep(
    paymentId: string,
    type: 'pin_requested' | 'authorization_requested' | 'failed',
    data: { reason?: string } = {},
  ): Payment {
    return this.#lifecycle.recordStep(paymentId, type, data);
  }

  /**
   * The cloud answered the online authorization: `authorizing → approved` (approval `online`)
   * with a `payment` outbox record, so the cloud's ledger gets the record and its chain hash; or
   * `→ declined` with the issuer's code. Either way the sealed card data held since the request
   * is dropped (it was never written; a row an older agent wrote is deleted): the authorization
   * is done (PCI DSS 4.0.1 req. 3.3.1).
   *
   * @throws AgentError POS211 unknown payment; POS212 not authorizing.
   */
  recordOnlineOutcome(paymentId: string, answer: OnlineOutcome): Payment {
    return this.#lifecycle.recordOnlineOutcome(paymentId, answer);
  }

  /**
   * Offline approval under `policy`, decided and written in ONE transaction, so two payments can
   * never both take the last room under a cap: within the caps the payment goes to `stored`
   * (approval `offline`, its forwarding deadline from the store's `forwardingDeadlineHours`
   * option — not the policy's) with a `payment` outbox record; for a draft that one commit also
   * holds the payment row, its card token, its earlier events and its sealed data (after an
   * ambiguous online attempt, the sealed data held since its request). Over a cap it
   * is declined locally with the cap's code — and when `ambiguous` (the online request may have
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
    return this.#lifecycle.storeOffline(paymentId, policy, options);
  }

  /**
   * Declines a payment locally with a named `code` (`online_pin_required`,
   * `offline_not_allowed`, `authorization_timeout`, …) and `reason`, in one FULL commit (with the
   * draft's events, for a payment in progress). With `voidRecord` (the online request may have
   * reached the cloud) a `void` record with the payment's idempotency key is queued, so a charge
   * the cloud made is undone. Sealed card data is deleted.
   *
   * @throws AgentError POS211 unknown payment; POS212 the machine refuses a decline here.
   */
  declineLocally(
    paymentId: string,
    code: string,
    reason: string,
    options: { voidRecord: boolean },
  ): Payment {
    return this.#lifecycle.declineLocally(paymentId, code, reason, options);
  }

  /**
   * Cancels a payment for the POS app (`POST /v1/payments/:id/cancel`):
   * - before authorization (awaiting_card, card_read, awaiting_pin: a draft) → `canceled`,
   *   written with the draft's events; nothing reaches the cloud;
   * - after an approval (stored, forwarded, approved, confirmed) → `canceled` and a `void`
   *   record (key `<idempotency key>.void`) forwarded, so the cloud takes no money for it.
   *
   * @returns the payment and whether a void record was queued.
   * @throws AgentError POS211 unknown payment; POS212 while authorizing (the outcome is on its
   *   way: cancel after it) or after a final outcome.
   */
  cancelPayment(paymentId: string, reason: string): { payment: Payment; voided: boolean } {
    return this.#lifecycle.cancelPayment(paymentId, reason);
  }

  /**
   * Forgets the draft of a payment whose flow ended without a durable outcome (every write of
   * its end failed): the same as a crash would leave — nothing. Harmless for any other id.
   */
  discardDraft(paymentId: string): void {
    this.#lifecycle.discardDraft(paymentId);
  }

  /**
   * Start-up recovery (issue 3 §7): every payment left in a non-final state in the database is
   * brought to a defined state, one transaction with one savepoint per payment. Payments in
   * progress are drafts (memory only) since issue 9, so a crash before the decision leaves
   * nothing to recover; an older agent's rows still are:
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
    return this.#lifecycle.recoverInterrupted();
  }

  /** Offline exposure: payments approved offline whose issuer outcome is not yet known. */
  offlineExposure(): OfflineExposure {
    return this.#k.read(() => readOfflineExposure(this.#k));
  }

  /**
   * Offline payments still to settle whose forwarding deadline is at or before `untilAt`
   * (ISO 8601 UTC; pass now + the warning hours), earliest first, at most 100.
   */
  deadlineWarnings(untilAt: string): Payment[] {
    return this.#k.read(() => readDeadlineWarnings(this.#k, untilAt));
  }

  /** The payment with this id (`pay_…`), in progress or stored, or `undefined`. */
  getPayment(id: string): Payment | undefined {
    return this.#queries.getPayment(id);
  }

  /** See {@link PaymentQueries.requirePayment}: POS211 when there is none (API: 404). */
  requirePayment(id: string): Payment {
    return this.#queries.requirePayment(id);
  }

  /** The payment created with this idempotency key, in progress or stored, or `undefined`. */
  getPaymentByKey(idempotencyKey: string): Payment | undefined {
    return this.#queries.getPaymentByKey(idempotencyKey);
  }

  /** See {@link PaymentQueries.listPaymentPage} (newest first, by index; POS213). */
  listPaymentPage(filter: PaymentPageFilter = {}): PaymentPage {
    return this.#queries.listPaymentPage(filter);
  }

  /** The first page of {@link listPaymentPage}: payments, newest first. Errors as there. */
  listPayments(
    filter: { state?: PaymentState | undefined; limit?: number | undefined } = {},
  ): Payment[] {
    return this.#queries.listPayments(filter);
  }

  /** See {@link PaymentQueries.listEvents}: one payment's history in chain order. */
  listEvents(paymentId: string): StoredEvent[] {
    return this.#queries.listEvents(paymentId);
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
   * no longer hold it (PCI DSS 4.0.1 req. 3.3.1); otherwise checkpoints when enough commits piled
   * up (`StoreKernel.checkpointIfDue`), so payments' commits never pay for a checkpoint; after
   * either, it starts the WAL over (`StoreKernel.restartWal`), so no payment's commit pays the
   * second fsync of a WAL restart either.
   *
   * @returns whether a checkpoint ran.
   * @throws AgentError POS207 SQLite could not checkpoint (tried again at the next pass).
   */
  maintenance(): boolean {
    if (!this.outbox.walHoldsDeletedCardData) return this.#k.checkpointIfDue();
    this.#k.checkpointWal();
    this.outbox.walCheckpointed();
    // The truncated WAL starts over at the next write: this one, not a payment's (its header sync).
    this.#k.restartWal();
    return true;
  }
}
