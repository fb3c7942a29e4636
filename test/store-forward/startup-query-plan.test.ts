/**
 * Start-up walks only what came after the verified checkpoint (issue 9 §4): the statement that
 * finds the payments changed since then must read a range of the events' primary key, not every
 * event. With DISTINCT/UNION, SQLite's planner preferred the covering index events_by_payment
 * and scanned the whole table (33 ms of start-up with 100,000 stored payments).
 */
import { describe, expect, it } from 'vitest';
import { SQL } from '../../store-forward/sql.js';
import { freshStore, newPayment, rawConnection } from './helpers.js';

describe('start-up reads only the events after the checkpoint', () => {
  it('finds the payments changed after a seq by index ranges, not by scanning events or ack members', () => {
    const { store, path, close } = freshStore();
    try {
      const ids = Array.from(
        { length: 5 },
        (_, i) => store.createPayment(newPayment(`plan-${i}`)).payment.id,
      );
      const db = rawConnection(path);
      try {
        const plan = (
          db.prepare(`EXPLAIN QUERY PLAN ${SQL.paymentsChangedAfter}`).all({ a: 3 }) as {
            detail: string;
          }[]
        ).map((row) => row.detail);
        expect(
          plan.some((d) => /^SEARCH events USING INTEGER PRIMARY KEY \(rowid>\?\)/.test(d)),
        ).toBe(true);
        expect(plan.filter((d) => /^SCAN (?!\(subquery)/.test(d))).toEqual([]); // the union's own rows only
        expect(plan).toContain(
          'SEARCH ack_event_members USING COVERING INDEX ack_event_members_by_event (event_seq>?)',
        );
        // And it answers what it is for: the payments of the events after seq 3.
        const changed = (db.prepare(SQL.paymentsChangedAfter).all({ a: 3 }) as { id: string }[])
          .map((row) => row.id)
          .sort();
        expect(changed).toEqual([ids[3], ids[4]].sort());
      } finally {
        db.close();
      }
    } finally {
      close();
    }
  });
});
