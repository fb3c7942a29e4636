/**
 * One idempotency key, one payment (architecture.md §4): how a repeated `POST /v1/payments` is
 * compared with the payment in progress or stored under its key.
 */
import { AgentError } from '../common/agent-error.js';
import type { Payment } from '../store-forward/payment-store.js';
import type { PaymentRequest } from './payment-types.js';

/**
 * The answer to a request whose idempotency key is taken, or `undefined` for a new key:
 * - a payment in progress under the key (`running`): the same request waits for its answer;
 * - a payment found under the key (`find`: a draft or a stored payment): the same request gets it.
 * Either way `created: false`.
 *
 * @throws AgentError POS409 the key is taken with other parameters (details name the fields of a
 *   found payment); the local API answers 409.
 */
export async function answerRepeatedKey(
  idempotencyKey: string,
  request: PaymentRequest,
  running: { request: PaymentRequest; done: Promise<{ payment: Payment }> } | undefined,
  find: () => Payment | undefined,
): Promise<{ payment: Payment; created: false } | undefined> {
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
  const existing = find();
  if (existing === undefined) return undefined;
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

/**
 * True when two requests under one idempotency key ask for the same payment: amount, currency,
 * reference and offline mode (default `prefer_online`).
 */
export function sameRequest(a: PaymentRequest, b: PaymentRequest): boolean {
  return (
    a.amountMinor === b.amountMinor &&
    a.currency === b.currency &&
    a.reference === b.reference &&
    (a.offlineMode ?? 'prefer_online') === (b.offlineMode ?? 'prefer_online')
  );
}

/** Names of the parameters in which a retry differs from the stored payment. */
export function differingFields(payment: Payment, request: PaymentRequest): string[] {
  const fields: string[] = [];
  if (payment.amountMinor !== request.amountMinor) fields.push('amount');
  if (payment.currency !== request.currency) fields.push('currency');
  if ((payment.reference ?? undefined) !== request.reference) fields.push('reference');
  if (
    payment.offlineMode !== undefined &&
    payment.offlineMode !== (request.offlineMode ?? 'prefer_online')
  ) {
    fields.push('offline mode');
  }
  return fields;
}
