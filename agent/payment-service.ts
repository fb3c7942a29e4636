/**
 * The payment flow of the agent (DESIGN §4, §6), as far as the walking skeleton goes:
 *
 * ```
 * POS app ──POST /v1/payments──▶ PaymentService.takePayment
 *   1. idempotency: a known key with the same parameters returns the original payment
 *   2. PIN pad: "Insert or tap card" → read card → the card boundary hands out a CardToken
 *   3. store: payment + event + outbox row in ONE synchronous=FULL transaction
 *   4. answer the POS app: state `stored`;  5. wake the sync worker
 * later: the sync worker forwards it; the cloud's result is recorded as a new event
 * ```
 *
 * One payment at a time per PIN pad: a second request while the pad is busy is refused with
 * POS410 rather than queued behind a customer who is still at the pad.
 */
import { EventEmitter } from 'node:events';
import { v7 as uuidv7 } from 'uuid';
import { AgentError } from '../common/agent-error.js';
import type { PinPad } from '../drivers/pinpad/pin-pad.js';
import type { Payment, PaymentStore } from '../store-forward/payment-store.js';
import type { Logger } from './logger.js';

/** What the POS app asks for. */
export interface PaymentRequest {
  /** Amount in integer minor units of `currency` (e.g. 1250 = 12.50 EUR). */
  amountMinor: number;
  /** ISO 4217 alphabetic code, upper case. */
  currency: string;
  /** The POS app's own reference (receipt number), shown back, never interpreted. */
  reference?: string | undefined;
  /** The `Idempotency-Key` header; a UUIDv7 is made when absent. */
  idempotencyKey?: string | undefined;
}

/** A prompt or result for the terminal's screen, also sent to `/v1/events` subscribers later. */
export interface TerminalPrompt {
  /** What the screen shows, e.g. "Insert or tap card". */
  text: string;
  /** Correlation ids. */
  idempotencyKey: string;
  paymentId?: string;
}

/**
 * Takes payments from the POS app through the PIN pad into the store.
 *
 * Emits `prompt` ({@link TerminalPrompt}) for every message the terminal would show.
 */
export class PaymentService extends EventEmitter {
  readonly #store: PaymentStore;
  readonly #pinPad: () => PinPad | undefined;
  readonly #notifySync: () => void;
  readonly #logger: Logger;
  readonly #cardReadTimeoutSeconds: number;
  #busyKey: string | null = null;
  readonly #inProgress = new Map<
    string,
    { request: PaymentRequest; done: Promise<{ payment: Payment; created: boolean }> }
  >();

  /**
   * @param deps.store — the SQLite store (payments, events, outbox).
   * @param deps.pinPad — the connected PIN pad, or undefined while it is disconnected.
   * @param deps.notifySync — wakes the sync worker after a commit.
   * @param deps.cardReadTimeoutSeconds — how long the customer has to present a card.
   */
  constructor(deps: {
    store: PaymentStore;
    pinPad: () => PinPad | undefined;
    notifySync: () => void;
    logger: Logger;
    cardReadTimeoutSeconds: number;
  }) {
    super();
    this.#store = deps.store;
    this.#pinPad = deps.pinPad;
    this.#notifySync = deps.notifySync;
    this.#logger = deps.logger;
    this.#cardReadTimeoutSeconds = deps.cardReadTimeoutSeconds;
  }

  /**
   * Takes one payment: reads the card and stores the payment durably before answering.
   *
   * @returns the payment (state `stored`) and whether this call created it (`false` for a retry
   *   with a known idempotency key).
   * @throws AgentError POS409 when the key is in use by a payment in progress with other
   *   parameters, POS210 (from the store) when it was used before with other parameters,
   *   POS410 when the PIN pad is busy, POS430 when it is not connected, POS420 when the card
   *   could not be read or was refused (names the reason).
   */
  async takePayment(request: PaymentRequest): Promise<{ payment: Payment; created: boolean }> {
    const idempotencyKey = request.idempotencyKey ?? uuidv7();
    const existing = this.#store.getPaymentByKey(idempotencyKey);
    if (existing !== undefined) {
      const differs = differingFields(existing, request);
      if (differs.length > 0) {
        throw new AgentError(
          'POS409',
          `idempotency key ${idempotencyKey} was used for payment ${existing.id} with another ${differs.join(' and ')}; use a new key for a new payment`,
          { details: { paymentId: existing.id, fields: differs } },
        );
      }
      return { payment: existing, created: false };
    }
    const running = this.#inProgress.get(idempotencyKey);
    if (running !== undefined) {
      if (!sameRequest(running.request, request)) {
        throw new AgentError(
          'POS409',
          `idempotency key ${idempotencyKey} is in use by a payment in progress with other parameters; use a new key for a new payment`,
        );
      }
      const { payment } = await running.done;
      return { payment, created: false };
    }
    if (this.#busyKey !== null) {
      throw new AgentError(
        'POS410',
        `the PIN pad is busy with payment ${this.#busyKey}; wait for its answer or cancel it`,
      );
    }
    this.#busyKey = idempotencyKey;
    const done = this.#run(request, idempotencyKey);
    this.#inProgress.set(idempotencyKey, { request, done });
    try {
      return await done;
    } finally {
      this.#inProgress.delete(idempotencyKey);
      this.#busyKey = null;
    }
  }

  async #run(
    request: PaymentRequest,
    idempotencyKey: string,
  ): Promise<{ payment: Payment; created: boolean }> {
    const pad = this.#pinPad();
    if (pad === undefined) {
      throw new AgentError(
        'POS430',
        'the PIN pad is not connected; check its cable and "pos-agent devices", then retry',
      );
    }
    const log = this.#logger.child({ idempotencyKey });
    this.#prompt({ text: 'Insert or tap card', idempotencyKey });
    await pad.display(formatAmount(request.amountMinor, request.currency), 'Insert or tap card');
    const read = await pad.readCard({
      amountMinor: request.amountMinor,
      currency: request.currency,
      timeoutSeconds: this.#cardReadTimeoutSeconds,
      entryModes: ['S', 'C', 'T'],
    });
    if (!read.ok) {
      log.info({ reason: read.reason }, 'card read failed');
      this.#prompt({ text: `Card not read: ${read.reason}`, idempotencyKey });
      await pad.showResult('declined', `Card not read: ${read.reason}`).catch(() => undefined);
      throw new AgentError(
        'POS420',
        `the card could not be read (${read.reason}); ask the customer to try again`,
        {
          details: { reason: read.reason },
        },
      );
    }
    const { card } = read;
    const result = this.#store.createPayment({
      ...this.#storeInput(request, idempotencyKey),
      card: {
        token: card.token,
        brand: card.brand,
        first6: card.first6,
        last4: card.last4,
        expiryMonth: card.expiryMonth,
        expiryYear: card.expiryYear,
        entryMode: card.entryMode,
        ...(card.cardholderName !== undefined ? { cardholderName: card.cardholderName } : {}),
      },
      ...(card.sealed !== undefined ? { sealed: card.sealed } : {}),
      ...(card.sred !== undefined ? { sred: card.sred } : {}),
    });
    log.info({ paymentId: result.payment.id, state: result.payment.state }, 'payment stored');
    this.#notifySync();
    this.#prompt({ text: 'Payment stored', idempotencyKey, paymentId: result.payment.id });
    await pad.showResult('stored', 'Payment stored').catch((error: unknown) => {
      // The payment is committed; a display hiccup must not turn it into an error for the POS app.
      log.warn({ err: error }, 'could not show the result on the PIN pad');
    });
    return result;
  }

  #storeInput(request: PaymentRequest, idempotencyKey: string) {
    return {
      idempotencyKey,
      amountMinor: request.amountMinor,
      currency: request.currency,
      ...(request.reference !== undefined ? { reference: request.reference } : {}),
    };
  }

  #prompt(prompt: TerminalPrompt): void {
    this.emit('prompt', prompt);
  }
}

function sameRequest(a: PaymentRequest, b: PaymentRequest): boolean {
  return (
    a.amountMinor === b.amountMinor && a.currency === b.currency && a.reference === b.reference
  );
}

/** Names of the parameters in which a retry differs from the stored payment. */
function differingFields(payment: Payment, request: PaymentRequest): string[] {
  const fields: string[] = [];
  if (payment.amountMinor !== request.amountMinor) fields.push('amount');
  if (payment.currency !== request.currency) fields.push('currency');
  if ((payment.reference ?? undefined) !== request.reference) fields.push('reference');
  return fields;
}

/**
 * Formats an amount for a 16-character PIN pad line, e.g. `EUR 12.50`. Minor-unit exponents
 * follow ISO 4217 for the common zero-decimal currencies; others use two decimals.
 */
export function formatAmount(amountMinor: number, currency: string): string {
  const exponent = ZERO_DECIMAL.has(currency) ? 0 : 2;
  if (exponent === 0) return `${currency} ${amountMinor}`;
  const major = Math.trunc(amountMinor / 100);
  const minor = String(amountMinor % 100).padStart(2, '0');
  return `${currency} ${major}.${minor}`;
}

const ZERO_DECIMAL = new Set(['JPY', 'KRW', 'CLP', 'ISK', 'VND', 'XAF', 'XOF', 'UGX']);
