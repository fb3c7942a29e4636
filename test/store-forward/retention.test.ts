/**
 * Retention (issue 3 §8) on a real SQLite file with an injected clock: settled payments older
 * than the cut-off are purged, everything else is kept, the hash chain and the projection still
 * verify, and the purged card data is gone from the database file and its WAL.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { isoAt } from '../../common/clock.js';
import type { NewPayment } from '../../store-forward/model.js';
import type { PaymentStore } from '../../store-forward/payment-store.js';
import { startRetention } from '../../store-forward/retention.js';
import { FakeClock } from '../helpers/fake-clock.js';
import {
  freshStore,
  storeClock,
  newPayment,
  rawConnection,
  sealedBlob,
  tokenFor,
} from './helpers.js';

const DAY = 86_400_000;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A card with its own token and last 4, so its bytes can be looked for in the files. */
function cardFor(seed: number): NewPayment['card'] {
  return {
    token: tokenFor(seed),
    brand: 'visa',
    first6: '411111',
    last4: String(5000 + seed),
    expiryMonth: 12,
    expiryYear: 2030,
    entryMode: 'chip',
  };
}

function ack(store: PaymentStore, key: string, status: 'accepted' | 'rejected' = 'accepted') {
  const [applied] = store.applyAcks([
    status === 'accepted' ? { key, status } : { key, status, code: 'E1', reason: 'bad record' },
  ]);
  expect(applied?.action).toBe(status === 'accepted' ? 'acked' : 'dead_lettered');
}

/** An online approval the cloud acknowledged. */
function onlineApproved(store: PaymentStore, key: string, seed: number) {
  const { payment } = store.startPayment({
    idempotencyKey: key,
    amountMinor: 700 + seed,
    currency: 'EUR',
    offlineMode: 'prefer_online',
  });
  store.recordCardRead(payment.id, cardFor(seed), { sealed: sealedBlob(seed) });
  store.recordStep(payment.id, 'authorization_requested');
  store.recordOnlineOutcome(payment.id, { outcome: 'approved', authCode: 'A1B2' });
  ack(store, key);
  return payment.id;
}

/** A payment stored by the store-and-forward path, not yet sent. */
function stored(store: PaymentStore, key: string, seed: number) {
  return store.createPayment(
    newPayment(key, { card: cardFor(seed), sealed: sealedBlob(seed), amountMinor: 900 + seed }),
  ).payment.id;
}

function fileBytes(path: string): Buffer {
  const parts = [readFileSync(path)];
  if (existsSync(`${path}-wal`)) parts.push(readFileSync(`${path}-wal`));
  return Buffer.concat(parts);
}

describe('purgeSettled', () => {
  it('purges old settled payments only, keeps the chain and the projection verifiable, and leaves no card data in the file or WAL', () => {
    const clock = storeClock('2026-01-01T08:00:00.000Z');
    const fx = freshStore({ clock });
    cleanups.push(fx.close);
    const { store, path } = fx;

    // Old ones (day 0).
    const oldOnline = onlineApproved(store, 'old-online', 1);
    const oldConfirmed = stored(store, 'old-confirmed', 2);
    ack(store, 'old-confirmed');
    const { payment: oldCanceled } = store.startPayment({
      idempotencyKey: 'old-canceled',
      amountMinor: 300,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    });
    store.cancelPayment(oldCanceled.id, 'the customer left');
    const oldPending = stored(store, 'old-pending', 3);
    const oldInFlight = stored(store, 'old-in-flight', 4);
    const oldDead = stored(store, 'old-dead', 5);
    ack(store, 'old-dead', 'rejected');
    const { payment: oldInProgress } = store.startPayment({
      idempotencyKey: 'old-in-progress',
      amountMinor: 400,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    });
    store.recordCardRead(oldInProgress.id, cardFor(6));
    // An old approval canceled later: its void record is still to send.
    const oldVoidPending = onlineApproved(store, 'old-void-pending', 7);
    store.cancelPayment(oldVoidPending, 'returned goods');

    // Recent one (day 29), acknowledged.
    clock.advance(29 * DAY);
    const recent = onlineApproved(store, 'recent', 8);
    clock.advance(2 * DAY);

    const before = fileBytes(path);
    for (const seed of [1, 2, 3]) {
      // Control: the bytes looked for below are there before the purge.
      expect(before.includes(Buffer.from(tokenFor(seed)))).toBe(true);
    }
    const eventsBefore = store.verifyChain();
    expect(eventsBefore.ok).toBe(true);
    const total = eventsBefore.ok ? eventsBefore.events : 0;
    const outboxSeqBefore = store.queueStats();

    const cutoff = isoAt(clock.now() - 30 * DAY);
    const report = store.purgeSettled(cutoff, { batchSize: 2 });
    expect(report.payments).toBe(3);
    expect(report.before).toBe(cutoff);

    for (const id of [oldOnline, oldConfirmed, oldCanceled.id]) {
      expect(store.getPayment(id)).toBeUndefined();
      expect(store.listEvents(id)).toEqual([]);
    }
    for (const id of [oldPending, oldInFlight, oldDead, oldInProgress.id, oldVoidPending, recent]) {
      expect(store.getPayment(id)).toBeDefined();
    }
    expect(store.verifyChain()).toEqual({
      ok: true,
      events: total - report.events,
      purgedLinks: report.events,
    });
    // Six kept, one of them (old-in-progress) a draft in memory before its decision (issue 9 §2).
    expect(store.checkProjection()).toMatchObject({ ok: true, payments: 5 });
    const stats = store.queueStats();
    expect(stats.acked).toBe(outboxSeqBefore.acked - 2);
    expect(stats.dead).toBe(1);
    expect(stats.depth).toBe(3);

    const after = fileBytes(path);
    for (const seed of [1, 2]) {
      expect(after.includes(Buffer.from(tokenFor(seed))), `token ${seed}`).toBe(false);
      expect(after.includes(Buffer.from(`"last4":"${5000 + seed}"`)), `last4 ${seed}`).toBe(false);
    }
    // What is kept keeps its card data (seed 6, the draft, is in memory, not in the file).
    for (const seed of [3, 4, 5, 8]) {
      expect(after.includes(Buffer.from(tokenFor(seed))), `kept token ${seed}`).toBe(true);
    }

    // A second run finds nothing more; the recent payment goes once it is old enough.
    expect(store.purgeSettled(cutoff).payments).toBe(0);
    clock.advance(30 * DAY);
    expect(store.purgeSettled(isoAt(clock.now() - 30 * DAY)).payments).toBe(1);
    expect(store.getPayment(recent)).toBeUndefined();
    expect(store.verifyChain().ok).toBe(true);
  });

  it('never charges a purged idempotency key again, and never reuses an outbox seq', () => {
    const clock = storeClock('2026-01-01T08:00:00.000Z');
    const fx = freshStore({ clock });
    cleanups.push(fx.close);
    const { store } = fx;
    stored(store, 'k1', 1);
    ack(store, 'k1');
    expect(store.nextPending(10)).toEqual([]);
    clock.advance(40 * DAY);
    expect(store.purgeSettled(isoAt(clock.now() - 30 * DAY)).payments).toBe(1);

    let error: unknown;
    try {
      stored(store, 'k1', 1);
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS210')).toBe(true);
    expect(String((error as Error).message)).toMatch(/purged by retention.*new Idempotency-Key/);
    expect(() =>
      store.startPayment({
        idempotencyKey: 'k1',
        amountMinor: 1,
        currency: 'EUR',
        offlineMode: 'prefer_online',
      }),
    ).toThrow(/POS210/);

    stored(store, 'k2', 2);
    const [record] = store.nextPending(10);
    expect(record?.key).toBe('k2');
    expect(record?.seq).toBe(2);
  });

  it('the schema refuses to purge or delete a payment that is not settled and acknowledged', () => {
    const clock = storeClock();
    const fx = freshStore({ clock });
    cleanups.push(fx.close);
    const id = stored(fx.store, 'pending-one', 1);
    const p = fx.store.requirePayment(id);
    const raw = rawConnection(fx.path);
    try {
      expect(() =>
        raw
          .prepare(
            `INSERT INTO purged_payments (id, idempotency_key, state, created_at, updated_at,
              purged_at, last_outbox_seq) VALUES (?, ?, 'confirmed', ?, ?, ?, 1)`,
          )
          .run(id, p.idempotencyKey, p.createdAt, p.updatedAt, p.updatedAt),
      ).toThrow(/only a payment in a final state/);
      expect(() => raw.prepare('DELETE FROM outbox').run()).toThrow(/never deleted/);
      expect(() => raw.prepare('DELETE FROM events').run()).toThrow(/append-only/);
      expect(() => raw.prepare('DELETE FROM payments').run()).toThrow(/never deleted/);
    } finally {
      raw.close();
    }
    expect(() => fx.store.purgeSettled('yesterday')).toThrow(/POS213/);
  });
});

describe('startRetention', () => {
  it('purges at start and then every hour on the injected clock, until stopped', () => {
    const clock = new FakeClock('2026-01-01T08:00:00.000Z');
    const fx = freshStore({ clock });
    cleanups.push(fx.close);
    const first = stored(fx.store, 'a', 1);
    ack(fx.store, 'a');
    clock.advance(3 * DAY);
    const second = stored(fx.store, 'b', 2);
    ack(fx.store, 'b');
    clock.advance(DAY + 1);
    const purged: number[] = [];
    const schedule = startRetention({
      store: fx.store,
      acknowledgedDays: 4,
      clock,
      onPurged: (report) => purged.push(report.payments),
    });
    // At start: `a` is 4 days + 1 ms old, `b` only 1 day.
    expect(purged).toEqual([1]);
    expect(fx.store.getPayment(first)).toBeUndefined();
    clock.advance(3 * DAY - 2 * 3_600_000);
    expect(fx.store.getPayment(second)).toBeDefined();
    clock.advance(2 * 3_600_000);
    expect(purged).toEqual([1, 1]);
    expect(fx.store.getPayment(second)).toBeUndefined();
    schedule.stop();
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses a retention out of 1–3650 days (POS213)', () => {
    const clock = new FakeClock('2026-01-01T08:00:00.000Z');
    const fx = freshStore({ clock });
    cleanups.push(fx.close);
    for (const days of [0, 3651, 1.5]) {
      expect(() => startRetention({ store: fx.store, acknowledgedDays: days, clock })).toThrow(
        /POS213/,
      );
    }
  });
});
