/**
 * The payments projection as a pure fold over events (DESIGN §4: "Events are the source of
 * truth … the payments table is a projection that can be rebuilt from the events").
 *
 * `applyEvent` is used twice: by the write path, which appends an event and stores what
 * `applyEvent` returns, and by `checkProjection()`, which folds the stored events again and
 * compares. One function for both means the two cannot drift apart.
 */
import { isAgentError } from '../common/agent-error.js';
import { storeError } from './errors.js';
import {
  EVENT_TARGET_STATE,
  PAYMENT_TRANSITIONS,
  type EventType,
  type Payment,
  type PaymentState,
} from './model.js';
import { checkCard, checkCurrency, checkIdempotencyKey, checkInteger } from './validate.js';

/** An event as the fold sees it. */
export interface ProjectionEvent {
  type: EventType;
  /** ISO 8601 UTC. */
  at: string;
  /** The event's `data` object. */
  data: Record<string, unknown>;
}

const LEGAL = new Set(PAYMENT_TRANSITIONS.map(([from, to]) => `${from}>${to}`));

/** True when `from → to` is an allowed payment state change ({@link PAYMENT_TRANSITIONS}). */
export function isLegalTransition(from: PaymentState, to: PaymentState): boolean {
  return from === to || LEGAL.has(`${from}>${to}`);
}

/**
 * The payment after `event`.
 *
 * - `payment_stored` creates the payment from its `data`
 *   (`{ id, idempotencyKey, amountMinor, currency, reference?, card, forwardingDeadlineAt }`)
 *   in state `stored`; `createdAt` = `updatedAt` = `event.at`.
 * - Every other event needs an existing payment, moves it to `EVENT_TARGET_STATE[type]` when that
 *   is not `null`, and sets `updatedAt` = `event.at`. `approved`/`cloud_approved` take
 *   `data.authCode`; `declined`/`cloud_declined` take `data.declineCode` and `data.reason`;
 *   outcome fields the new state may not carry are cleared (mirror of the schema's CHECKs).
 *
 * @throws AgentError POS212 when the state change is not in {@link PAYMENT_TRANSITIONS}, or the
 *   event cannot start/continue a payment; POS221 when a `payment_stored` `data` is malformed.
 */
export function applyEvent(current: Payment | undefined, event: ProjectionEvent): Payment {
  if (event.type === 'payment_stored') {
    if (current !== undefined) {
      throw storeError(
        'POS212',
        `payment ${current.id} already exists; a second payment_stored event cannot create it again`,
      );
    }
    return paymentFromStoredEvent(event);
  }
  if (current === undefined) {
    throw storeError(
      'POS212',
      `a ${event.type} event needs an existing payment, and this version creates payments only ` +
        'with payment_stored; fix: upgrade the agent that reads this database',
    );
  }
  const target = EVENT_TARGET_STATE[event.type];
  const next: Payment = { ...current, updatedAt: event.at };
  if (target !== null) {
    if (!isLegalTransition(current.state, target)) {
      throw storeError(
        'POS212',
        `payment ${current.id} cannot go from ${current.state} to ${target} (${event.type}); ` +
          'fix: none needed for the payment itself — the record is kept for a field tech to inspect with `pos-agent queue`',
        { details: { paymentId: current.id, from: current.state, to: target, event: event.type } },
      );
    }
    next.state = target;
  }
  const data = event.data;
  if (event.type === 'approved' || event.type === 'cloud_approved') {
    setOptional(next, 'authCode', data.authCode);
  }
  if (event.type === 'declined' || event.type === 'cloud_declined') {
    setOptional(next, 'declineCode', data.declineCode);
    setOptional(next, 'reason', data.reason);
  }
  if (!['approved', 'confirmed', 'reversed'].includes(next.state)) delete next.authCode;
  if (next.state !== 'declined') {
    delete next.declineCode;
    delete next.reason;
  }
  return next;
}

function setOptional(
  target: Payment,
  field: 'authCode' | 'declineCode' | 'reason',
  value: unknown,
) {
  if (typeof value === 'string') target[field] = value;
  else delete target[field];
}

function paymentFromStoredEvent(event: ProjectionEvent): Payment {
  const d = event.data;
  try {
    if (typeof d.id !== 'string' || !d.id.startsWith('pay_')) {
      throw storeError('POS213', 'id is not a payment id');
    }
    const payment: Payment = {
      id: d.id,
      idempotencyKey: checkIdempotencyKey(d.idempotencyKey),
      amountMinor: checkInteger('amountMinor', d.amountMinor, 1, Number.MAX_SAFE_INTEGER),
      currency: checkCurrency(d.currency),
      state: 'stored',
      card: checkCard(d.card),
      createdAt: event.at,
      updatedAt: event.at,
    };
    if (typeof d.reference === 'string') payment.reference = d.reference;
    if (typeof d.forwardingDeadlineAt === 'string') {
      payment.forwardingDeadlineAt = d.forwardingDeadlineAt;
    }
    return payment;
  } catch (cause) {
    if (!isAgentError(cause)) throw cause;
    throw storeError('POS221', `a payment_stored event's data is malformed: ${cause.reason}`, {
      cause,
    });
  }
}
