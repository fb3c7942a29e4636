/**
 * Issue 17, property test: random interleavings of payments (online and offline), cancels,
 * outages, lost acknowledgements (resends), drift checks and closes (forced or not), between the
 * real store (a SQLite file) and the cloud core's ledger logic (simulator/cloud-book.ts, the
 * class the MQTT shell wraps) — records are delivered in the sync worker's order, resent until
 * acknowledged.
 *
 * - Untampered, every closed batch ends `matched` and no exception is open.
 * - When the ledger drops or alters a payment record, an exception is always raised.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import type { AckResult, UplinkRecord } from '../../cloud-sync/schemas.js';
import { CloudBook } from '../../simulator/cloud-book.js';
import type { PaymentStore } from '../../store-forward/payment-store.js';
import { freshStore, newPayment, tokenFor } from './helpers.js';

const DEVICE = 'prop-lane-1';

type Op =
  | { kind: 'offline'; amount: number }
  | { kind: 'online'; amount: number }
  | { kind: 'cancel'; pick: number }
  | { kind: 'outage'; down: boolean }
  | { kind: 'deliver'; dropAcks: boolean }
  | { kind: 'check' }
  | { kind: 'close'; force: boolean };

// Amounts never end in 51 (the simulator's decline rule): a tampered record is always a charge.
const amount = fc.integer({ min: 1, max: 400 }).map((n) => n * 100 + 25);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('offline' as const), amount }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('online' as const), amount }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat({ max: 50 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('outage' as const), down: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('deliver' as const), dropAcks: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('check' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('close' as const), force: fc.boolean() }) },
);

interface World {
  store: PaymentStore;
  book: CloudBook;
  down: boolean;
  n: number;
  ids: string[];
}

function card(n: number) {
  return { ...newPayment('x').card, token: tokenFor(n) };
}

/** The sync worker's part: pending records in seq order to the cloud, its acks back. */
function deliver(w: World, dropAcks: boolean): void {
  if (w.down) return;
  const records = w.store.nextPending(100) as UplinkRecord[];
  if (records.length === 0) return;
  const results: AckResult[] = records.map((r) => w.book.applyRecord(DEVICE, r));
  if (!dropAcks) w.store.applyAcks(results as never);
}

function apply(w: World, o: Op): void {
  switch (o.kind) {
    case 'offline': {
      const key = `p-${++w.n}`;
      const { payment } = w.store.createPayment(
        newPayment(key, { amountMinor: o.amount, card: card(w.n) }),
      );
      w.ids.push(payment.id);
      return;
    }
    case 'online': {
      if (w.down) return apply(w, { kind: 'offline', amount: o.amount });
      const key = `p-${++w.n}`;
      const { payment } = w.store.startPayment({
        idempotencyKey: key,
        amountMinor: o.amount,
        currency: 'EUR',
        offlineMode: 'prefer_online',
      });
      w.store.recordCardRead(payment.id, card(w.n));
      w.store.recordStep(payment.id, 'authorization_requested');
      const answer = w.book.authorize(DEVICE, {
        key,
        payment: {
          id: payment.id,
          amountMinor: o.amount,
          currency: 'EUR',
          createdAt: payment.createdAt,
        },
        card: card(w.n),
      });
      w.store.recordOnlineOutcome(
        payment.id,
        answer.outcome === 'approved'
          ? { outcome: 'approved', authCode: answer.authCode }
          : { outcome: 'declined', declineCode: answer.declineCode },
      );
      w.ids.push(payment.id);
      return;
    }
    case 'cancel': {
      const id = w.ids[o.pick % Math.max(1, w.ids.length)];
      if (id === undefined) return;
      try {
        w.store.cancelPayment(id, 'customer changed their mind');
      } catch (error) {
        if (!isAgentError(error, 'POS212')) throw error;
      }
      return;
    }
    case 'outage':
      w.down = o.down;
      return;
    case 'deliver':
      deliver(w, o.dropAcks);
      return;
    case 'check':
      w.store.batches.queueCheck();
      return;
    case 'close':
      try {
        w.store.batches.close({ force: o.force });
      } catch (error) {
        if (!isAgentError(error, 'POS601')) throw error;
      }
      return;
  }
}

/** Link back, everything delivered, the day closed and answered. */
function endOfDay(w: World): void {
  w.down = false;
  for (let i = 0; i < 10 && w.store.queueStats().depth > 0; i++) deliver(w, false);
  w.store.batches.close();
  for (let i = 0; i < 10 && w.store.queueStats().depth > 0; i++) deliver(w, false);
  expect(w.store.queueStats().depth).toBe(0);
}

function world(): { w: World; close: () => void } {
  const fx = freshStore();
  const book = new CloudBook({ clock: fx.clock });
  return {
    w: { store: fx.store, book, down: false, n: 0, ids: [] },
    close: () => {
      book.close();
      fx.close();
    },
  };
}

describe('reconciliation property (issue 17)', () => {
  it('untampered: every interleaving ends with every batch matched', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const { w, close } = world();
        try {
          for (const o of ops) apply(w, o);
          endOfDay(w);
          const batches = w.store.batches.list(100).filter((b) => b.state === 'closed');
          expect(batches.map((b) => b.reconciliation)).toEqual(batches.map(() => 'matched'));
          expect(w.store.batches.exceptions()).toEqual([]);
          expect(w.store.verifyChain().ok).toBe(true);
          expect(w.store.checkProjection().ok).toBe(true);
        } finally {
          close();
        }
      }),
      { numRuns: 25 },
    );
  }, 120_000);

  it('a record dropped or altered by the ledger always raises an exception', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 20 }),
        fc.constantFrom('drop', 'alter'),
        amount,
        fc.boolean(),
        (ops, tamper, tamperedAmount, online) => {
          const { w, close } = world();
          try {
            for (const o of ops) apply(w, o);
            w.down = false;
            for (let i = 0; i < 10 && w.store.queueStats().depth > 0; i++) deliver(w, false);
            w.book.setFaults(tamper === 'drop' ? { loseRecords: 1 } : { alterAmountMinor: 100 });
            apply(w, { kind: online ? 'online' : 'offline', amount: tamperedAmount });
            endOfDay(w);
            const raised = w.store.batches.exceptions();
            expect(raised.length).toBeGreaterThan(0);
            expect(raised.map((e) => e.kind)).toContain(
              tamper === 'drop' ? 'missing_at_cloud' : 'amount_differs',
            );
          } finally {
            close();
          }
        },
      ),
      { numRuns: 20 },
    );
  }, 120_000);
});
