/**
 * Issue 17, the agent's reconciliation timers on a real store and an injected clock: the daily
 * close at `batch.closeAt` (local time), retried every minute while payments are unforwarded,
 * and the drift check queued between closes only when something changed.
 */
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dueCloseAt, startReconciliation } from '../../agent/reconciliation.js';
import { createLogger } from '../../agent/logger.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { newPayment, tempDir } from '../store-forward/helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function setup(options: { closeAt?: string; driftCheckSeconds: number }) {
  const { dir, cleanup } = tempDir();
  // After the migration's initial batch, which SQLite opens at the wall clock's now.
  const clock = new FakeClock(Date.now() + 1000);
  const store = PaymentStore.open({ path: path.join(dir, 'agent.db'), clock });
  let notified = 0;
  const rec = startReconciliation({
    store,
    logger: createLogger({ level: 'silent', file: path.join(dir, 'agent.log') }),
    clock,
    terminal: 'lane-7',
    notifySync: () => notified++,
    closeAt: options.closeAt,
    driftCheckSeconds: options.driftCheckSeconds,
  });
  cleanups.push(
    cleanup,
    () => store.close(),
    () => rec.stop(),
  );
  return { store, clock, rec, notified: () => notified };
}

/** "HH:MM" of an epoch ms in local time. */
function localHhMm(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

describe('agent reconciliation timers (issue 17)', () => {
  it('closes the batch at closeAt local time, retrying each minute while payments are unforwarded', () => {
    const start = Date.now() + 1000;
    const closeAt = localHhMm(start + 2 * 3_600_000);
    const { store, clock, rec } = setup({ closeAt, driftCheckSeconds: 0 });
    const first = store.batches.current();
    store.createPayment(newPayment('k-1'));
    clock.advance(2 * 3_600_000 + 60_000);
    // Refused (POS601) while k-1 is not acknowledged: still open, tried again each minute.
    expect(store.batches.current().id).toBe(first.id);
    const [record] = store.nextPending(10);
    store.applyAcks([{ key: record?.key ?? '', status: 'accepted', outcome: 'approved' }]);
    clock.advance(60_000);
    const closed = store.batches.get(first.id);
    expect(closed.state).toBe('closed');
    expect(store.batches.current().terminal).toBe('lane-7');
    expect(rec.counters().closed).toBe(1);
    // Not again the same day.
    clock.advance(3_600_000);
    expect(rec.counters().closed).toBe(1);
  });

  it('queues a drift check only when the open batch changed since the last one', () => {
    const { store, clock, rec, notified } = setup({ driftCheckSeconds: 60 });
    clock.advance(60_000);
    expect(rec.counters().checks).toBe(0); // an empty batch has nothing to report
    store.createPayment(newPayment('k-1'));
    clock.advance(60_000);
    expect(rec.counters().checks).toBe(1);
    expect(notified()).toBe(1);
    // Unanswered: no second check on top of it.
    clock.advance(60_000);
    expect(rec.counters().checks).toBe(1);
  });

  it('reads only closed batches after an ack message: the open batch is not summed (issue 9)', () => {
    const { store, rec } = setup({ driftCheckSeconds: 0 });
    const first = store.batches.current();
    store.createPayment(newPayment('k-1'));
    const [record] = store.nextPending(10);
    store.applyAcks([{ key: record?.key ?? '', status: 'accepted', outcome: 'approved' }]);
    store.batches.close({ force: false, terminal: 'lane-7' });
    store.createPayment(newPayment('k-2'));
    // Regression: noteAcks ran `batches.list(3)`, which sums every payment of the open batch
    // (GROUP BY over the batch) on each ack message and at start-up: O(backlog) per message.
    const list = vi.spyOn(store.batches, 'list');
    const closed = vi.spyOn(store.batches, 'listClosed');
    rec.noteAcks();
    expect(list).not.toHaveBeenCalled();
    expect(closed).toHaveBeenCalledTimes(1);
    const recent = store.batches.listClosed(3);
    expect(recent.map((b) => b.id)).toEqual([first.id]);
    expect(recent.every((b) => b.state === 'closed')).toBe(true);
  });

  it('finds the most recent daily close time in local time', () => {
    const now = new Date(2026, 10, 21, 18, 30).getTime();
    expect(dueCloseAt(now, '18:00')).toBe(new Date(2026, 10, 21, 18, 0).getTime());
    expect(dueCloseAt(now, '23:00')).toBe(new Date(2026, 10, 20, 23, 0).getTime());
  });
});
