/**
 * Issue 9: `/v1/status`, the status page and every metrics scrape ask for the open batch's running
 * totals, which sum every payment of the batch (a GROUP BY over it). The sum is now kept until a
 * row changes: by this connection (`total_changes()`) or by another process (`data_version`).
 * These tests prove that an unchanged store is not summed again, and that every kind of change is
 * seen.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { freshStore, newPayment } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) c();
});

/** Counts the runs of the batch-totals GROUP BY (better-sqlite3's Statement.prototype.all). */
function countTotalsQueries(): () => number {
  const probe = new Database(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as {
    all: (...args: unknown[]) => unknown;
  };
  probe.close();
  let runs = 0;
  const all = proto.all;
  vi.spyOn(proto, 'all').mockImplementation(function (this: { source: string }, ...args) {
    if (this.source.includes('GROUP BY state, approval, currency, card_brand')) runs += 1;
    return all.apply(this, args);
  });
  return () => runs;
}

describe('open batch totals (issue 9)', () => {
  it('an unchanged store is not summed again; a new payment is seen at once', () => {
    const fx = freshStore();
    cleanups.push(fx.close);
    fx.store.createPayment(newPayment('k-1', { amountMinor: 700 }));
    const runs = countTotalsQueries();
    const first = fx.store.batches.status().open.totals;
    expect(first.byCurrency.EUR).toEqual({ amountMinor: 700, count: 1 });
    fx.store.batches.status();
    fx.store.batches.current();
    expect(runs()).toBe(1);
    // A caller that edits its copy does not edit the next caller's.
    first.byCurrency.EUR = { amountMinor: 1, count: 99 };
    expect(fx.store.batches.status().open.totals.byCurrency.EUR).toEqual({
      amountMinor: 700,
      count: 1,
    });
    fx.store.createPayment(newPayment('k-2', { amountMinor: 300 }));
    expect(fx.store.batches.status().open.totals.byCurrency.EUR).toEqual({
      amountMinor: 1000,
      count: 2,
    });
    expect(runs()).toBe(2);
  });

  it("another process's commit is seen (data_version)", () => {
    const fx = freshStore();
    cleanups.push(fx.close);
    fx.store.createPayment(newPayment('k-1', { amountMinor: 700 }));
    expect(fx.store.batches.status().open.totals.byCurrency.EUR?.amountMinor).toBe(700);
    // Another connection (as `pos-agent` in another process would be) adds a payment.
    const other = PaymentStore.open({ path: fx.path, clock: fx.clock });
    cleanups.push(() => other.close());
    other.createPayment(newPayment('k-2', { amountMinor: 50 }));
    expect(fx.store.batches.status().open.totals.byCurrency.EUR).toEqual({
      amountMinor: 750,
      count: 2,
    });
  });
});
