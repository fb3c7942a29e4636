/**
 * The one totals rule of reconciliation (issue 15: the store's totalsOf and the simulator's
 * cloudTotals were two copies): the agent's report lines and the cloud's answer lines are
 * totalled alike, so a batch the two sides agree on has equal totals.
 */
import { describe, expect, it } from 'vitest';
import { isCharged, totalsOf } from '../../common/reconciliation.js';

describe('totalsOf (issue 15)', () => {
  it('counts every line per state, and only charged ones per currency and brand', () => {
    const cloud = totalsOf([
      { amountMinor: 1000, currency: 'EUR', brand: 'visa', state: 'charged' },
      { amountMinor: 250, currency: 'EUR', state: 'charged' },
      { amountMinor: 700, currency: 'EUR', brand: 'visa', state: 'declined' },
      { amountMinor: 300, currency: 'USD', brand: 'mastercard', state: 'voided' },
    ]);
    expect(cloud).toEqual({
      count: 4,
      byCurrency: { EUR: { count: 2, amountMinor: 1250 } },
      byBrand: {
        visa: { EUR: { count: 1, amountMinor: 1000 } },
        unknown: { EUR: { count: 1, amountMinor: 250 } },
      },
      byState: {
        charged: { EUR: { count: 2, amountMinor: 1250 } },
        declined: { EUR: { count: 1, amountMinor: 700 } },
        voided: { USD: { count: 1, amountMinor: 300 } },
      },
    });
  });

  it('agrees across the two vocabularies: the same money charged gives the same currency and brand totals', () => {
    const here = totalsOf([
      { amountMinor: 1000, currency: 'EUR', brand: 'visa', state: 'approved_online' },
      { amountMinor: 500, currency: 'EUR', brand: 'visa', state: 'pending_forward', count: 2 },
      { amountMinor: 900, currency: 'EUR', brand: 'visa', state: 'declined' },
    ]);
    const there = totalsOf([
      { amountMinor: 1000, currency: 'EUR', brand: 'visa', state: 'charged' },
      { amountMinor: 250, currency: 'EUR', brand: 'visa', state: 'charged' },
      { amountMinor: 250, currency: 'EUR', brand: 'visa', state: 'charged' },
    ]);
    expect(here.byCurrency).toEqual(there.byCurrency);
    expect(here.byBrand).toEqual(there.byBrand);
    expect(here.count).toBe(4);
  });

  it('isCharged: approved online or offline, pending forward, or the cloud’s charged', () => {
    const charged = ['approved_online', 'approved_offline', 'pending_forward', 'charged'];
    const not = ['declined', 'reversed', 'voided', 'not_completed'];
    expect(charged.map(isCharged)).toEqual(charged.map(() => true));
    expect(not.map(isCharged)).toEqual(not.map(() => false));
  });
});
