/**
 * The rules every payment command shares: one idempotency key, one payment (architecture.md §4:
 * the same key with the same parameters returns the original, with other parameters it is an
 * error), a purged payment's key stays taken, and an unknown id is named.
 */
import { storeError } from './errors.js';
import type { StoreKernel } from './kernel.js';
import type { NewPayment, Payment } from './model.js';
import { toPayment, type PaymentRow } from './rows.js';
import type { PaymentStart } from './validate.js';

/**
 * Refuses a key that belonged to a payment retention purged (in the caller's transaction).
 *
 * @throws AgentError POS210 naming the purged payment and when it was purged.
 */
export function refusePurgedKey(k: StoreKernel, key: string): void {
  const purged = k.stmts.purgedByKey.get(key) as { id: string; purged_at: string } | undefined;
  if (purged === undefined) return;
  throw storeError(
    'POS210',
    `Idempotency-Key ${JSON.stringify(key)} was already used for payment ${purged.id}, which was ` +
      `settled and purged by retention at ${purged.purged_at}; fix: send a new Idempotency-Key for a new payment`,
    { details: { field: 'idempotencyKey', paymentId: purged.id, idempotencyKey: key } },
  );
}

/**
 * The id of the stored payment `paymentId` (in the caller's transaction).
 *
 * @throws AgentError POS211 when there is none.
 */
export function requirePaymentId(k: StoreKernel, paymentId: string): string {
  return requireRow(k, paymentId).id;
}

/**
 * The stored payment `paymentId` as its row says (in the caller's transaction): one read, for a
 * command that changes it (`StoreKernel.record` takes it instead of reading it again).
 *
 * @throws AgentError POS211 when there is none.
 */
export function requirePayment(k: StoreKernel, paymentId: string): Payment {
  return toPayment(requireRow(k, paymentId));
}

function requireRow(k: StoreKernel, paymentId: string): PaymentRow {
  const row = k.stmts.paymentById.get(paymentId) as PaymentRow | undefined;
  if (row === undefined) {
    throw storeError(
      'POS211',
      `payment ${JSON.stringify(String(paymentId).slice(0, 64))} not found; fix: use the id returned by POST /v1/payments`,
      { details: { paymentId } },
    );
  }
  return row;
}

/**
 * Refuses a repeated idempotency key whose parameters differ from the original payment's:
 * amount, currency, reference and, when `input` has a card (`createPayment`), the card token.
 *
 * @throws AgentError POS210 naming the first differing field (never card values); the local API
 *   answers 409.
 */
export function assertSameParameters(
  original: Payment,
  input: PaymentStart & { card?: NewPayment['card'] },
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
  if (input.card !== undefined && original.card?.token !== input.card.token) {
    conflict('card', 'another card was presented: the card token differs');
  }
}
