/**
 * Model-based property test: random sequences of create / nextPending / applyAcks /
 * releaseInFlight / retryDead against a real SQLite file, checked after every step against a
 * tiny model of the outbox, and at the end with checkProjection() and verifyChain().
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import type { AckResult, OutboxState, PaymentState } from '../../store-forward/model.js';
import { freshStore, newPayment, rawConnection, tokenFor } from './helpers.js';

const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
const UNKNOWN = 'k-unknown';

type Op =
  | { kind: 'create'; key: number; amount: number; card: number }
  | { kind: 'send'; keys: number[]; batch: number }
  | {
      kind: 'ack';
      items: {
        key: number;
        status: AckResult['status'];
        outcome: 'approved' | 'declined' | null;
      }[];
    }
  | { kind: 'release' }
  | { kind: 'retry' };

const keyIndex = fc.integer({ min: 0, max: KEYS.length - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('create' as const),
      key: keyIndex,
      amount: fc.integer({ min: 1, max: 2 }),
      card: fc.integer({ min: 1, max: 2 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('send' as const),
      keys: fc.uniqueArray(keyIndex, { maxLength: 4 }),
      batch: fc.nat(99),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('ack' as const),
      items: fc.array(
        fc.record({
          key: fc.integer({ min: 0, max: KEYS.length }), // KEYS.length → unknown key
          status: fc.constantFrom('accepted', 'duplicate', 'rejected') as fc.Arbitrary<
            AckResult['status']
          >,
          outcome: fc.constantFrom('approved', 'declined', null) as fc.Arbitrary<
            'approved' | 'declined' | null
          >,
        }),
        { maxLength: 4 },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'release' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'retry' as const }) },
);

interface ModelRecord {
  amount: number;
  card: number;
  outbox: OutboxState;
  payment: PaymentState;
}

function run(ops: Op[]): void {
  const fx = freshStore({ memory: true });
  const raw = rawConnection(fx.path);
  const model = new Map<string, ModelRecord>();
  try {
    for (const step of ops) {
      switch (step.kind) {
        case 'create': {
          const key = KEYS[step.key] as string;
          const input = newPayment(key, {
            amountMinor: step.amount * 100,
            card: { ...newPayment(key).card, token: tokenFor(step.card) },
          });
          const known = model.get(key);
          if (known === undefined) {
            expect(fx.store.createPayment(input).created).toBe(true);
            model.set(key, {
              amount: step.amount,
              card: step.card,
              outbox: 'pending',
              payment: 'stored',
            });
          } else if (known.amount === step.amount && known.card === step.card) {
            expect(fx.store.createPayment(input).created).toBe(false);
          } else {
            let code: string | undefined;
            try {
              fx.store.createPayment(input);
            } catch (error) {
              code = isAgentError(error) ? error.code : 'other';
            }
            expect(code).toBe('POS210');
          }
          break;
        }
        case 'send': {
          const keys = step.keys.map((i) => KEYS[i] as string).filter((k) => model.has(k));
          // In flight is the sync worker's memory (issue 9): a send hands out the pending records
          // after a cursor and writes nothing.
          const sent = fx.store.nextPending(100, step.batch).map((r) => r.key);
          for (const key of sent) expect((model.get(key) as ModelRecord).outbox).toBe('pending');
          for (const key of keys) expect(model.has(key)).toBe(true);
          break;
        }
        case 'ack': {
          const results: AckResult[] = step.items.map((item) => ({
            key: KEYS[item.key] ?? UNKNOWN,
            status: item.status,
            ...(item.outcome === null ? {} : { outcome: item.outcome }),
          }));
          const applied = fx.store.applyAcks(results);
          results.forEach((result, i) => {
            const record = model.get(result.key);
            let expected: string;
            if (record === undefined) expected = 'unknown_key';
            else if (record.outbox === 'acked') expected = 'already';
            else if (result.status === 'rejected') {
              expected = record.outbox === 'dead' ? 'already' : 'dead_lettered';
              record.outbox = 'dead';
            } else {
              expected = 'acked';
              record.outbox = 'acked';
              record.payment = result.outcome ?? 'confirmed';
            }
            expect(applied[i]?.action).toBe(expected);
          });
          break;
        }
        case 'release': {
          const inFlight = [...model.values()].filter((r) => r.outbox === 'in_flight');
          expect(fx.store.releaseInFlight()).toBe(inFlight.length);
          for (const record of inFlight) record.outbox = 'pending';
          break;
        }
        case 'retry': {
          const dead = [...model.values()].filter((r) => r.outbox === 'dead');
          expect(fx.store.retryDead()).toBe(dead.length);
          for (const record of dead) record.outbox = 'pending';
          break;
        }
      }
      // After every step: outbox and payment states per key, sealed data only while unacked.
      const rows = raw
        .prepare(
          `SELECT o.key, o.state AS outbox, p.state AS payment, (s.payment_id IS NOT NULL) AS sealed
           FROM outbox o JOIN payments p ON p.id = o.payment_id
           LEFT JOIN sealed_cards s ON s.payment_id = o.payment_id ORDER BY o.key`,
        )
        .all() as { key: string; outbox: OutboxState; payment: PaymentState; sealed: number }[];
      expect(rows).toEqual(
        [...model.entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([key, r]) => ({
            key,
            outbox: r.outbox,
            payment: r.payment,
            sealed: r.outbox === 'acked' ? 0 : 1,
          })),
      );
      const stats = fx.store.queueStats();
      const count = (s: OutboxState) => [...model.values()].filter((r) => r.outbox === s).length;
      expect(stats).toMatchObject({
        pending: count('pending'),
        inFlight: count('in_flight'),
        dead: count('dead'),
        acked: count('acked'),
        depth: count('pending') + count('in_flight'),
      });
      expect(fx.store.nextPending(100).map((r) => r.seq)).toEqual(
        [...fx.store.nextPending(100).map((r) => r.seq)].sort((x, y) => x - y),
      );
    }
    expect(fx.store.checkProjection()).toEqual({ ok: true, payments: model.size });
    expect(fx.store.verifyChain().ok).toBe(true);
  } finally {
    raw.close();
    fx.close();
  }
}

describe('PaymentStore under random operation sequences', () => {
  it('keeps the outbox, the projection and the hash chain consistent', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => run(ops)),
      { numRuns: 100 },
    );
  });
});
