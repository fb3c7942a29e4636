/**
 * Terminal batches in the store (issue 17), on a real SQLite file: payments join the open batch,
 * the close is a hash-chained event with the totals and refuses unforwarded payments unless
 * forced, the batch record goes up in the outbox's order, the cloud's answer is compared and
 * exceptions are resolved by events; chain and projection checks cover all of it.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { compareBatch } from '../../store-forward/batch-compare.js';
import type { CloudBatchAnswer } from '../../store-forward/batch-types.js';
import { openDatabase } from '../../store-forward/database.js';
import { MIGRATIONS } from '../../store-forward/migrations/index.js';
import type { BatchReportRecord } from '../../store-forward/model.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { freshStore, newPayment, rawConnection, tempDir, tokenFor } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function setup() {
  const fx = freshStore();
  cleanups.push(fx.close);
  return fx;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (isAgentError(error)) return error.code;
    throw error;
  }
  return undefined;
}

/** Acks every pending payment record as the cloud would (approved), like the sync worker. */
function ackPayments(store: PaymentStore): void {
  const records = store.nextPending(100).filter((r) => r.type !== 'batch');
  store.applyAcks(
    records.map((r) => ({
      key: r.key,
      status: 'accepted' as const,
      outcome: 'approved' as const,
      authCode: 'A1',
    })),
  );
}

/** The batch record of the close, as the sync worker hands it out. */
function batchRecord(store: PaymentStore): BatchReportRecord {
  const record = store.nextPending(100).find((r) => r.type === 'batch');
  if (record === undefined || record.type !== 'batch') throw new Error('no batch record pending');
  return record;
}

/** The cloud's answer that agrees with the report. */
function agreeingAnswer(record: BatchReportRecord): CloudBatchAnswer {
  const payments = record.batch.payments.map((p) => ({
    key: p.key,
    amountMinor: p.amountMinor,
    currency: p.currency,
    brand: p.brand,
    state: ['approved_online', 'approved_offline', 'pending_forward'].includes(p.state)
      ? ('charged' as const)
      : ('declined' as const),
  }));
  return {
    id: record.batch.id,
    kind: record.batch.kind,
    asOf: record.at,
    totals: {
      count: payments.length,
      byCurrency: record.batch.totals.byCurrency,
      byBrand: record.batch.totals.byBrand,
      byState: {},
    },
    payments,
  };
}

describe('terminal batches (issue 17)', () => {
  it('puts every new payment in the open batch and keeps running totals', () => {
    const { store } = setup();
    const open = store.batches.current();
    store.createPayment(newPayment('k-1', { amountMinor: 1000 }));
    store.createPayment(
      newPayment('k-2', {
        amountMinor: 250,
        currency: 'USD',
        card: { ...newPayment('x').card, token: tokenFor(2), brand: 'mastercard' },
      }),
    );
    const batch = store.batches.current();
    expect(batch.id).toBe(open.id);
    expect(batch.totals.count).toBe(2);
    expect(batch.totals.byCurrency).toEqual({
      EUR: { count: 1, amountMinor: 1000 },
      USD: { count: 1, amountMinor: 250 },
    });
    expect(batch.totals.byBrand).toEqual({
      visa: { EUR: { count: 1, amountMinor: 1000 } },
      mastercard: { USD: { count: 1, amountMinor: 250 } },
    });
    expect(batch.totals.byState.pending_forward).toEqual({
      EUR: { count: 1, amountMinor: 1000 },
      USD: { count: 1, amountMinor: 250 },
    });
  });

  it('refuses to close over unforwarded payments (POS601) unless forced, and lists them', () => {
    const { store } = setup();
    store.createPayment(newPayment('k-1'));
    expect(codeOf(() => store.batches.close())).toBe('POS601');
    const forced = store.batches.close({ force: true });
    expect(forced.unforwarded.map((u) => u.key)).toEqual(['k-1']);
    expect(forced.batch.state).toBe('closed');
    expect(forced.batch.forced).toBe(true);
    expect(forced.next.state).toBe('open');
    // The next payment joins the next batch.
    const { payment } = store.createPayment(
      newPayment('k-2', { card: { ...newPayment('x').card, token: tokenFor(3) } }),
    );
    expect(store.batches.current().totals.count).toBe(1);
    expect(store.batches.current().id).toBe(forced.next.id);
    expect(payment.id).toMatch(/^pay_/);
  });

  it('closes with a hash-chained event carrying totals, chain position and the record in seq order', () => {
    const { store } = setup();
    store.createPayment(newPayment('k-1', { amountMinor: 700 }));
    ackPayments(store);
    const head = store.listEvents(store.getPaymentByKey('k-1')?.id ?? '').at(-1)?.seq ?? 0;
    const closed = store.batches.close();
    expect(closed.batch.reconciliation).toBe('awaiting_cloud');
    expect(closed.batch.totals.byCurrency).toEqual({ EUR: { count: 1, amountMinor: 700 } });
    expect(closed.batch.totals.byState.approved_offline).toEqual({
      EUR: { count: 1, amountMinor: 700 },
    });
    expect(closed.batch.lastEventSeq).toBeGreaterThanOrEqual(head);
    expect(closed.batch.chainHead).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(closed.batch.firstEventSeq).toBe(1);
    const record = batchRecord(store);
    expect(record.key).toBe(closed.recordKey);
    expect(record.batch.payments).toEqual([
      { key: 'k-1', amountMinor: 700, currency: 'EUR', brand: 'visa', state: 'approved_offline' },
    ]);
    // A payment record queued after the close comes after the batch record.
    store.createPayment(
      newPayment('k-2', { card: { ...newPayment('x').card, token: tokenFor(4) } }),
    );
    const seqs = store.nextPending(100).map((r) => `${r.type}:${r.seq}`);
    expect(seqs).toEqual([`batch:${record.seq}`, `payment:${record.seq + 1}`]);
    expect(store.queueStats().depth).toBe(2);
    expect(store.verifyChain().ok).toBe(true);
    expect(store.checkProjection().ok).toBe(true);
  });

  it('matches a clean answer and records the result as an event', () => {
    const { store } = setup();
    store.createPayment(newPayment('k-1'));
    ackPayments(store);
    const closed = store.batches.close();
    const record = batchRecord(store);
    const applied = store.applyAcks([
      { key: record.key, status: 'accepted', batch: agreeingAnswer(record) } as never,
    ]);
    expect(applied[0]?.action).toBe('acked');
    const batch = store.batches.get(closed.batch.id);
    expect(batch.reconciliation).toBe('matched');
    expect(store.batches.exceptions()).toEqual([]);
    expect(store.queueStats().depth).toBe(0);
    expect(store.verifyChain().ok).toBe(true);
    expect(store.checkProjection().ok).toBe(true);
  });

  it('raises an exception per difference, and a tech resolves it with an event', () => {
    const { store } = setup();
    store.createPayment(newPayment('k-1', { amountMinor: 500 }));
    store.createPayment(
      newPayment('k-2', {
        amountMinor: 900,
        card: { ...newPayment('x').card, token: tokenFor(5) },
      }),
    );
    ackPayments(store);
    const closed = store.batches.close();
    const record = batchRecord(store);
    const answer = agreeingAnswer(record);
    // The cloud lost k-1 and booked k-2 with another amount.
    answer.payments = answer.payments
      .filter((p) => p.key !== 'k-1')
      .map((p) => ({ ...p, amountMinor: 1900 }));
    store.applyAcks([{ key: record.key, status: 'accepted', batch: answer } as never]);
    const open = store.batches.exceptions();
    expect(open.map((e) => [e.kind, e.idempotencyKey])).toEqual([
      ['missing_at_cloud', 'k-1'],
      ['amount_differs', 'k-2'],
    ]);
    expect(store.batches.get(closed.batch.id).reconciliation).toBe('exceptions');
    const [missing, amount] = open;
    expect(codeOf(() => store.batches.resolve(amount?.id ?? 0, 'requeue'))).toBe('POS605');
    expect(codeOf(() => store.batches.resolve(amount?.id ?? 0, 'accept'))).toBe('POS606');
    store.batches.resolve(amount?.id ?? 0, 'accept', 'acquirer confirmed 9.00 was charged');
    // Requeue: the payment's record goes again, then a new report of the batch.
    const requeued = store.batches.resolve(missing?.id ?? 0, 'requeue');
    expect(requeued.records).toHaveLength(2);
    const pending = store.nextPending(100);
    expect(pending.map((r) => `${r.type}:${r.key}`)).toEqual([
      'payment:k-1',
      `batch:${closed.batch.id}.close.2`,
    ]);
    expect(codeOf(() => store.batches.resolve(missing?.id ?? 0, 'accept', 'x'))).toBe('POS604');
    // The cloud now has k-1; the new report matches (k-2's accepted difference is not raised again).
    const rematch = pending[1] as BatchReportRecord;
    const fixed = agreeingAnswer(rematch);
    fixed.payments = fixed.payments.map((p) => (p.key === 'k-2' ? { ...p, amountMinor: 1900 } : p));
    store.applyAcks([
      { key: 'k-1', status: 'accepted', outcome: 'approved', authCode: 'A1' },
      { key: rematch.key, status: 'accepted', batch: fixed } as never,
    ]);
    expect(store.batches.exceptions()).toEqual([]);
    const all = store.batches.exceptions({ all: true });
    expect(all.map((e) => e.resolution).sort()).toEqual(['accept', 'requeue']);
    expect(store.batches.get(closed.batch.id).reconciliation).toBe('matched');
    expect(store.verifyChain().ok).toBe(true);
    expect(store.checkProjection().ok).toBe(true);
  });

  it('voids a payment the cloud declined after approving it offline', () => {
    const { store } = setup();
    const { payment } = store.createPayment(newPayment('k-1'));
    ackPayments(store);
    store.batches.close();
    const record = batchRecord(store);
    const answer = agreeingAnswer(record);
    answer.payments = answer.payments.map((p) => ({ ...p, state: 'declined' as const }));
    store.applyAcks([{ key: record.key, status: 'accepted', batch: answer } as never]);
    const [exception] = store.batches.exceptions();
    expect(exception?.kind).toBe('state_differs');
    store.batches.resolve(exception?.id ?? 0, 'void', 'cloud declined it');
    expect(store.getPayment(payment.id)?.state).toBe('canceled');
    expect(store.nextPending(100).map((r) => r.key)).toContain('k-1.void');
    expect(store.checkProjection().ok).toBe(true);
  });

  it('finds an edited batch row (POS221) and an edited batch event (POS220)', () => {
    const { store, path } = setup();
    store.createPayment(newPayment('k-1'));
    ackPayments(store);
    const closed = store.batches.close();
    const raw = rawConnection(path);
    raw.prepare("UPDATE batches SET reconciliation = 'matched' WHERE id = ?").run(closed.batch.id);
    const projection = store.checkProjection();
    expect(projection.ok).toBe(false);
    expect(projection.ok ? [] : projection.problems.join('\n')).toMatch(/reconciliation/);
    raw.exec('DROP TRIGGER batch_events_no_update');
    raw.prepare("UPDATE batch_events SET data = json_set(data, '$.forced', json('true'))").run();
    raw.close();
    const chain = store.verifyChain();
    expect(chain.ok).toBe(false);
  });

  it('puts existing payments into an initial batch on upgrade from schema 4', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const path = join(dir, 'agent.db');
    openDatabase(path, { migrations: MIGRATIONS.slice(0, 4) }).close();
    const raw = rawConnection(path);
    raw
      .prepare(
        `INSERT INTO payments (id, idempotency_key, amount_minor, currency, state, created_at,
          updated_at) VALUES (?, 'old-1', 100, 'EUR', 'canceled', ?, ?)`,
      )
      .run(
        'pay_01890000-0000-7000-8000-000000000001',
        '2026-01-01T00:00:00.000Z',
        '2026-01-01T00:00:00.000Z',
      );
    raw.close();
    const store = PaymentStore.open({ path });
    cleanups.push(() => store.close());
    const batch = store.batches.current();
    expect(batch.state).toBe('open');
    expect(batch.openedAt).toBe('2026-01-01T00:00:00.000Z');
    expect(batch.totals.count).toBe(1);
    expect(batch.totals.byState.not_completed).toEqual({ EUR: { count: 1, amountMinor: 100 } });
    store.createPayment(newPayment('k-1'));
    expect(store.batches.current().totals.count).toBe(2);
  });

  it('compares per payment and per totals (pure)', () => {
    const here = [
      {
        key: 'a',
        paymentId: null,
        amountMinor: 100,
        currency: 'EUR',
        brand: 'visa',
        state: 'declined' as const,
      },
    ];
    const answer: CloudBatchAnswer = {
      id: 'bat_x',
      kind: 'close',
      asOf: '2026-11-21T09:00:00.000Z',
      totals: { count: 2, byCurrency: {}, byBrand: {}, byState: {} },
      payments: [
        { key: 'a', amountMinor: 100, currency: 'EUR', state: 'charged' },
        { key: 'b', amountMinor: 300, currency: 'EUR', state: 'charged' },
      ],
    };
    expect(compareBatch(here, answer).map((f) => f.kind)).toEqual([
      'charged_declined_here',
      'missing_here',
    ]);
  });
});
