/**
 * An acknowledgement message applied as one set (issue 9 §3, store-forward/ack-set.ts): the fold
 * runs on the few payment fields an ack changes and the payments are written by one set-based
 * UPDATE, so these tests check the stored rows against what the projection check folds from the
 * events (checkProjection) and the hash chain, on a real SQLite file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AckResult } from '../../store-forward/model.js';
import { freshStore, newPayment, rawConnection } from './helpers.js';

type Fixture = ReturnType<typeof freshStore>;
let fx: Fixture | undefined;
function setup(): Fixture {
  fx = freshStore();
  return fx;
}
afterEach(() => {
  fx?.close();
  fx = undefined;
});

function count(path: string, sql: string): number {
  const raw = rawConnection(path);
  try {
    return (raw.prepare(sql).get() as { n: number }).n;
  } finally {
    raw.close();
  }
}

describe('applyAcks as one set', () => {
  it('a rejection then an acceptance of the same key in one message: dead, then acked from the dead-lettered row', () => {
    const { store, path } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    const applied = store.applyAcks([
      { key: 'key-1', status: 'rejected', code: 'E1', reason: 'try again' },
      { key: 'key-1', status: 'accepted', outcome: 'approved', authCode: 'OK42' },
    ]);
    expect(applied.map((a) => a.action)).toEqual(['dead_lettered', 'acked']);
    expect(store.getPayment(payment.id)).toMatchObject({ state: 'approved', authCode: 'OK42' });
    expect(store.listEvents(payment.id).map((e) => e.type)).toEqual([
      'payment_stored',
      'dead_lettered',
      'cloud_approved',
    ]);
    expect(store.queueStats()).toMatchObject({ acked: 1, dead: 0, depth: 0 });
    expect(count(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(0);
    expect(store.checkProjection()).toEqual({ ok: true, payments: 1 });
    expect(store.verifyChain().ok).toBe(true);
  });

  it('an acceptance then a refused second acceptance of one payment: the refusal is already, the row is the fold', () => {
    const { store } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    const applied = store.applyAcks([
      { key: 'key-1', status: 'accepted', outcome: 'declined', declineCode: '51', reason: 'nsf' },
      { key: 'key-1', status: 'accepted', outcome: 'approved', authCode: 'bad code!' },
    ]);
    expect(applied.map((a) => a.action)).toEqual(['acked', 'already']);
    expect(store.getPayment(payment.id)).toMatchObject({
      state: 'declined',
      declineCode: '51',
      reason: 'nsf',
    });
    expect(store.getPayment(payment.id)?.authCode).toBeUndefined();
    expect(store.checkProjection()).toEqual({ ok: true, payments: 1 });
  });

  it('one message with many outcomes, an unappliable result and an unknown key: one ack event, every row as the fold', () => {
    const { store, path } = setup();
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push(store.createPayment(newPayment(`key-${i}`)).payment.id);
    const results: AckResult[] = [];
    for (let i = 0; i < 60; i++) {
      const key = `key-${i}`;
      if (i % 4 === 0)
        results.push({ key, status: 'accepted', outcome: 'approved', authCode: `A${i}` });
      else if (i % 4 === 1)
        results.push({ key, status: 'duplicate', outcome: 'declined', declineCode: '05' });
      else if (i % 4 === 2) results.push({ key, status: 'accepted' });
      else results.push({ key, status: 'accepted', outcome: 'approved', authCode: 'not valid!' });
    }
    results.push({ key: 'ghost', status: 'accepted' });
    const applied = store.applyAcks(results, ['b-1', 'b-2']);
    expect(applied.filter((a) => a.action === 'acked')).toHaveLength(45);
    expect(applied.filter((a) => a.action === 'dead_lettered')).toHaveLength(15);
    expect(applied.at(-1)?.action).toBe('unknown_key');
    expect(count(path, 'SELECT count(*) AS n FROM ack_events')).toBe(1);
    expect(store.getPayment(ids[0] as string)).toMatchObject({ state: 'approved', authCode: 'A0' });
    expect(store.getPayment(ids[1] as string)).toMatchObject({
      state: 'declined',
      declineCode: '05',
    });
    expect(store.getPayment(ids[2] as string)?.state).toBe('confirmed');
    expect(store.getPayment(ids[3] as string)?.state).toBe('stored');
    expect(store.queueStats()).toMatchObject({ acked: 45, dead: 15, depth: 0 });
    expect(count(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(15);
    expect(store.checkProjection()).toEqual({ ok: true, payments: 60 });
    expect(store.verifyChain().ok).toBe(true);
  });

  // Issue 9 (drain3): the outbox is updated by one statement per status, not per key with its
  // status read from JSON; a mixed message must still store each key's own status.
  it('accepted and duplicate results in one message: each outbox row keeps its own ack status', () => {
    const { store, path } = setup();
    for (let i = 0; i < 6; i++) store.createPayment(newPayment(`key-${i}`));
    store.applyAcks(
      [0, 1, 2, 3, 4, 5].map((i) => ({
        key: `key-${i}`,
        status: i % 3 === 0 ? ('duplicate' as const) : ('accepted' as const),
      })),
    );
    const raw = rawConnection(path);
    try {
      const rows = raw.prepare('SELECT key, state, ack_status FROM outbox ORDER BY seq').all();
      expect(rows).toEqual(
        [0, 1, 2, 3, 4, 5].map((i) => ({
          key: `key-${i}`,
          state: 'acked',
          ack_status: i % 3 === 0 ? 'duplicate' : 'accepted',
        })),
      );
    } finally {
      raw.close();
    }
    expect(store.checkProjection()).toEqual({ ok: true, payments: 6 });
  });

  // Issue 9 (drain3): the payments UPDATE writes only the columns the set changes. A payment the
  // set leaves alone in a column (its reason, its decline code) keeps it, while another payment of
  // the same set changes that column.
  it('one payment declined and one approved in a message: each row as its own fold, nothing else touched', () => {
    const { store, path } = setup();
    const declined = store.createPayment(newPayment('key-d')).payment.id;
    const approved = store.createPayment(newPayment('key-a')).payment.id;
    const confirmed = store.createPayment(newPayment('key-c')).payment.id;
    const before = store.getPayment(confirmed);
    store.applyAcks([
      { key: 'key-d', status: 'accepted', outcome: 'declined', declineCode: '51', reason: 'nsf' },
      { key: 'key-a', status: 'accepted', outcome: 'approved', authCode: 'OK1' },
      { key: 'key-c', status: 'accepted' },
    ]);
    expect(store.getPayment(declined)).toMatchObject({
      state: 'declined',
      declineCode: '51',
      reason: 'nsf',
    });
    expect(store.getPayment(approved)).toMatchObject({ state: 'approved', authCode: 'OK1' });
    expect(store.getPayment(approved)?.declineCode).toBeUndefined();
    expect(store.getPayment(approved)?.reason).toBeUndefined();
    const after = store.getPayment(confirmed);
    expect(after?.state).toBe('confirmed');
    expect(after?.authCode).toBeUndefined();
    expect(after?.approval).toBe(before?.approval);
    expect(after?.updatedAt).not.toBe(before?.updatedAt);
    expect(count(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(0);
    expect(store.checkProjection()).toEqual({ ok: true, payments: 3 });
    expect(store.verifyChain().ok).toBe(true);
  });
});
