/**
 * The payment state machine (architecture.md §4, issue 3): a pure function `(state, event) → state | error`
 * over discriminated unions. No I/O, no clock: the store folds its events through it, the
 * property tests drive it with random event sequences, and `pos-agent verify` rebuilds the
 * `payments` projection with it.
 *
 * ```
 *                 payment_started
 *   (none) ─────────────────────────▶ awaiting_card ──card_read──▶ card_read ──pin_requested──▶ awaiting_pin
 *     │                                   │  canceled/failed           │  │                        │
 *     │ payment_stored (legacy create)    ▼                            │  └─authorization_requested─┤
 *     ▼                             canceled | failed                  ▼                           ▼
 *   stored ◀──payment_stored (offline approval)── card_read | authorizing ──approved──▶ approved (online)
 *     │ forwarded                                       └──declined (local or issuer)──▶ declined
 *     ▼
 *   forwarded ──cloud_approved──▶ approved      ──cloud_declined──▶ reversed (offline approval
 *                                                                   the issuer declined) or declined
 *                                                                   (legacy: the cloud decided)
 * stored | forwarded | approved | confirmed ──canceled──▶ canceled (a void record goes to the cloud)
 * ```
 *
 * `approval` travels with the state: `online` once the cloud approved during the payment,
 * `offline` once the agent approved it under the offline policy, `null` before either (and for
 * payments stored by the walking-skeleton path, where the cloud decides later).
 *
 * `dead_lettered` and `requeued` record something about the outbox record and leave the state
 * alone; so does `confirmed` on a payment whose outcome is already final (the acknowledgement of
 * a void record, or of the record of a canceled payment).
 */
import { AgentError } from '../common/agent-error.js';
import { storeError } from './errors.js';
import {
  EVENT_TYPES,
  FINAL_STATES,
  IN_PROGRESS_STATES,
  PAYMENT_STATES,
  type Approval,
  type EventType,
  type PaymentState,
} from './model.js';

export { FINAL_STATES, IN_PROGRESS_STATES };

/** The machine's state: nothing yet, or a payment state with how it was approved. */
export type MachineState =
  { readonly state: 'none' } | { readonly state: PaymentState; readonly approval: Approval | null };

/** An event as the machine sees it: only its type matters for the state (data is the fold's). */
export type MachineEvent = { readonly [K in EventType]: { readonly type: K } }[EventType];

/** The start of every fold. */
export const NO_PAYMENT: MachineState = { state: 'none' };

const S = (state: PaymentState, approval: Approval | null): MachineState => ({ state, approval });

/**
 * The next state after `event`, or an `AgentError` POS212 naming the state, the event and what is
 * allowed from that state. Never throws.
 *
 * @param current — the state before; {@link NO_PAYMENT} for a payment that does not exist yet.
 * @param event — the event; its `type` is one of the store's `EVENT_TYPES`.
 */
export function transition(current: MachineState, event: MachineEvent): MachineState | AgentError {
  const next = step(current, event);
  if (next !== undefined) return next;
  const allowed = allowedEvents(current);
  return storeError(
    'POS212',
    `a ${event.type} event is not allowed in state ${current.state}; allowed there: ` +
      `${allowed.length === 0 ? 'nothing (final)' : allowed.join(', ')}; fix: none for the ` +
      'payment itself — the event was refused and nothing was written',
    { details: { from: current.state, event: event.type } },
  );
}

function step(current: MachineState, event: MachineEvent): MachineState | undefined {
  if (current.state === 'none') {
    if (event.type === 'payment_started') return S('awaiting_card', null);
    // The walking skeleton's path: a payment created already stored, the cloud decides later.
    if (event.type === 'payment_stored') return S('stored', null);
    return undefined;
  }
  const { state, approval } = current;
  switch (event.type) {
    case 'payment_started':
      return undefined;
    case 'card_read':
      return state === 'awaiting_card' ? S('card_read', null) : undefined;
    case 'pin_requested':
      return state === 'card_read' ? S('awaiting_pin', null) : undefined;
    case 'authorization_requested':
      return state === 'card_read' || state === 'awaiting_pin' ? S('authorizing', null) : undefined;
    case 'approved':
      return state === 'authorizing' ? S('approved', 'online') : undefined;
    case 'declined':
      return state === 'card_read' || state === 'awaiting_pin' || state === 'authorizing'
        ? S('declined', approval)
        : undefined;
    case 'payment_stored':
      return state === 'card_read' || state === 'authorizing' ? S('stored', 'offline') : undefined;
    case 'forwarded':
      return state === 'stored' ? S('forwarded', approval) : undefined;
    case 'cloud_approved':
      if (state === 'stored' || state === 'forwarded' || state === 'confirmed') {
        return S('approved', approval);
      }
      // Already final: the acknowledgement of an online payment's record, or of a canceled one.
      if (state === 'approved' || state === 'canceled') return current;
      return undefined;
    case 'cloud_declined':
      if (state === 'stored' || state === 'forwarded' || state === 'confirmed') {
        // An offline approval the issuer declined afterwards is reversed: the store took the
        // goods, the money never comes (architecture.md §4); a payment the cloud was to decide is declined.
        return approval === 'offline' ? S('reversed', approval) : S('declined', approval);
      }
      if (state === 'approved') return S('reversed', approval);
      if (state === 'declined' || state === 'canceled') return current;
      return undefined;
    case 'confirmed':
      if (state === 'stored' || state === 'forwarded') return S('confirmed', approval);
      if (
        state === 'approved' ||
        state === 'declined' ||
        state === 'canceled' ||
        state === 'confirmed' ||
        state === 'reversed'
      ) {
        return current;
      }
      return undefined;
    case 'dead_lettered':
    case 'requeued':
      return current;
    case 'canceled':
      return state === 'awaiting_card' ||
        state === 'card_read' ||
        state === 'awaiting_pin' ||
        state === 'stored' ||
        state === 'forwarded' ||
        state === 'approved' ||
        state === 'confirmed'
        ? S('canceled', approval)
        : undefined;
    case 'failed':
      return (IN_PROGRESS_STATES as readonly string[]).includes(state)
        ? S('failed', approval)
        : undefined;
    case 'reversed':
      return state === 'approved' ||
        state === 'stored' ||
        state === 'forwarded' ||
        state === 'confirmed'
        ? S('reversed', approval)
        : undefined;
  }
}

/** The event types {@link transition} accepts in `current` (for messages and tests). */
export function allowedEvents(current: MachineState): EventType[] {
  return EVENT_TYPES.filter((type) => step(current, { type } as MachineEvent) !== undefined);
}

/**
 * Every state change `[from, to]` (from ≠ to) the machine can make between existing payments —
 * what migration 2's `payment_transitions` rows must hold; `test/store-forward/schema.test.ts`
 * proves the two agree.
 */
export function machineTransitions(): [PaymentState, PaymentState][] {
  const pairs = new Set<string>();
  const states: MachineState[] = [];
  for (const state of PAYMENT_STATES) {
    for (const approval of ['online', 'offline', null] as const) states.push(S(state, approval));
  }
  for (const from of states) {
    for (const type of EVENT_TYPES) {
      const to = step(from, { type } as MachineEvent);
      if (to !== undefined && to.state !== 'none' && to.state !== from.state) {
        pairs.add(`${from.state}>${to.state}`);
      }
    }
  }
  return [...pairs].sort().map((p) => p.split('>') as [PaymentState, PaymentState]);
}

/** True for a value {@link transition} returned as a refusal. */
export function isRefusal(value: MachineState | AgentError): value is AgentError {
  return value instanceof AgentError;
}

/**
 * Allowed payment state changes `[from, to]`, sorted: exactly what the machine can do (derived by
 * {@link machineTransitions}, never listed by hand). The `payment_transitions` table that the
 * `payments_legal_transition` trigger enforces holds migration 1's rows plus migration 2's, as
 * literal SQL that never changes; `test/store-forward/schema.test.ts` proves table and machine
 * agree.
 */
export const PAYMENT_TRANSITIONS: readonly (readonly [PaymentState, PaymentState])[] =
  machineTransitions();
