/**
 * The payment state machine (issue 3, Done when #1): random event sequences through the pure
 * `transition`, and random operation sequences through a real store whose projection must
 * always equal the fold of its events.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AgentError, isAgentError } from '../../common/agent-error.js';
import { EVENT_TYPES, PAYMENT_STATES } from '../../store-forward/model.js';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';
import {
  allowedEvents,
  isRefusal,
  machineTransitions,
  NO_PAYMENT,
  PAYMENT_TRANSITIONS,
  transition,
  type MachineState,
} from '../../store-forward/payment-machine.js';
import { applyEvent } from '../../store-forward/projection.js';
import { freshStore, rawConnection, tokenFor } from './helpers.js';

describe('transition (pure)', () => {
  it('reaches only valid states and refuses illegal events with POS212', () => {
    // Every event in every reachable state, walked breadth-first from "no payment": each random
    // event sequence is a path through exactly these transitions, so this checks all of them
    // (the random walk of 2000 sequences it replaces sampled them).
    const key = (m: MachineState): string => JSON.stringify(m);
    const seen = new Map<string, MachineState>([[key(NO_PAYMENT), NO_PAYMENT]]);
    const queue: MachineState[] = [NO_PAYMENT];
    let checked = 0;
    for (let state = queue.shift(); state !== undefined; state = queue.shift()) {
      const allowed = allowedEvents(state);
      for (const type of EVENT_TYPES) {
        const event = { type };
        const next = transition(state, event);
        checked++;
        if (isRefusal(next)) {
          expect(next).toBeInstanceOf(AgentError);
          expect(next.code).toBe('POS212');
          expect(next.reason).toContain(event.type);
          expect(allowed).not.toContain(event.type);
          continue; // a refused event changes nothing
        }
        expect(allowed).toContain(event.type);
        expect(next.state).not.toBe('none');
        expect(PAYMENT_STATES).toContain(next.state);
        if (next.state !== 'none') {
          // approval is set exactly by the events that approve, and kept afterwards
          if (next.state === 'approved' && state.state === 'authorizing') {
            expect(next.approval).toBe('online');
          }
          if (event.type === 'payment_stored' && state.state !== 'none') {
            expect(next.approval).toBe('offline');
          }
        }
        if (!seen.has(key(next))) {
          seen.set(key(next), next);
          queue.push(next);
        }
      }
    }
    // Every state is reached, and each reached state met every event.
    expect(new Set([...seen.values()].map((m) => m.state))).toEqual(
      new Set(['none', ...PAYMENT_STATES]),
    );
    expect(checked).toBe(seen.size * EVENT_TYPES.length);
  });

  it('never changes a final outcome into an approval (no second charge by a late event)', () => {
    // Every (final state, approval, event) is checked: refused with POS212, or kept unchanged
    // (an acknowledgement of the outcome). Counting both outcomes proves the loop checked each
    // case and that both kinds occur; a case that asserted nothing used to pass.
    const finals = ['declined', 'reversed', 'canceled', 'failed'] as const;
    const approvals = ['online', 'offline', null] as const;
    let refused = 0;
    let kept = 0;
    for (const from of finals) {
      for (const approval of approvals) {
        for (const type of EVENT_TYPES) {
          const next = transition({ state: from, approval }, { type });
          if (isRefusal(next)) {
            expect(next.code).toBe('POS212');
            refused++;
          } else {
            expect(next).toEqual({ state: from, approval });
            kept++;
          }
        }
      }
    }
    expect(refused + kept).toBe(finals.length * approvals.length * EVENT_TYPES.length);
    expect(refused).toBeGreaterThan(0);
    expect(kept).toBeGreaterThan(0);
  });

  it('is mirrored exactly by PAYMENT_TRANSITIONS and the payment_transitions table', () => {
    const fromMachine = machineTransitions().map(([a, b]) => `${a}>${b}`);
    expect(fromMachine).toEqual(PAYMENT_TRANSITIONS.map(([a, b]) => `${a}>${b}`).sort());
    const s = freshStore();
    try {
      const raw = rawConnection(s.path);
      const rows = raw.prepare('SELECT from_state, to_state FROM payment_transitions').all() as {
        from_state: string;
        to_state: string;
      }[];
      raw.close();
      expect(rows.map((r) => `${r.from_state}>${r.to_state}`).sort()).toEqual(fromMachine);
    } finally {
      s.close();
    }
  });
});

const POLICY: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 5000, USD: 5000 },
  totalLimitMinor: { EUR: 8000, USD: 8000 },
  maxCount: 3,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

type Op =
  | { kind: 'start'; key: number; amount: number; currency: 'EUR' | 'USD' | 'JPY' }
  | { kind: 'card'; p: number }
  | { kind: 'step'; p: number; type: 'pin_requested' | 'authorization_requested' | 'failed' }
  | { kind: 'online'; p: number; approved: boolean }
  | { kind: 'offline'; p: number; ambiguous: boolean }
  | { kind: 'decline'; p: number; voidRecord: boolean }
  | { kind: 'cancel'; p: number }
  | { kind: 'send' }
  | { kind: 'ack'; outcome: 'approved' | 'declined' | null }
  | { kind: 'recover' };

const p = fc.integer({ min: 0, max: 5 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('start' as const),
    key: fc.integer({ min: 0, max: 5 }),
    amount: fc.constantFrom(100, 3000, 6000),
    currency: fc.constantFrom('EUR' as const, 'USD' as const, 'JPY' as const),
  }),
  fc.record({ kind: fc.constant('card' as const), p }),
  fc.record({
    kind: fc.constant('step' as const),
    p,
    type: fc.constantFrom(
      'pin_requested' as const,
      'authorization_requested' as const,
      'failed' as const,
    ),
  }),
  fc.record({ kind: fc.constant('online' as const), p, approved: fc.boolean() }),
  fc.record({ kind: fc.constant('offline' as const), p, ambiguous: fc.boolean() }),
  fc.record({ kind: fc.constant('decline' as const), p, voidRecord: fc.boolean() }),
  fc.record({ kind: fc.constant('cancel' as const), p }),
  fc.record({ kind: fc.constant('send' as const) }),
  fc.record({
    kind: fc.constant('ack' as const),
    outcome: fc.constantFrom('approved' as const, 'declined' as const, null),
  }),
  fc.record({ kind: fc.constant('recover' as const) }),
);

/** The states of a payment before its decision: held in memory, nothing written. */
const DRAFT_STATES = ['awaiting_card', 'card_read', 'awaiting_pin'];

describe('PaymentStore under random payment flows', () => {
  it('keeps the projection equal to the fold of the events and the chain intact', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
        const s = freshStore({ memory: true });
        const ids: string[] = [];
        try {
          for (const op of ops) {
            const id = 'p' in op ? ids[op.p % Math.max(ids.length, 1)] : undefined;
            const eventsBefore = s.store.verifyChain();
            try {
              switch (op.kind) {
                case 'start': {
                  const { payment, created } = s.store.startPayment({
                    idempotencyKey: `key-${op.key}`,
                    amountMinor: op.amount,
                    currency: op.currency,
                    offlineMode: 'prefer_online',
                  });
                  if (created) ids.push(payment.id);
                  break;
                }
                case 'card':
                  if (id !== undefined) {
                    s.store.recordCardRead(id, {
                      token: tokenFor(ids.indexOf(id) + 1),
                      brand: 'visa',
                      first6: '411111',
                      last4: '1111',
                      expiryMonth: 12,
                      expiryYear: 2030,
                      entryMode: 'chip',
                    });
                  }
                  break;
                case 'step':
                  if (id !== undefined) s.store.recordStep(id, op.type, { reason: 'test' });
                  break;
                case 'online':
                  if (id !== undefined) {
                    s.store.recordOnlineOutcome(
                      id,
                      op.approved
                        ? { outcome: 'approved', authCode: 'A1B2C3' }
                        : { outcome: 'declined', declineCode: '05' },
                    );
                  }
                  break;
                case 'offline':
                  if (id !== undefined)
                    s.store.storeOffline(id, POLICY, { ambiguous: op.ambiguous });
                  break;
                case 'decline':
                  if (id !== undefined) {
                    s.store.declineLocally(id, 'offline_not_allowed', 'test', {
                      voidRecord: op.voidRecord,
                    });
                  }
                  break;
                case 'cancel':
                  if (id !== undefined) s.store.cancelPayment(id, 'test');
                  break;
                case 'send':
                  // In flight is the sync worker's memory: sending writes nothing.
                  s.store.nextPending(10);
                  break;
                case 'ack': {
                  const keys = s.store.nextPending(10).map((r) => r.key);
                  s.store.applyAcks(
                    keys.map((key) => ({
                      key,
                      status: 'accepted' as const,
                      ...(op.outcome === null ? {} : { outcome: op.outcome }),
                      ...(op.outcome === 'declined' ? { declineCode: '05' } : {}),
                    })),
                  );
                  break;
                }
                case 'recover':
                  s.store.recoverInterrupted();
                  break;
              }
            } catch (error) {
              // Refused operations are coded (illegal state change, or a key reused with other
              // parameters) and change nothing.
              expect(
                isAgentError(error, 'POS212') || isAgentError(error, 'POS210'),
                String(error),
              ).toBe(true);
              expect(s.store.verifyChain()).toEqual(eventsBefore);
            }
            // The projection equals the fold of the events, after every step. A payment before
            // its decision is a draft in memory (issue 9 §2): no event is written yet.
            for (const paymentId of ids) {
              const events = s.store.listEvents(paymentId);
              if (events.length === 0) {
                expect(DRAFT_STATES).toContain(s.store.getPayment(paymentId)?.state);
                continue;
              }
              const folded = events.reduce<ReturnType<typeof applyEvent> | undefined>(
                (acc, e) => applyEvent(acc, { type: e.type, at: e.at, data: e.data }),
                undefined,
              );
              expect(s.store.getPayment(paymentId)).toEqual(folded);
            }
            // Offline exposure stays within the caps.
            const exposure = s.store.offlineExposure();
            expect(exposure.count).toBeLessThanOrEqual(POLICY.maxCount);
            for (const [currency, e] of Object.entries(exposure.byCurrency)) {
              expect(e.amountMinor).toBeLessThanOrEqual(POLICY.totalLimitMinor[currency] ?? 0);
            }
          }
          expect(s.store.checkProjection()).toMatchObject({ ok: true });
          expect(s.store.verifyChain()).toMatchObject({ ok: true });
        } finally {
          s.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
