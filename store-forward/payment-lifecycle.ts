/**
 * The payment lifecycle's commands (architecture.md §4, issue 3; issue 9 §2): start → card read →
 * PIN → the decision (offline approval, authorization request, decline, failure, cancel) → the
 * online outcome, and the start-up recovery of what a crash left.
 *
 * ```
 *  in memory (payment-drafts.ts)          │ on the disk, one FULL commit each
 *  startPayment   awaiting_card           │
 *  recordCardRead card_read   (+ sealed)  │
 *  recordStep(pin_requested) awaiting_pin │
 *  ───────────────────────────────────────┼──────────────────────────────────────────────────────
 *  offline:  storeOffline ────────────────► payment + card + its events + approval + outbox row  (1)
 *  online:   recordStep(authorization_requested) ► payment + card + events; sealed data held (1)
 *            recordOnlineOutcome ──────────► outcome (+ outbox row); held sealed data dropped  (2)
 *            storeOffline (ambiguous) ─────► payment_stored + outbox row + the held sealed data (2)
 *  declineLocally / recordStep(failed) / cancelPayment on a draft ► payment + its end          (1)
 * ```
 *
 * Every write runs in one `BEGIN IMMEDIATE` transaction committed with `synchronous=FULL`
 * before the method returns; the caller (the API) answers the POS app only after it. A draft is
 * forgotten once its first write committed; if that write fails, the draft stays as it was.
 *
 * The sealed card data of a payment being authorized online stays in memory, not on the disk
 * (issue 9): the request carries it from memory, an approval or decline needs none, and after a
 * crash recovery declines the payment with a void record, which needs none either. Only the
 * fallback to offline after an ambiguous timeout (`storeOffline`) writes it, with the stored
 * payment it belongs to. Two b-trees fewer in each of the online payment's two commits, and the
 * sealed data of an online payment never reaches the WAL (PCI DSS 4.0.1 req. 3.3.1).
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { isAgentError, type AgentError } from '../common/agent-error.js';
import { isoAt } from '../common/clock.js';
import { storeError } from './errors.js';
import { toAgentError, type StoreKernel } from './kernel.js';
import {
  APPROVED_STATES,
  OFFLINE_MODES,
  type EventType,
  type NewPayment,
  type OfflineMode,
  type Payment,
  type PaymentState,
} from './model.js';
import { readOfflineExposure } from './offline-exposure.js';
import { decideOffline, type OfflineDecision, type OfflinePolicy } from './offline-policy.js';
import type { SqliteOutbox } from './outbox.js';
import { PaymentIds } from './payment-ids.js';
import { PaymentDrafts, type DraftSecret } from './payment-drafts.js';
import {
  assertSameParameters,
  refusePurgedKey,
  requirePayment,
  requirePaymentId,
} from './payment-rules.js';
import { toPayment, type PaymentRow } from './rows.js';
import { checkCardRead, checkNewPayment, checkPaymentStart, safeReason } from './validate.js';

/** Result of {@link PaymentLifecycle.recoverInterrupted}. */
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

/**
 * Free bytes on the database's disk below which a payment is refused at its start (POS207),
 * before the customer presents a card: its one commit (a few pages of rows, events and index
 * entries, plus their WAL frames) would not fit. 256 KiB.
 */
const MIN_FREE_BYTES = 256 * 1024;

/**
 * The state whose payment keeps its sealed card data on the disk: stored, waiting for the cloud.
 * An `authorizing` payment's is held in memory (see the file comment).
 */
const WRITES_SEALED: PaymentState = 'stored';

/** The issuer's answer to an online authorization (`PaymentStore.recordOnlineOutcome`). */
export type OnlineOutcome =
  | { outcome: 'approved'; authCode?: string | undefined }
  | { outcome: 'declined'; declineCode?: string | undefined };

/** What a payment starts with, before its card (`PaymentStore.startPayment`). */
export interface PaymentStart {
  idempotencyKey: string;
  /** Integer minor units, > 0. */
  amountMinor: number;
  /** ISO 4217 alphabetic code. */
  currency: string;
  reference?: string | undefined;
  offlineMode: OfflineMode;
}

/** The lifecycle commands over one kernel, its outbox and its drafts; see the file comment. */
export class PaymentLifecycle {
  readonly #k: StoreKernel;
  readonly #outbox: SqliteOutbox;
  readonly #drafts: PaymentDrafts;
  readonly #deadlineMs: number;
  /** Sealed card data of the payments in `authorizing`, by payment id (see the file comment). */
  readonly #held = new Map<string, DraftSecret>();
  /** Payment ids in creation order (store-forward/payment-ids.ts). */
  readonly #ids = new PaymentIds();

  /** @param deadlineMs — how long a stored payment may wait to reach the cloud, ms (> 0). */
  constructor(k: StoreKernel, outbox: SqliteOutbox, drafts: PaymentDrafts, deadlineMs: number) {
    this.#k = k;
    this.#outbox = outbox;
    this.#drafts = drafts;
    this.#deadlineMs = deadlineMs;
  }

  /** See `PaymentStore.createPayment` (the walking skeleton's one-commit stored payment). */
  createPayment(input: NewPayment): { payment: Payment; created: boolean } {
    const checked = checkNewPayment(input);
    const draft = this.#drafts.byKey(checked.idempotencyKey);
    if (draft !== undefined) {
      assertSameParameters(draft.payment, checked);
      return { payment: draft.payment, created: false };
    }
    return this.#k.write(() => {
      refusePurgedKey(this.#k, checked.idempotencyKey);
      const existing = this.#k.stmts.paymentByKey.get(checked.idempotencyKey) as
        PaymentRow | undefined;
      if (existing !== undefined) {
        const original = toPayment(existing);
        assertSameParameters(original, checked);
        return { payment: original, created: false };
      }
      const nowMs = this.#k.clock.now();
      const at = isoAt(nowMs);
      const id = this.#ids.next(nowMs);
      const payment = this.#k.record(id, 'payment_stored', at, {
        id,
        idempotencyKey: checked.idempotencyKey,
        amountMinor: checked.amountMinor,
        currency: checked.currency,
        reference: checked.reference,
        card: { ...checked.card },
        forwardingDeadlineAt: isoAt(nowMs + this.#deadlineMs),
      });
      this.#outbox.queue(payment, 'payment', at);
      if (checked.sealed !== undefined || checked.sred !== undefined) {
        this.#insertSealed(id, { sealed: checked.sealed, sred: checked.sred }, at);
      }
      return { payment, created: true };
    });
  }

  /** See `PaymentStore.startPayment`: a draft in memory, nothing written. */
  startPayment(input: PaymentStart): { payment: Payment; created: boolean } {
    const checked = checkPaymentStart(input);
    if (!(OFFLINE_MODES as readonly string[]).includes(input.offlineMode)) {
      throw storeError(
        'POS213',
        `offlineMode ${JSON.stringify(String(input.offlineMode).slice(0, 32))} is not one of ${OFFLINE_MODES.join(', ')}; fix: send one of them`,
      );
    }
    const key = checked.idempotencyKey;
    const draft = this.#drafts.byKey(key);
    const existing =
      draft?.payment ??
      this.#k.read(() => {
        refusePurgedKey(this.#k, key);
        const row = this.#k.stmts.paymentByKey.get(key) as PaymentRow | undefined;
        return row === undefined ? undefined : toPayment(row);
      });
    if (existing !== undefined) {
      assertSameParameters(existing, checked);
      return { payment: existing, created: false };
    }
    this.#requireRoom();
    const nowMs = this.#k.clock.now();
    const id = this.#ids.next(nowMs);
    const payment = this.#drafts.start({
      type: 'payment_started',
      at: isoAt(nowMs),
      data: {
        id,
        idempotencyKey: key,
        amountMinor: checked.amountMinor,
        currency: checked.currency,
        reference: checked.reference,
        offlineMode: input.offlineMode,
      },
    });
    return { payment, created: true };
  }

  /** See `PaymentStore.recordCardRead`. */
  recordCardRead(
    paymentId: string,
    card: NewPayment['card'],
    secret: { sealed?: string | undefined; sred?: NewPayment['sred'] } = {},
  ): Payment {
    const checked = checkCardRead({ card, sealed: secret.sealed, sred: secret.sred });
    const held = { sealed: checked.sealed, sred: checked.sred };
    const at = this.#k.now();
    if (this.#drafts.get(paymentId) !== undefined) {
      return this.#drafts.step(
        paymentId,
        { type: 'card_read', at, data: { card: checked.card } },
        held,
      );
    }
    // Not a draft: a payment already written (canceled meanwhile, or left by an older agent).
    return this.#k.write(() => {
      const payment = this.#k.record(requirePaymentId(this.#k, paymentId), 'card_read', at, {
        card: { ...checked.card },
      });
      if (held.sealed !== undefined || held.sred !== undefined) {
        this.#insertSealed(paymentId, held, at);
      }
      return payment;
    });
  }

  /** See `PaymentStore.recordStep`. */
  recordStep(
    paymentId: string,
    type: 'pin_requested' | 'authorization_requested' | 'failed',
    data: { reason?: string } = {},
  ): Payment {
    const at = this.#k.now();
    const eventData = { reason: data.reason === undefined ? undefined : safeReason(data.reason) };
    // Asking for the PIN tells nobody anything: a draft stays a draft.
    if (type === 'pin_requested' && this.#drafts.get(paymentId) !== undefined) {
      return this.#drafts.step(paymentId, { type, at, data: eventData });
    }
    const secret = this.#drafts.get(paymentId)?.secret;
    const payment = this.#write(paymentId, () => this.#append(paymentId, type, at, eventData));
    // Held only once the request's intent is durable: a failed write keeps the draft instead.
    if (payment.state === 'authorizing' && secret !== undefined) this.#held.set(payment.id, secret);
    return payment;
  }

  /** See `PaymentStore.recordOnlineOutcome`. */
  recordOnlineOutcome(paymentId: string, answer: OnlineOutcome): Payment {
    return this.#write(paymentId, () => {
      const at = this.#k.now();
      let payment: Payment;
      if (answer.outcome === 'approved') {
        payment = this.#append(paymentId, 'approved', at, { authCode: answer.authCode });
        this.#outbox.queue(payment, 'payment', at);
      } else {
        payment = this.#append(paymentId, 'declined', at, {
          declineCode: answer.declineCode ?? 'declined',
          reason: `declined by the issuer (code ${answer.declineCode ?? 'none'})`,
          by: 'issuer',
        });
      }
      this.#k.stmts.deleteSealed.run(payment.id);
      return payment;
    });
  }

  /** See `PaymentStore.storeOffline`: ONE transaction decides and writes. */
  storeOffline(
    paymentId: string,
    policy: OfflinePolicy,
    options: { ambiguous: boolean },
  ): { payment: Payment; decision: OfflineDecision } {
    return this.#write(paymentId, () => {
      const nowMs = this.#k.clock.now();
      const at = isoAt(nowMs);
      const current = this.#current(paymentId);
      const decision = decideOffline(
        policy,
        readOfflineExposure(this.#k, { withDeadline: false }),
        current.amountMinor,
        current.currency,
      );
      if (!decision.ok) {
        const payment = this.#declineLocally(current.id, decision.code, decision.reason, at, {
          voidRecord: options.ambiguous,
        });
        return { payment, decision };
      }
      const payment = this.#append(current.id, 'payment_stored', at, {
        // The store's option, like createPayment: one deadline rule for every stored payment.
        forwardingDeadlineAt: isoAt(nowMs + this.#deadlineMs),
        ambiguous: options.ambiguous,
      });
      // After an ambiguous online attempt: the sealed data held since its request goes with it.
      const held = this.#held.get(current.id);
      if (held !== undefined) this.#insertSealed(current.id, held, at);
      this.#outbox.queue(payment, 'payment', at);
      return { payment, decision };
    });
  }

  /** See `PaymentStore.declineLocally`. */
  declineLocally(
    paymentId: string,
    code: string,
    reason: string,
    options: { voidRecord: boolean },
  ): Payment {
    return this.#write(paymentId, () =>
      this.#declineLocally(paymentId, code, reason, this.#k.now(), options),
    );
  }

  /** See `PaymentStore.cancelPayment`. */
  cancelPayment(paymentId: string, reason: string): { payment: Payment; voided: boolean } {
    return this.#write(paymentId, () => {
      const at = this.#k.now();
      const before = this.#current(paymentId);
      const payment = this.#append(before.id, 'canceled', at, { reason: safeReason(reason) });
      const approvedBefore = APPROVED_STATES.includes(before.state);
      if (approvedBefore) this.#outbox.queue(payment, 'void', at);
      else this.#k.stmts.deleteSealed.run(payment.id);
      return { payment, voided: approvedBefore };
    });
  }

  /**
   * Forgets the draft of `paymentId`, if it still has one: its flow ended without a durable
   * outcome (every write of it failed), which leaves the same as a crash would — nothing.
   */
  discardDraft(paymentId: string): void {
    this.#drafts.delete(paymentId);
    this.#held.delete(paymentId);
  }

  /** See `PaymentStore.recoverInterrupted`. */
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
        current.id,
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

  #declineLocally(
    paymentId: string,
    code: string,
    reason: string,
    at: string,
    options: { voidRecord: boolean },
  ): Payment {
    const payment = this.#append(paymentId, 'declined', at, {
      declineCode: code,
      reason: safeReason(reason),
      by: 'agent',
    });
    if (options.voidRecord) this.#outbox.queue(payment, 'void', at);
    // A void needs no card data: the cloud finds what it approved by the key.
    this.#k.stmts.deleteSealed.run(payment.id);
    return payment;
  }

  /** The payment as it is now: its draft's, or its row's. @throws AgentError POS211 unknown. */
  #current(paymentId: string): Payment {
    const draft = this.#drafts.get(paymentId);
    if (draft !== undefined) return draft.payment;
    return requirePayment(this.#k, paymentId);
  }

  /**
   * Records event `type` of `paymentId` in the caller's transaction. For a draft this is its
   * first write: its own events, this one, and its sealed card data when the payment still needs
   * it, in one go (`StoreKernel.recordNew`).
   */
  #append(paymentId: string, type: EventType, at: string, data: Record<string, unknown>): Payment {
    const draft = this.#drafts.get(paymentId);
    if (draft === undefined) {
      // One read: the row is the `current` that record would otherwise read again.
      const current = requirePayment(this.#k, paymentId);
      return this.#k.record(current.id, type, at, data, current);
    }
    const payment = this.#k.recordNew(paymentId, [...draft.events, { type, at, data }]);
    if (draft.secret !== undefined && payment.state === WRITES_SEALED) {
      this.#insertSealed(paymentId, draft.secret, draft.cardReadAt ?? at);
    }
    return payment;
  }

  /**
   * One write of payment `paymentId`; its draft (if any) is forgotten once it committed, and so
   * is its held sealed data: every write of an `authorizing` payment ends that state
   * (recordStep(authorization_requested) holds it again after this returns).
   */
  #write<T>(paymentId: string, fn: () => T): T {
    const result = this.#k.write(fn);
    this.#drafts.delete(paymentId);
    this.#held.delete(paymentId);
    return result;
  }

  /**
   * A draft writes nothing until its decision, so a full disk would only show once the customer
   * presented a card; this asks the file system first, as the start's own commit used to.
   *
   * @throws AgentError POS207 (`details.sqlite` `SQLITE_FULL`) less than {@link MIN_FREE_BYTES}
   *   free: the API answers 503 with `Retry-After`.
   */
  #requireRoom(): void {
    let free: number;
    try {
      const fs = statfsSync(dirname(this.#k.path));
      free = fs.bavail * fs.bsize;
    } catch {
      return; // Cannot tell: the decision's commit will.
    }
    if (free >= MIN_FREE_BYTES) return;
    throw storeError(
      'POS207',
      `the disk holding ${this.#k.path} has ${free} bytes free, less than the ${MIN_FREE_BYTES} ` +
        'a payment needs; nothing was changed; fix: free disk space, then retry the payment',
      // Named like SQLite's own disk-full error, so every caller treats the two alike.
      { details: { sqlite: 'SQLITE_FULL', freeBytes: free } },
    );
  }

  #insertSealed(paymentId: string, secret: DraftSecret, at: string): void {
    if (secret.sealed === undefined && secret.sred === undefined) return;
    this.#k.stmts.insertSealed.run({
      payment_id: paymentId,
      sealed: secret.sealed ?? null,
      sred_ksn: secret.sred?.ksnHex ?? null,
      sred_ciphertext: secret.sred?.ciphertextHex ?? null,
      created_at: at,
    });
  }
}
