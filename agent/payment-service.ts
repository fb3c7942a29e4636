/**
 * The payment flow of the agent (architecture.md §4, §5, §6; issue 3): online first, offline only by
 * explicit policy, nothing lost, nothing charged twice.
 *
 * ```
 * POS app ──POST /v1/payments { offline: prefer_online | require_online | force_offline }──▶
 *   1. store.startPayment           awaiting_card   (a draft in memory: the key is taken, nothing
 *                                                    is written before the decision, issue 9 §2)
 *   2. pad: "present card" → card   card_read       (token + sealed data, held with the draft)
 *   3. online PIN if the card needs it (message 30 → 31 PIN block | 39 no PIN)   awaiting_pin
 *   4. decide (the draft's first write, one FULL commit):
 *      cloud reachable & mode ≠ force_offline → authorizing → up/auth … down/auth (timeoutMs)
 *          approved → approved (approval: online) + outbox record
 *          declined → declined (issuer code)
 *          timeout / lost → AMBIGUOUS: prefer_online → offline policy (stored or declined over a
 *                           cap, the key reaches the cloud either way); require_online or
 *                           online-PIN card → declined `authorization_timeout` + void record
 *      cloud unreachable: require_online → declined `offline_not_allowed`;
 *                         online-PIN card → declined `online_pin_required`;
 *                         otherwise (and force_offline) → offline policy:
 *                           within caps → stored (approval: offline), else declined
 *                           `offline_amount_limit` | `offline_total_limit` | `offline_count_limit`
 *   5. answer the POS app after the commit; the terminal shows the result
 * ```
 *
 * Never a silent switch: the answer carries `approval: 'online' | 'offline'`, and every step is a
 * prompt on `/v1/events`. One payment at a time per PIN pad (POS410 otherwise).
 */
import { EventEmitter } from 'node:events';
import { v7 as uuidv7 } from 'uuid';
import { AgentError, isAgentError } from '../common/agent-error.js';
import type { AuthResponse } from '../cloud-sync/schemas.js';
import type { EncryptedPinBlock, PinPad } from '../drivers/pinpad/pin-pad.js';
import type {
  OfflineMode,
  OfflinePolicy,
  Payment,
  PaymentStore,
} from '../store-forward/payment-store.js';
import type { CardInput } from './card-input.js';
import type { Logger } from './logger.js';
import { PaymentStageTimings, type StageClock } from './payment-timings.js';
import { authRequestFor, secretOf, storeCardOf } from './payment-card.js';
import { answerRepeatedKey } from './payment-idempotency.js';
import { padCardNotReadText, padResultText, terminalPrompt } from './payment-screens.js';
import type {
  AuthorizationSettings,
  OnlineAuthorizer,
  PaymentRequest,
  PromptKind,
} from './payment-types.js';
import { cardNotReadText, declineText, formatAmount, outcomeText, PROMPT_TEXTS } from './texts.js';

export { formatAmount, padCardNotReadText, padResultText };
export type {
  AuthorizationSettings,
  OnlineAuthorizer,
  PaymentRequest,
  PromptKind,
  TerminalPrompt,
} from './payment-types.js';

/**
 * Takes payments from the POS app through the PIN pad, the cloud or the offline policy into the
 * store. Emits `prompt` ({@link TerminalPrompt}) for every message the terminal would show.
 */
export class PaymentService extends EventEmitter {
  readonly #store: PaymentStore;
  readonly #pinPad: () => PinPad | undefined;
  readonly #notifySync: () => void;
  readonly #logger: Logger;
  readonly #cardReadTimeoutSeconds: number;
  readonly #online: OnlineAuthorizer | undefined;
  readonly #policy: OfflinePolicy;
  readonly #auth: AuthorizationSettings;
  readonly #now: () => number;
  readonly #cardInput: CardInput | undefined;
  readonly #monotonicMs: () => number;
  /** Where payments' time goes, by stage (agent/payment-timings.ts; `GET /metrics`). */
  readonly stageTimings: PaymentStageTimings;
  #busy: { key: string; paymentId?: string } | null = null;
  /** Aborts the card read in progress (cancel, agent stop). */
  #cardRead: AbortController | undefined;
  /** Set by {@link PaymentService.interrupt}: a card read that starts afterwards ends at once. */
  #stopping = false;
  readonly #inProgress = new Map<
    string,
    { request: PaymentRequest; done: Promise<{ payment: Payment; created: boolean }> }
  >();

  /**
   * @param deps.store — the SQLite store (payments, events, outbox).
   * @param deps.pinPad — the connected PIN pad, or undefined while it is disconnected.
   * @param deps.notifySync — wakes the sync worker after a commit.
   * @param deps.cardReadTimeoutSeconds — how long the customer has to present a card.
   * @param deps.online — online authorization; absent: the agent works offline only.
   * @param deps.policy — the offline policy (config `offline`, defaults there).
   * @param deps.authorization — config `authorization` (defaults there).
   * @param deps.now — clock for prompt timestamps, epoch ms.
   * @param deps.cardInput — races the PIN pad's read against the card readers (agent/card-input.ts);
   *   absent: the PIN pad alone reads cards.
   * @param deps.stageTimings — where stage durations are observed; absent: a new one
   *   (`stageTimings`).
   * @param deps.monotonicMs — monotonic clock for stage durations, ms (default
   *   `performance.now`).
   */
  constructor(deps: {
    store: PaymentStore;
    pinPad: () => PinPad | undefined;
    notifySync: () => void;
    logger: Logger;
    cardReadTimeoutSeconds: number;
    online?: OnlineAuthorizer;
    policy: OfflinePolicy;
    authorization: AuthorizationSettings;
    now?: () => number;
    cardInput?: CardInput;
    stageTimings?: PaymentStageTimings;
    monotonicMs?: () => number;
  }) {
    super();
    this.#store = deps.store;
    this.#pinPad = deps.pinPad;
    this.#notifySync = deps.notifySync;
    this.#logger = deps.logger;
    this.#cardReadTimeoutSeconds = deps.cardReadTimeoutSeconds;
    this.#online = deps.online;
    // The defaults live in one place: the config schema (agent/config.ts `offline`, `authorization`).
    this.#policy = deps.policy;
    this.#auth = deps.authorization;
    this.#now = deps.now ?? Date.now;
    this.#cardInput = deps.cardInput;
    this.stageTimings = deps.stageTimings ?? new PaymentStageTimings();
    this.#monotonicMs = deps.monotonicMs ?? (() => performance.now());
  }

  /** The offline policy in force. */
  get policy(): OfflinePolicy {
    return this.#policy;
  }

  /**
   * Takes one payment; answers after its outcome is committed.
   *
   * @returns the payment (`approved` online, `stored` offline, `declined` with `declineCode` and
   *   `reason`, `canceled`) and whether this call created it (`false` for a retry with a known
   *   idempotency key, which returns the original payment).
   * @throws AgentError POS409 the key is in use by a payment in progress with other parameters;
   *   POS210 (from the store) it was used before with other parameters; POS410 the PIN pad is
   *   busy; POS431 the agent is stopping; POS430 it is not connected; POS420 the card could not be read (the payment is
   *   `failed`, named in `details.paymentId`).
   */
  async takePayment(request: PaymentRequest): Promise<{ payment: Payment; created: boolean }> {
    const idempotencyKey = request.idempotencyKey ?? uuidv7();
    const repeated = await answerRepeatedKey(
      idempotencyKey,
      request,
      this.#inProgress.get(idempotencyKey),
      () => this.#store.getPaymentByKey(idempotencyKey),
    );
    if (repeated !== undefined) return repeated;
    if (this.#stopping) {
      throw new AgentError(
        'POS431',
        'the agent is stopping and takes no new payment; retry once it runs again',
      );
    }
    if (this.#busy !== null) {
      throw new AgentError(
        'POS410',
        `the PIN pad is busy with payment ${this.#busy.key}; wait for its answer or cancel it`,
      );
    }
    const pad = this.#pinPad();
    if (pad === undefined) {
      throw new AgentError(
        'POS430',
        'the PIN pad is not connected; check its cable and "pos-agent devices", then retry',
      );
    }
    this.#busy = { key: idempotencyKey };
    const done = this.#run(pad, request, idempotencyKey);
    this.#inProgress.set(idempotencyKey, { request, done });
    try {
      return await done;
    } finally {
      this.#inProgress.delete(idempotencyKey);
      this.#busy = null;
    }
  }

  /**
   * Cancels a payment (`POST /v1/payments/:id/cancel`): before authorization it becomes
   * `canceled` (the PIN pad is told to stop); after an approval it becomes `canceled` and a void
   * record is forwarded so the cloud takes no money.
   *
   * @throws AgentError POS211 unknown payment; POS212 not cancelable in its state (authorizing:
   *   wait for the outcome; or already final).
   */
  async cancel(paymentId: string): Promise<{ payment: Payment; voided: boolean }> {
    const result = this.#store.cancelPayment(paymentId, 'canceled by the POS app');
    if (result.voided) this.#notifySync();
    this.#prompt('canceled', PROMPT_TEXTS.canceled, result.payment);
    if (this.#busy?.paymentId === paymentId) {
      // End the read on every device at once: a card reader must not wait for a PIN pad that is
      // slow to confirm its cancel (or never does).
      this.#cardRead?.abort();
      await this.#pinPad()
        ?.cancel()
        .catch(() => undefined);
    }
    return result;
  }

  /**
   * Ends the PIN pad and card reader operation of the payment in progress, for the agent's stop:
   * a card read ends `canceled` (the payment becomes `failed`, its POST answers POS420), a PIN
   * entry ends `pin_canceled`; the POS app gets its answer instead of waiting for the customer
   * while the API closes. Resolves once that payment's outcome is committed. New payments are
   * refused with POS431 afterwards.
   */
  async interrupt(): Promise<void> {
    this.#stopping = true;
    if (this.#busy === null) return;
    this.#cardRead?.abort();
    await this.#pinPad()
      ?.cancel()
      .catch(() => undefined);
    // Its outcome is committed (or its error recorded) before the caller closes the store.
    await Promise.allSettled([...this.#inProgress.values()].map((p) => p.done));
  }

  /** True while a payment holds the PIN pad (from its start until its answer). */
  get busy(): boolean {
    return this.#busy !== null;
  }

  /** True once {@link PaymentService.interrupt} was called: the agent is stopping. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * The cloud acknowledged records: announces outcomes that changed after the answer (a late
   * issuer decline of an offline approval → `reversed`).
   */
  noteAcked(keys: readonly string[]): void {
    for (const key of keys) {
      const payment = this.#store.getPaymentByKey(key);
      if (payment?.state === 'reversed') {
        this.#prompt('reversed', outcomeText(payment, this.#policy), payment);
      }
    }
  }

  async #run(
    pad: PinPad,
    request: PaymentRequest,
    idempotencyKey: string,
  ): Promise<{ payment: Payment; created: boolean }> {
    const mode = request.offlineMode ?? 'prefer_online';
    const log = this.#logger.child({ idempotencyKey });
    const clock = this.stageTimings.start(this.#monotonicMs);
    const started = this.#store.startPayment({
      idempotencyKey,
      amountMinor: request.amountMinor,
      currency: request.currency,
      reference: request.reference,
      offlineMode: mode,
    });
    let payment = started.payment;
    if (!started.created) return started;
    if (this.#busy !== null) this.#busy.paymentId = payment.id;
    try {
      payment = await this.#flow(pad, request, payment, mode, log, clock);
    } catch (error) {
      const now = this.#store.getPayment(payment.id);
      // Canceled by the POS app meanwhile: that is the answer.
      if (now?.state === 'canceled') return { payment: now, created: true };
      if (now !== undefined && ['awaiting_card', 'card_read', 'awaiting_pin'].includes(now.state)) {
        const reason = isAgentError(error) ? error.reason : 'unexpected error';
        this.#store.recordStep(payment.id, 'failed', { reason: reason.slice(0, 400) });
      }
      if (now?.state === 'authorizing') this.#interrupted(payment.id, log);
      throw error;
    } finally {
      // Every write of its end failed: the draft goes, as a crash would take it.
      this.#store.discardDraft(payment.id);
    }
    log.info(
      { paymentId: payment.id, state: payment.state, approval: payment.approval },
      payment.state === 'stored' ? 'payment stored' : `payment ${payment.state}`,
    );
    clock.finish(this.stageTimings);
    // The outcome is committed: the POS app is answered now. The pad shows the result meanwhile;
    // its 51 (result shown, card removed) takes as long as the customer does, and the pad driver
    // serializes the next payment's operations behind it. The 50 frame goes out right after the
    // answer is written (setImmediate runs after the microtasks that send it, before any next
    // request can be read): its write to the pad's transport is not on the POS app's path
    // (issue 9, the HTTP path).
    const shown = payment;
    setImmediate(() => {
      void pad
        .showResult(
          shown.state === 'stored'
            ? 'stored'
            : shown.state === 'approved'
              ? 'approved'
              : 'declined',
          padResultText(shown),
        )
        .catch((error: unknown) => {
          // The outcome is committed; a display hiccup must not turn it into an error for the POS app.
          log.warn({ err: error }, 'could not show the result on the PIN pad');
        });
    });
    return { payment, created: true };
  }

  async #flow(
    pad: PinPad,
    request: PaymentRequest,
    started: Payment,
    mode: OfflineMode,
    log: Logger,
    clock: StageClock,
  ): Promise<Payment> {
    const id = started.id;
    this.#prompt('present_card', PROMPT_TEXTS.present_card, started);
    await clock.time('pad_display', () =>
      pad.display(formatAmount(request.amountMinor, request.currency), 'Insert or tap card'),
    );
    const readRequest = {
      amountMinor: request.amountMinor,
      currency: request.currency,
      timeoutSeconds: this.#cardReadTimeoutSeconds,
      entryModes: ['S', 'C', 'T'] as ('S' | 'C' | 'T')[],
    };
    const abort = new AbortController();
    this.#cardRead = abort;
    if (this.#stopping) abort.abort();
    let read: Awaited<ReturnType<PinPad['readCard']>>;
    try {
      const cardInput = this.#cardInput;
      read = await clock.time('card_read', () =>
        cardInput !== undefined
          ? cardInput.readCard(readRequest, abort.signal)
          : pad.readCard(readRequest),
      );
    } finally {
      this.#cardRead = undefined;
    }
    if (!read.ok) {
      log.info({ reason: read.reason }, 'card read failed');
      if (this.#store.getPayment(id)?.state === 'canceled') {
        throw new AgentError('POS420', 'the payment was canceled while waiting for the card');
      }
      const failed = this.#store.recordStep(id, 'failed', {
        reason: `card not read: ${read.reason}`,
      });
      this.#prompt('failed', cardNotReadText(read.reason), failed, read.reason);
      await pad.showResult('declined', padCardNotReadText(read.reason)).catch(() => undefined);
      throw new AgentError(
        'POS420',
        `the card could not be read (${read.reason}); ask the customer to try again with a new payment`,
        { details: { reason: read.reason, paymentId: id } },
      );
    }
    const { card } = read;
    let payment = this.#store.recordCardRead(id, storeCardOf(card), secretOf(card));
    const needsPin = this.#auth.onlinePinEntryModes.includes(card.entryMode);
    const reachable = this.#online !== undefined && this.#online.online();

    if (mode === 'force_offline' || !reachable) {
      return clock.timeSync('store', () => this.#withoutCloud(id, mode, needsPin));
    }

    let pinBlock: EncryptedPinBlock | undefined;
    if (needsPin) {
      payment = this.#store.recordStep(id, 'pin_requested');
      this.#prompt('enter_pin', PROMPT_TEXTS.enter_pin, payment);
      const pin = await clock.time('pin_entry', () =>
        pad.requestPin({
          amountMinor: request.amountMinor,
          currency: request.currency,
          timeoutSeconds: this.#auth.pinTimeoutSeconds,
        }),
      );
      if (!pin.ok) {
        return clock.timeSync('store', () =>
          this.#declined(
            this.#store.declineLocally(id, `pin_${pin.reason}`, `no PIN entered (${pin.reason})`, {
              voidRecord: false,
            }),
          ),
        );
      }
      pinBlock = pin.pinBlock;
    }
    payment = clock.timeSync('store', () => this.#store.recordStep(id, 'authorization_requested'));
    this.#prompt('authorizing', PROMPT_TEXTS.authorizing, payment);
    const authRequest = authRequestFor(payment, card, pinBlock);
    let response: AuthResponse;
    try {
      const online = this.#online as OnlineAuthorizer;
      response = await clock.time('authorization', () =>
        online.authorize(authRequest, { timeoutMs: this.#auth.timeoutMs }),
      );
    } catch (error) {
      if (isAgentError(error, 'POS325')) {
        // The link dropped between the check above and the publish: nothing was sent, so the
        // outcome is not ambiguous and no void record is needed.
        log.info({ code: error.code }, 'the link went down before the authorization was sent');
        return clock.timeSync('store', () => this.#withoutCloud(id, mode, needsPin));
      }
      // Ambiguous: the request may have reached the cloud and been approved there. The same
      // idempotency key reaches the cloud later either way (the stored record or a void record),
      // and the cloud answers with its ORIGINAL outcome, so there is never a second charge.
      log.warn({ err: error }, 'online authorization has no answer; the outcome is unknown');
      if (mode === 'require_online' || needsPin) {
        return clock.timeSync('store', () =>
          this.#declined(
            this.#store.declineLocally(
              id,
              'authorization_timeout',
              `no answer from the cloud within ${this.#auth.timeoutMs} ms; a void record tells the cloud to undo any approval`,
              { voidRecord: true },
            ),
          ),
        );
      }
      return clock.timeSync('store', () => this.#offline(id, true));
    }
    const answer = response;
    payment = clock.timeSync('store', () =>
      answer.outcome === 'approved'
        ? this.#store.recordOnlineOutcome(id, { outcome: 'approved', authCode: answer.authCode })
        : this.#store.recordOnlineOutcome(id, {
            outcome: 'declined',
            declineCode: answer.declineCode,
          }),
    );
    if (payment.state === 'approved') {
      this.#notifySync();
      this.#prompt('approved_online', PROMPT_TEXTS.approved_online, payment);
      return payment;
    }
    return this.#declined(payment);
  }

  /**
   * An error after `authorization_requested` (the store failing to record the cloud's answer):
   * the request may have been approved in the cloud, so, as recoverInterrupted does at start-up,
   * the payment is declined locally and a void record tells the cloud to undo any approval —
   * instead of staying `authorizing` until the next restart.
   */
  #interrupted(id: string, log: Logger): void {
    try {
      this.#declined(
        this.#store.declineLocally(
          id,
          'authorization_interrupted',
          'an error interrupted the online authorization; the cloud is told to void it',
          { voidRecord: true },
        ),
      );
    } catch (error) {
      // The store is still failing: recoverInterrupted settles the payment at the next start.
      log.error({ err: error, paymentId: id }, 'could not decline an interrupted authorization');
    }
  }

  #onlinePinRequired(id: string): Payment {
    return this.#store.declineLocally(
      id,
      'online_pin_required',
      'this card needs online PIN, which cannot be checked while the cloud is unreachable',
      { voidRecord: false },
    );
  }

  /**
   * The cloud cannot be asked (offline by choice or by link state, or the authorization was not
   * sent): decline `require_online` and online-PIN cards, otherwise apply the offline policy.
   */
  #withoutCloud(id: string, mode: OfflineMode, needsPin: boolean): Payment {
    if (mode === 'require_online') {
      return this.#declined(
        this.#store.declineLocally(
          id,
          'offline_not_allowed',
          'the POS app required online authorization and the cloud cannot be reached',
          { voidRecord: false },
        ),
      );
    }
    if (needsPin) return this.#declined(this.#onlinePinRequired(id));
    return this.#offline(id, false);
  }

  #offline(id: string, ambiguous: boolean): Payment {
    const { payment } = this.#store.storeOffline(id, this.#policy, { ambiguous });
    this.#notifySync();
    if (payment.state === 'stored') {
      this.#prompt('approved_offline', PROMPT_TEXTS.approved_offline, payment);
      return payment;
    }
    return this.#declined(payment);
  }

  #declined(payment: Payment): Payment {
    // A decline after an ambiguous timeout queued a void record: forward it now.
    this.#notifySync();
    if (payment.state === 'declined') {
      const code = payment.declineCode ?? 'declined';
      this.#prompt(
        'declined',
        declineText(code, {
          amountMinor: payment.amountMinor,
          currency: payment.currency,
          policy: this.#policy,
        }),
        payment,
        code,
      );
    }
    return payment;
  }

  #prompt(kind: PromptKind, text: string, payment: Payment, code?: string): void {
    this.emit('prompt', terminalPrompt(kind, text, payment, this.#now(), code));
  }
}
