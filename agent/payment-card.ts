/**
 * What of the card boundary's `CardToken` goes where (architecture.md §2, §5): the store keeps the
 * token and what may be shown, plus the sealed (or SRED) data until the cloud has authorized; the
 * online authorization request carries the same card fields, the sealed data and the PIN block.
 */
import type { AuthRequest } from '../cloud-sync/schemas.js';
import type { CardToken } from '../drivers/boundary/card-token.js';
import type { EncryptedPinBlock } from '../drivers/pinpad/pin-pad.js';
import type { NewPayment, Payment } from '../store-forward/payment-store.js';

/** The card fields the store records for `card` (no sealed data, no PAN: there is none). */
export function storeCardOf(card: CardToken): NewPayment['card'] {
  return {
    token: card.token,
    brand: card.brand,
    first6: card.first6,
    last4: card.last4,
    expiryMonth: card.expiryMonth,
    expiryYear: card.expiryYear,
    entryMode: card.entryMode,
    ...(card.cardholderName !== undefined ? { cardholderName: card.cardholderName } : {}),
  };
}

/** The sealed card data (or the SRED reader's own) the cloud needs to authorize `card`. */
export function secretOf(card: CardToken): { sealed?: string; sred?: NewPayment['sred'] } {
  return {
    ...(card.sealed !== undefined ? { sealed: card.sealed } : {}),
    ...(card.sred !== undefined ? { sred: card.sred } : {}),
  };
}

/**
 * The `up/auth` request (architecture.md §5) for `payment` with `card` and, for an online-PIN card,
 * its encrypted PIN block; keyed by the payment's idempotency key, so the cloud dedupes.
 */
export function authRequestFor(
  payment: Payment,
  card: CardToken,
  pinBlock: EncryptedPinBlock | undefined,
): AuthRequest {
  return {
    key: payment.idempotencyKey,
    payment: {
      id: payment.id,
      amountMinor: payment.amountMinor,
      currency: payment.currency,
      createdAt: payment.createdAt,
      ...(payment.reference !== undefined ? { reference: payment.reference } : {}),
    },
    // The store's card fields without the cardholder name: the wire's auth request has none.
    card: withoutName(storeCardOf(card)),
    ...secretOf(card),
    ...(pinBlock !== undefined ? { pinBlock } : {}),
  };
}

/** The card fields without the cardholder name. */
function withoutName(card: NewPayment['card']): Omit<NewPayment['card'], 'cardholderName'> {
  const { cardholderName: _name, ...rest } = card;
  return rest;
}
