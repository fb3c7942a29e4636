import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { freshStore, newPayment, rawConnection, tokenFor } from './helpers.js';
import type { OutboxRecord } from '../../store-forward/model.js';

type Fixture = ReturnType<typeof freshStore>;
let fx: Fixture | undefined;
function setup(opts: Parameters<typeof freshStore>[0] = {}): Fixture {
  fx = freshStore(opts);
  return fx;
}
afterEach(() => {
  fx?.close();
  fx = undefined;
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isAgentError(error) ? error.code : `not an AgentError: ${String(error)}`;
  }
  return undefined;
}

function countRows(path: string, sql: string, ...params: unknown[]): number {
  const raw = rawConnection(path);
  try {
    return (raw.prepare(sql).get(...params) as { n: number }).n;
  } finally {
    raw.close();
  }
}

describe('PaymentStore.createPayment', () => {
  it('stores a payment in state stored with its event, pending outbox row and sealed row', () => {
    const { store, path } = setup();
    const { payment, created } = store.createPayment(newPayment('key-1'));
    expect(created).toBe(true);
    expect(payment).toMatchObject({
      idempotencyKey: 'key-1',
      amountMinor: 1050,
      currency: 'EUR',
      reference: 'order-17',
      state: 'stored',
      card: { brand: 'visa', first6: '411111', last4: '1111', entryMode: 'chip' },
    });
    expect(payment.id).toMatch(
      /^pay_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(store.getPayment(payment.id)).toEqual(payment);
    expect(store.getPaymentByKey('key-1')).toEqual(payment);
    expect(store.listEvents(payment.id).map((e) => e.type)).toEqual(['payment_stored']);
    expect(countRows(path, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")).toBe(1);
    expect(countRows(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(1);
  });

  it('records the forwarding deadline from the injected clock', () => {
    const { store } = setup({ forwardingDeadlineHours: 24 });
    const { payment } = store.createPayment(newPayment('key-1'));
    expect(Date.parse(payment.forwardingDeadlineAt ?? '') - Date.parse(payment.createdAt)).toBe(
      24 * 3_600_000,
    );
    expect(payment.createdAt.startsWith('2026-11-21T09:00:00.')).toBe(true);
  });

  it('same key and same parameters returns the original payment and writes nothing more', () => {
    const { store, path } = setup();
    const first = store.createPayment(newPayment('key-1'));
    const again = store.createPayment(newPayment('key-1', { sealed: undefined }));
    expect(again).toEqual({ payment: first.payment, created: false });
    expect(countRows(path, 'SELECT count(*) AS n FROM outbox')).toBe(1);
    expect(countRows(path, 'SELECT count(*) AS n FROM events')).toBe(1);
    expect(countRows(path, 'SELECT count(*) AS n FROM payments')).toBe(1);
  });

  it.each([
    ['amountMinor', { amountMinor: 1051 }],
    ['currency', { currency: 'USD' }],
    ['reference', { reference: 'order-18' }],
  ] as const)('same key with another %s is POS210 naming the field', (field, change) => {
    const { store, path } = setup();
    store.createPayment(newPayment('key-1'));
    let error: unknown;
    try {
      store.createPayment(newPayment('key-1', change));
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS210')).toBe(true);
    expect((error as Error).message).toContain(field);
    expect((error as { details: { field: string } }).details.field).toBe(field);
    expect(countRows(path, 'SELECT count(*) AS n FROM outbox')).toBe(1);
  });

  it('same key with another card is POS210 without card values in the message', () => {
    const { store } = setup();
    store.createPayment(newPayment('key-1'));
    const other = { ...newPayment('key-1').card, token: tokenFor(2) };
    let error: unknown;
    try {
      store.createPayment(newPayment('key-1', { card: other }));
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS210')).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain('card token differs');
    expect(message).not.toContain(tokenFor(1));
    expect(message).not.toContain(tokenFor(2));
  });

  it.each([
    ['zero amount', { amountMinor: 0 }],
    ['negative amount', { amountMinor: -5 }],
    ['fractional amount', { amountMinor: 10.5 }],
    ['unsafe amount', { amountMinor: 2 ** 53 }],
    ['lower-case currency', { currency: 'eur' }],
    ['empty key', { idempotencyKey: '' }],
    ['key with a space', { idempotencyKey: 'a b' }],
    ['short sealed blob', { sealed: 'AAAA' }],
    ['reference too long', { reference: 'x'.repeat(129) }],
  ])('refuses %s with POS213 before SQLite sees it', (_name, change) => {
    const { store } = setup();
    expect(codeOf(() => store.createPayment(newPayment('key-1', change)))).toBe('POS213');
    expect(store.queueStats().depth).toBe(0);
  });

  it('refuses a card that is not a token and first 6 / last 4 of the wrong length (POS213)', () => {
    const { store } = setup();
    const card = newPayment('k').card;
    for (const bad of [
      { ...card, token: '4111111111111111' },
      { ...card, first6: '41111' },
      { ...card, last4: '11111' },
      { ...card, expiryMonth: 13 },
    ]) {
      expect(codeOf(() => store.createPayment(newPayment('key-1', { card: bad })))).toBe('POS213');
    }
  });

  it('refuses a reference holding a PAN (POS214) without echoing it', () => {
    const { store } = setup();
    let error: unknown;
    try {
      store.createPayment(newPayment('key-1', { reference: 'order 4111111111111111' }));
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS214')).toBe(true);
    expect((error as Error).message).not.toContain('4111111111111111');
    expect(store.queueStats().depth).toBe(0);
  });

  it('upper-cases SRED hex and hands it out with the record', () => {
    const { store } = setup();
    store.createPayment(
      newPayment('key-1', {
        sealed: undefined,
        sred: { ksnHex: 'ffff9876543210e00001', ciphertextHex: 'a1b2c3d4e5f60718' },
      }),
    );
    const [record] = store.nextPending(10) as OutboxRecord[];
    expect(record?.sred).toEqual({
      ksnHex: 'FFFF9876543210E00001',
      ciphertextHex: 'A1B2C3D4E5F60718',
    });
    expect(record?.sealed).toBeUndefined();
  });
});

describe('PaymentStore outbox', () => {
  it('nextPending returns wire-shaped records in seq order with the chain hash', () => {
    const { store } = setup();
    const a = store.createPayment(newPayment('key-a')).payment;
    const b = store.createPayment(newPayment('key-b', { reference: undefined })).payment;
    const records = store.nextPending(10) as OutboxRecord[];
    expect(records.map((r) => r.key)).toEqual(['key-a', 'key-b']);
    expect(records.map((r) => r.seq)).toEqual([1, 2]);
    const [first, second] = records;
    expect(first).toEqual({
      key: 'key-a',
      seq: 1,
      type: 'payment',
      at: a.createdAt,
      payment: {
        id: a.id,
        amountMinor: 1050,
        currency: 'EUR',
        reference: 'order-17',
        createdAt: a.createdAt,
      },
      card: {
        token: tokenFor(1),
        brand: 'visa',
        first6: '411111',
        last4: '1111',
        expiryMonth: 12,
        expiryYear: 2030,
        entryMode: 'chip',
      },
      sealed: newPayment('x').sealed,
      chain: Buffer.from(store.listEvents(a.id)[0]?.hash ?? '', 'hex').toString('base64url'),
    });
    expect(first?.chain).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second?.payment).not.toHaveProperty('reference');
    expect(second?.payment.id).toBe(b.id);
    expect(store.nextPending(1)).toHaveLength(1);
  });

  it('nextPending hands out the records after a cursor and writes nothing: in flight is memory', () => {
    const { store, path } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    store.createPayment(newPayment('key-2'));
    const all = store.nextPending(10);
    expect(all.map((r) => r.key)).toEqual(['key-1', 'key-2']);
    const first = all[0]?.seq ?? 0;
    expect(store.nextPending(10, first).map((r) => r.key)).toEqual(['key-2']);
    expect(store.nextPending(10, all[1]?.seq ?? 0)).toEqual([]);
    expect(store.getPayment(payment.id)?.state).toBe('stored');
    expect(store.listEvents(payment.id).map((e) => e.type)).toEqual(['payment_stored']);
    const raw = rawConnection(path);
    expect(raw.prepare("SELECT count(*) AS n FROM outbox WHERE state = 'pending'").get()).toEqual({
      n: 2,
    });
    raw.close();
    expect(store.queueStats()).toMatchObject({ depth: 2, inFlight: 0, pending: 2 });
    expect(codeOf(() => store.nextPending(10, -1))).toBe('POS213');
  });

  it('applyAcks accepted+approved acks the record, deletes the sealed row, approves the payment', () => {
    const { store, path } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    const applied = store.applyAcks([
      { key: 'key-1', status: 'accepted', outcome: 'approved', authCode: 'A1B2C3' },
    ]);
    expect(applied).toEqual([
      {
        key: 'key-1',
        action: 'acked',
        paymentId: payment.id,
        paymentState: 'approved',
        outboxState: 'acked',
      },
    ]);
    expect(store.getPayment(payment.id)).toMatchObject({ state: 'approved', authCode: 'A1B2C3' });
    expect(countRows(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(0);
    expect(store.queueStats()).toMatchObject({ depth: 0, acked: 1, oldestAt: null });
    expect(store.listEvents(payment.id).map((e) => e.type)).toEqual([
      'payment_stored',
      'cloud_approved',
    ]);
    expect(store.verifyChain().ok).toBe(true);
    expect(store.checkProjection()).toEqual({ ok: true, payments: 1 });
  });

  it('applyAcks twice produces one outcome event and reports already', () => {
    const { store } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    const ack = {
      key: 'key-1',
      status: 'accepted',
      outcome: 'declined',
      declineCode: '51',
    } as const;
    store.applyAcks([ack]);
    const second = store.applyAcks([ack, { ...ack, status: 'duplicate' }]);
    expect(second.map((a) => a.action)).toEqual(['already', 'already']);
    const types = store.listEvents(payment.id).map((e) => e.type);
    expect(types.filter((t) => t === 'cloud_declined')).toHaveLength(1);
    expect(store.getPayment(payment.id)).toMatchObject({ state: 'declined', declineCode: '51' });
  });

  it('an ack without outcome confirms the payment; duplicate counts as accepted', () => {
    const { store } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    expect(store.applyAcks([{ key: 'key-1', status: 'duplicate' }])[0]?.action).toBe('acked');
    expect(store.getPayment(payment.id)?.state).toBe('confirmed');
  });

  it('an unknown key is reported, not thrown, and the other results still apply', () => {
    const { store } = setup();
    store.createPayment(newPayment('key-1'));
    const applied = store.applyAcks([
      { key: 'ghost', status: 'accepted' },
      { key: 'key-1', status: 'accepted', outcome: 'approved' },
    ]);
    expect(applied.map((a) => a.action)).toEqual(['unknown_key', 'acked']);
  });

  it('rejected goes to dead with the reason, retryDead brings it back to pending', () => {
    const { store, path } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    const [applied] = store.applyAcks([
      { key: 'key-1', status: 'rejected', code: 'E_SCHEMA', reason: 'bad terminal id' },
    ]);
    expect(applied).toMatchObject({ action: 'dead_lettered', detail: 'E_SCHEMA: bad terminal id' });
    expect(store.queueStats()).toMatchObject({ dead: 1, depth: 0 });
    const raw = rawConnection(path);
    expect(raw.prepare('SELECT state, dead_reason FROM outbox').get()).toEqual({
      state: 'dead',
      dead_reason: 'E_SCHEMA: bad terminal id',
    });
    expect(countRows(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(1);
    raw.close();
    expect(store.applyAcks([{ key: 'key-1', status: 'rejected' }])[0]?.action).toBe('already');

    expect(store.retryDead()).toBe(1);
    expect(store.nextPending(10).map((r) => r.key)).toEqual(['key-1']);
    expect(store.queueStats()).toMatchObject({ dead: 0, pending: 1 });
    expect(store.listEvents(payment.id).map((e) => e.type)).toEqual([
      'payment_stored',
      'dead_lettered',
      'requeued',
    ]);
    expect(store.retryDead(['key-1'])).toBe(0);
    expect(codeOf(() => store.retryDead(['ghost']))).toBe('POS215');
  });

  it('a PAN-shaped run in a cloud reason is redacted before it is stored', () => {
    const { store } = setup();
    store.createPayment(newPayment('key-1'));
    const [applied] = store.applyAcks([
      { key: 'key-1', status: 'rejected', reason: 'card 4111111111111111 refused' },
    ]);
    expect(applied?.detail).toBe('card [redacted] refused');
  });

  it('an acceptance that cannot be applied dead-letters the record with the reason', () => {
    const { store } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    const [applied] = store.applyAcks([
      { key: 'key-1', status: 'accepted', outcome: 'approved', authCode: 'not valid!' },
    ]);
    expect(applied?.action).toBe('dead_lettered');
    expect(applied?.detail).toContain('could not be applied');
    expect(store.getPayment(payment.id)?.state).toBe('stored');
    expect(store.queueStats().dead).toBe(1);
    expect(store.checkProjection()).toEqual({ ok: true, payments: 1 });
    expect(store.verifyChain().ok).toBe(true);
  });

  it('releaseInFlight puts in-flight rows of an older agent back to pending (start-up)', () => {
    const { store, path } = setup();
    store.createPayment(newPayment('key-1'));
    store.createPayment(newPayment('key-2'));
    store.createPayment(newPayment('key-3'));
    // Agents before issue 9 wrote "in flight" to the outbox.
    const raw = rawConnection(path);
    raw
      .prepare(
        "UPDATE outbox SET state = 'in_flight', batch_id = 'b', attempts = 1 WHERE key IN ('key-1', 'key-2')",
      )
      .run();
    raw.close();
    expect(store.nextPending(10).map((r) => r.key)).toEqual(['key-3']);
    expect(store.queueStats()).toMatchObject({ inFlight: 2, pending: 1, depth: 3 });
    expect(store.releaseInFlight()).toBe(2);
    expect(store.nextPending(10).map((r) => r.key)).toEqual(['key-1', 'key-2', 'key-3']);
    expect(store.queueStats()).toMatchObject({ inFlight: 0, pending: 3, depth: 3 });
    expect(store.releaseInFlight()).toBe(0);
  });

  it('queueStats.oldestAt is the at of the oldest undelivered record', () => {
    const { store } = setup();
    const first = store.createPayment(newPayment('key-1')).payment;
    store.createPayment(newPayment('key-2'));
    expect(store.queueStats()).toEqual({
      depth: 2,
      pending: 2,
      inFlight: 0,
      dead: 0,
      acked: 0,
      oldestAt: first.createdAt,
    });
    store.applyAcks([{ key: 'key-1', status: 'accepted' }]);
    expect(store.queueStats().oldestAt).not.toBe(first.createdAt);
  });
});

describe('PaymentStore reads and lifecycle', () => {
  it('listPayments filters by state, newest first, with a limit', () => {
    const { store } = setup();
    for (const key of ['a', 'b', 'c']) store.createPayment(newPayment(key));
    store.applyAcks([{ key: 'b', status: 'accepted' }]);
    expect(store.listPayments().map((p) => p.idempotencyKey)).toEqual(['c', 'b', 'a']);
    expect(store.listPayments({ state: 'confirmed' }).map((p) => p.idempotencyKey)).toEqual(['b']);
    expect(store.listPayments({ limit: 1 })).toHaveLength(1);
    expect(codeOf(() => store.listPayments({ limit: 0 }))).toBe('POS213');
  });

  it('requirePayment throws POS211 for an unknown id; getPayment returns undefined', () => {
    const { store } = setup();
    expect(store.getPayment('pay_nope')).toBeUndefined();
    expect(codeOf(() => store.requirePayment('pay_nope'))).toBe('POS211');
  });

  it('keeps everything across close and re-open', () => {
    const { store, path, clock } = setup();
    const { payment } = store.createPayment(newPayment('key-1'));
    store.close();
    expect(codeOf(() => store.getPayment(payment.id))).toBe('POS206');
    const reopened = (
      store.constructor as typeof import('../../store-forward/payment-store.js').PaymentStore
    ).open({ path, clock });
    try {
      expect(reopened.getPayment(payment.id)).toEqual(payment);
      expect(reopened.nextPending(5)).toHaveLength(1);
      expect(reopened.verifyChain()).toEqual({ ok: true, events: 1 });
    } finally {
      reopened.close();
    }
  });
});

describe('PaymentStore drafts (issue 9 §2: a payment before its decision is in memory)', () => {
  const start = (key: string, amountMinor = 1000) => ({
    idempotencyKey: key,
    amountMinor,
    currency: 'EUR',
    offlineMode: 'prefer_online' as const,
  });

  it('a key is unique across drafts and stored payments', () => {
    const { store } = setup();
    const draft = store.startPayment(start('draft-key'));
    expect(draft.created).toBe(true);
    // Same key, same parameters: the draft itself; other parameters: POS210 naming the field.
    expect(store.startPayment(start('draft-key'))).toEqual({
      payment: draft.payment,
      created: false,
    });
    expect(codeOf(() => store.startPayment(start('draft-key', 2000)))).toBe('POS210');
    expect(codeOf(() => store.createPayment(newPayment('draft-key')))).toBe('POS210');
    // And a stored key is not given to a draft.
    const stored = store.createPayment(newPayment('stored-key')).payment;
    expect(
      store.startPayment({
        ...start('stored-key', stored.amountMinor),
        reference: stored.reference,
      }),
    ).toEqual({
      payment: stored,
      created: false,
    });
    expect(codeOf(() => store.startPayment(start('stored-key', 1)))).toBe('POS210');
  });

  it('lists a draft with the stored payments, newest first, by the same cursor', () => {
    const { store } = setup();
    const older = store.createPayment(newPayment('older')).payment;
    const draft = store.startPayment(start('in-progress')).payment;
    const newer = store.createPayment(newPayment('newer')).payment;
    expect(store.listPayments().map((p) => p.id)).toEqual([newer.id, draft.id, older.id]);
    const first = store.listPaymentPage({ limit: 2 });
    expect(first.payments.map((p) => p.id)).toEqual([newer.id, draft.id]);
    const second = store.listPaymentPage({ limit: 2, before: first.next ?? '' });
    expect(second.payments.map((p) => p.id)).toEqual([older.id]);
    expect(store.listPayments({ state: 'awaiting_card' }).map((p) => p.id)).toEqual([draft.id]);
  });

  it('canceling a draft writes it once, canceled, without card data', () => {
    const { store, path } = setup();
    const { payment } = store.startPayment(start('cancel-draft'));
    store.recordCardRead(payment.id, { ...newPayment('x').card, token: tokenFor(9) });
    const { payment: canceled, voided } = store.cancelPayment(payment.id, 'customer left');
    expect(voided).toBe(false);
    expect(canceled.state).toBe('canceled');
    expect(store.listEvents(payment.id).map((e) => e.type)).toEqual([
      'payment_started',
      'card_read',
      'canceled',
    ]);
    expect(countRows(path, 'SELECT count(*) AS n FROM sealed_cards')).toBe(0);
    // Written: no longer a draft, and the machine refuses a late card read (POS212).
    expect(codeOf(() => store.recordCardRead(payment.id, newPayment('x').card))).toBe('POS212');
  });

  it('a draft whose flow ended without a durable outcome is discarded: its key is free again', () => {
    const { store } = setup();
    const { payment } = store.startPayment(start('discarded'));
    store.discardDraft(payment.id);
    expect(store.getPayment(payment.id)).toBeUndefined();
    expect(store.startPayment(start('discarded')).created).toBe(true);
  });
});
