/**
 * Payments in progress before their decision, held in memory (issue 9 §2): a payment is a
 * draft from `payment_started` until the agent decides (offline approval, authorization
 * request, decline, failure, cancel), and nothing of it is on the disk before that decision.
 *
 * ```
 *  startPayment ─► draft: [payment_started]                 awaiting_card
 *  card read    ─► draft: [payment_started, card_read]      card_read   (+ sealed card data)
 *  PIN asked    ─► draft: [… , pin_requested]               awaiting_pin
 *  decision     ─► ONE transaction: the draft's events + the decision's event (payment-lifecycle.ts)
 * ```
 *
 * Why it is safe: nobody has been told anything about a draft (the POS app has no answer, the
 * cloud no request), so a kill -9 or a power cut that loses it loses nothing that was promised;
 * the POS app's retry with the same idempotency key starts the payment again. A draft's
 * `Payment` is folded with the projection's own `applyEvent`, so it reads exactly like the row it
 * becomes, and its events are written unchanged (their own timestamps) when it is decided.
 */
import { canonicalJson } from './hash-chain.js';
import type { Payment, SredData } from './model.js';
import { applyEvent, type ProjectionEvent } from './projection.js';

/**
 * An event of a draft: `data` in canonical form (what `JSON.parse(text)` gives) and `text`, its
 * canonical JSON (`canonicalJson(data)`), which the chain stores and hashes as it is
 * (`StoreKernel.recordNew` takes it instead of encoding the data again).
 */
export interface DraftEvent extends ProjectionEvent {
  readonly text: string;
}

/** What the cloud needs to authorize the card (architecture.md §2 step 4), kept with its draft. */
export interface DraftSecret {
  /** base64 of the sealed card data (`nacl.box` to the vault key). */
  sealed?: string | undefined;
  /** The SRED reader's own ciphertext and KSN. */
  sred?: SredData | undefined;
}

/** One payment in progress, not yet written. */
export interface Draft {
  /** The payment as its events make it (state `awaiting_card`, `card_read` or `awaiting_pin`). */
  readonly payment: Payment;
  /** Its events in order, `payment_started` first, `data` in canonical form with its text. */
  readonly events: readonly DraftEvent[];
  /** The card's sealed or SRED data once read; written only if the decision keeps it. */
  readonly secret: DraftSecret | undefined;
  /** ISO 8601 UTC of the card read (the sealed row's `created_at`); undefined before it. */
  readonly cardReadAt: string | undefined;
}

/**
 * The drafts of one store, by payment id and by idempotency key (one key, one payment: a key
 * held by a draft is also refused to a new stored payment, see payment-lifecycle.ts).
 */
export class PaymentDrafts {
  readonly #byId = new Map<string, Draft>();
  readonly #idByKey = new Map<string, string>();

  /**
   * Starts a draft from its `payment_started` event.
   *
   * @throws AgentError POS212/POS221 the event does not create a payment (see `applyEvent`).
   */
  start(event: ProjectionEvent): Payment {
    const canonical = canonicalEvent(event);
    const payment = applyEvent(undefined, canonical);
    this.#byId.set(payment.id, {
      payment,
      events: [canonical],
      secret: undefined,
      cardReadAt: undefined,
    });
    this.#idByKey.set(payment.idempotencyKey, payment.id);
    return payment;
  }

  /**
   * Adds an event (`card_read` with the card's `secret`, or `pin_requested`) to the draft `id`.
   *
   * @throws AgentError POS212 the state machine refuses the event; nothing changes then.
   */
  step(id: string, event: ProjectionEvent, secret?: DraftSecret): Payment {
    const draft = this.#byId.get(id);
    if (draft === undefined) throw new Error(`no draft ${id}`);
    const canonical = canonicalEvent(event);
    const payment = applyEvent(draft.payment, canonical);
    const readNow = event.type === 'card_read';
    this.#byId.set(id, {
      payment,
      events: [...draft.events, canonical],
      secret: readNow ? secret : draft.secret,
      cardReadAt: readNow ? event.at : draft.cardReadAt,
    });
    return payment;
  }

  /** The draft of payment `id`, or undefined (never started, or already written). */
  get(id: string): Draft | undefined {
    return this.#byId.get(id);
  }

  /** The draft holding this idempotency key, or undefined. */
  byKey(idempotencyKey: string): Draft | undefined {
    const id = this.#idByKey.get(idempotencyKey);
    return id === undefined ? undefined : this.#byId.get(id);
  }

  /** Every draft's payment (a handful at most: one per PIN pad). */
  payments(): Payment[] {
    return [...this.#byId.values()].map((draft) => draft.payment);
  }

  /** Forgets the draft `id` (written, or its flow ended without a durable outcome). */
  delete(id: string): void {
    const draft = this.#byId.get(id);
    if (draft === undefined) return;
    this.#byId.delete(id);
    this.#idByKey.delete(draft.payment.idempotencyKey);
  }
}

/**
 * The event with `data` as the chain will hold it (undefined fields dropped, keys sorted), and
 * that data's canonical text.
 */
function canonicalEvent(event: ProjectionEvent): DraftEvent {
  const text = canonicalJson(event.data);
  const data = JSON.parse(text) as Record<string, unknown>;
  return { type: event.type, at: event.at, data, text };
}
