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
});
