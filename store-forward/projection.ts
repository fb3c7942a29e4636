/**
 * The payments projection as a pure fold over events (architecture.md §4: "Events are the source of
 * truth … the payments table is a projection that can be rebuilt from the events").
 *
 * `applyEvent` is used twice: by the write path, which appends an event and stores what
 * `applyEvent` returns, and by `checkProjection()`, which folds the stored events again and
 * compares. One function for both means the two cannot drift apart.
 */
import { isAgentError } from '../common/agent-error.js';
import { storeError } from './errors.js';
import { OFFLINE_MODES, type EventType, type OfflineMode, type Payment } from './model.js';
import { isRefusal, NO_PAYMENT, transition, type MachineState } from './payment-machine.js';
import { checkCard, checkCurrency, checkIdempotencyKey, checkInteger } from './validate.js';

/** An event as the fold sees it. */
export interface ProjectionEvent {
  type: EventType;
  /** ISO 8601 UTC. */
  at: string;
  /** The event's `data` object. */
  data: Record<string, unknown>;
}

/** The machine state of a projected payment (or {@link NO_PAYMENT}). */
export function machineStateOf(payment: Payment | undefined): MachineState {
  if (payment === undefined) return NO_PAYMENT;
  return { state: payment.state, approval: payment.approval ?? null };
}

/**
 * The payment after `event`: the state from the payment state machine (`transition`), the other
 * fields from the event's `data`:
 *
 * - `payment_started` creates the payment (`{ id, idempotencyKey, amountMinor, currency,
 *   reference?, offlineMode }`) in `awaiting_card`, without a card.
 * - `payment_stored` without a payment creates it already stored (the walking skeleton's path:
 *   `data` also holds `card` and `forwardingDeadlineAt`); on a payment with a card it is the
 *   offline approval (`forwardingDeadlineAt`).
 * - `card_read` sets `card`. `approved`/`cloud_approved` take `authCode`;
 *   `declined`/`cloud_declined` take `declineCode` and `reason`; `canceled`, `failed`, `reversed`
 *   take `reason` (a reversal after an issuer decline names the decline code in it).
 * - Fields the new state may not carry are cleared (mirror of the schema's CHECKs).
 *
 * @throws AgentError POS212 when the machine refuses the event in the payment's state;
 *   POS221 when a creating event's `data` is malformed.
 */
export function applyEvent(current: Payment | undefined, event: ProjectionEvent): Payment {
  const next = transition(machineStateOf(current), { type: event.type });
  if (isRefusal(next)) {
    const paymentId = current?.id;
    throw storeError(
      'POS212',
      `${paymentId === undefined ? 'a new payment' : `payment ${paymentId}`}: ${next.reason}`,
      { details: { ...next.details, ...(paymentId === undefined ? {} : { paymentId }) } },
    );
  }
  if (next.state === 'none') throw storeError('POS212', 'the machine returned no payment');
  const data = event.data;
  let payment: Payment;
  if (current === undefined) {
    payment = paymentFromCreatingEvent(event);
  } else {
    payment = { ...current, updatedAt: event.at };
  }
  payment.state = next.state;
  if (next.approval === null) delete payment.approval;
  else payment.approval = next.approval;
  if (current !== undefined) {
    switch (event.type) {
      case 'card_read':
        payment.card = readCard(data.card);
        break;
      case 'payment_stored':
        if (typeof data.forwardingDeadlineAt === 'string') {
          payment.forwardingDeadlineAt = data.forwardingDeadlineAt;
        }
        break;
      case 'approved':
      case 'cloud_approved':
        if (payment.state !== current.state || typeof data.authCode === 'string') {
          setOptional(payment, 'authCode', data.authCode ?? current.authCode);
        }
        break;
      case 'declined':
        setOptional(payment, 'declineCode', data.declineCode);
        setOptional(payment, 'reason', data.reason);
        break;
      case 'cloud_declined':
        if (payment.state === 'declined' && current.state !== 'declined') {
          setOptional(payment, 'declineCode', data.declineCode);
          setOptional(payment, 'reason', data.reason);
        } else if (payment.state === 'reversed' && current.state !== 'reversed') {
          const code = typeof data.declineCode === 'string' ? data.declineCode : 'unknown';
          payment.reason =
            typeof data.reason === 'string'
              ? data.reason
              : `the issuer declined the payment after it was approved offline (decline code ${code})`;
        }
        break;
      case 'canceled':
      case 'failed':
      case 'reversed':
        setOptional(payment, 'reason', data.reason);
        break;
      default:
        break;
    }
  }
  if (!['approved', 'confirmed', 'reversed'].includes(payment.state)) delete payment.authCode;
  if (payment.state !== 'declined') delete payment.declineCode;
  if (!['declined', 'reversed', 'canceled', 'failed'].includes(payment.state))
    delete payment.reason;
  return payment;
}

function setOptional(
  target: Payment,
  field: 'authCode' | 'declineCode' | 'reason',
  value: unknown,
) {
  if (typeof value === 'string') target[field] = value;
  else delete target[field];
}

function readCard(value: unknown) {
  try {
    return checkCard(value);
  } catch (cause) {
    if (!isAgentError(cause)) throw cause;
    throw storeError('POS221', `a card_read event's card is malformed: ${cause.reason}`, { cause });
  }
}

function paymentFromCreatingEvent(event: ProjectionEvent): Payment {
  const d = event.data;
  try {
    if (typeof d.id !== 'string' || !d.id.startsWith('pay_')) {
      throw storeError('POS213', 'id is not a payment id');
    }
    const payment: Payment = {
      id: d.id,
      // Replayed history: a key an older agent accepted must still replay (no `.void` rule).
      idempotencyKey: checkIdempotencyKey(d.idempotencyKey, 'idempotencyKey', { stored: true }),
      amountMinor: checkInteger('amountMinor', d.amountMinor, 1, Number.MAX_SAFE_INTEGER),
      currency: checkCurrency(d.currency),
      state: 'awaiting_card',
      createdAt: event.at,
      updatedAt: event.at,
    };
    if (event.type === 'payment_stored') payment.card = checkCard(d.card);
    if (typeof d.reference === 'string') payment.reference = d.reference;
    if (typeof d.forwardingDeadlineAt === 'string') {
      payment.forwardingDeadlineAt = d.forwardingDeadlineAt;
    }
    if (d.offlineMode !== undefined) {
      if (!(OFFLINE_MODES as readonly unknown[]).includes(d.offlineMode)) {
        throw storeError('POS213', `offlineMode must be one of ${OFFLINE_MODES.join(', ')}`);
      }
      payment.offlineMode = d.offlineMode as OfflineMode;
    }
    return payment;
  } catch (cause) {
    if (!isAgentError(cause)) throw cause;
    throw storeError('POS221', `a ${event.type} event's data is malformed: ${cause.reason}`, {
      cause,
    });
  }
}
