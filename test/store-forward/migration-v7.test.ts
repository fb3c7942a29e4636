/**
 * Migration 7 (fewer b-trees per payment commit): a version 6 file with payments in every kind of
 * state upgrades with every row kept and every check passing; the rules the dropped indexes and
 * foreign key carried are still enforced by triggers; and the queries the agent runs on the
 * rebuilt tables and on the payment list stay index-backed (issue 9 §6: flat in table size).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../store-forward/database.js';
import { StoreKernel } from '../../store-forward/kernel.js';
import { MIGRATIONS } from '../../store-forward/migrations/index.js';
import { PAYMENT_STATES } from '../../store-forward/model.js';
import { SqliteOutbox } from '../../store-forward/outbox.js';
import { PaymentDrafts } from '../../store-forward/payment-drafts.js';
import { PaymentLifecycle } from '../../store-forward/payment-lifecycle.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { purgeSettled } from '../../store-forward/purge.js';
import { SQL } from '../../store-forward/sql.js';
import {
  freshStore,
  newPayment,
  rawConnection,
  sealedBlob,
  storeClock,
  tempDir,
} from './helpers.js';

const POLICY = {
  perTransactionLimitMinor: { EUR: 1_000_000 },
  totalLimitMinor: { EUR: 100_000_000 },
  maxCount: 1000,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

/** Every row of the tables migration 7 rebuilds or whose totals its triggers keep, in order. */
function snapshot(path: string): Record<string, unknown[]> {
  const raw = rawConnection(path);
  try {
    const tables: Record<string, string> = {
      payments: 'id',
      events: 'seq',
      outbox: 'seq',
      sealed_cards: 'payment_id',
      purged_payments: 'id',
      purged_events: 'seq',
      chain_head: 'id',
      outbox_counts: 'state',
      offline_exposure: 'currency',
    };
    return Object.fromEntries(
      Object.entries(tables).map(([table, order]) => [
        table,
        raw.prepare(`SELECT * FROM ${table} ORDER BY ${order}`).all(),
      ]),
    );
  } finally {
    raw.close();
  }
}

/** Fills a version 6 file through the store's own lifecycle, outbox and retention code. */
function fillVersion6(path: string): void {
  const db = openDatabase(path, { migrations: MIGRATIONS.slice(0, 6) });
  const clock = storeClock();
  const k = new StoreKernel(db, path, clock);
  const outbox = new SqliteOutbox(k);
  const life = new PaymentLifecycle(k, outbox, new PaymentDrafts(), 72 * 3_600_000);
  const begin = (key: string, mode: 'force_offline' | 'prefer_online') => {
    const input = newPayment(key);
    const { payment } = life.startPayment({
      idempotencyKey: key,
      amountMinor: input.amountMinor,
      currency: input.currency,
      offlineMode: mode,
    });
    life.recordCardRead(payment.id, input.card, { sealed: sealedBlob(key.length) });
    return payment.id;
  };
  try {
    for (let i = 0; i < 6; i++)
      life.storeOffline(begin(`off-${i}`, 'force_offline'), POLICY, {
        ambiguous: false,
      });
    const online = begin('on-1', 'prefer_online');
    life.recordStep(online, 'authorization_requested');
    life.recordOnlineOutcome(online, { outcome: 'approved', authCode: 'A1' });
    const declined = begin('on-2', 'prefer_online');
    life.recordStep(declined, 'authorization_requested');
    life.recordOnlineOutcome(declined, { outcome: 'declined', declineCode: '05' });
    const canceled = begin('off-cancel', 'force_offline');
    life.storeOffline(canceled, POLICY, { ambiguous: false });
    life.cancelPayment(canceled, 'customer left');
    // Acked (sealed data gone), rejected (dead), and one acked long ago and purged.
    outbox.applyAcks([
      { key: 'off-0', status: 'accepted' },
      { key: 'off-1', status: 'accepted', outcome: 'approved', authCode: 'Z9' },
      { key: 'off-2', status: 'rejected', code: 'bad', reason: 'rejected by the cloud' },
      { key: 'on-1', status: 'accepted' },
    ]);
    clock.advance(40 * 24 * 3_600_000);
    const purged = purgeSettled(k, k.now(), {});
    expect(purged.payments).toBeGreaterThan(0);
  } finally {
    k.close();
  }
}

describe('migration 7: fewer b-trees per payment commit', () => {
  it('upgrades a version 6 file with data: every row kept, chain, projection and file verify', () => {
    const { dir, cleanup } = tempDir();
    const path = join(dir, 'agent.db');
    try {
      fillVersion6(path);
      const before = snapshot(path);
      expect(before.sealed_cards?.length).toBeGreaterThan(0); // control: there is data to keep
      expect(before.purged_events?.length).toBeGreaterThan(0);

      const store = PaymentStore.open({ path, clock: storeClock('2027-01-10T09:00:00.000Z') });
      try {
        expect(store.integrity.verifyChain().ok).toBe(true);
        expect(store.integrity.checkProjection().ok).toBe(true);
        expect(store.integrity.quickCheck().ok).toBe(true);
        // The upgraded store keeps working: a new offline payment queues after the old ones.
        const { payment } = store.startPayment({
          idempotencyKey: 'after-upgrade',
          amountMinor: 500,
          currency: 'EUR',
          offlineMode: 'force_offline',
        });
        store.recordCardRead(payment.id, newPayment('x').card, { sealed: sealedBlob(3) });
        store.storeOffline(payment.id, POLICY, { ambiguous: false });
        expect(store.integrity.verifyChain().ok).toBe(true);
      } finally {
        store.close();
      }
      const after = snapshot(path);
      for (const table of Object.keys(before)) {
        if (['chain_head', 'outbox_counts', 'offline_exposure'].includes(table)) continue;
        expect(after[table]?.slice(0, before[table]?.length), table).toEqual(before[table]);
      }
      const raw = rawConnection(path);
      try {
        expect(raw.pragma('user_version', { simple: true })).toBe(7);
        expect(raw.pragma('foreign_key_check')).toEqual([]);
        // The queue's counts, now columns of chain_head, agree with the rows (dead and pending
        // records exist; the acked ones were purged) and moved with the new record.
        const counted = raw
          .prepare('SELECT state, count(*) AS n FROM outbox GROUP BY state ORDER BY state')
          .all();
        expect(counted.map((r) => (r as { state: string }).state)).toEqual(['dead', 'pending']);
        expect(
          raw.prepare('SELECT state, n FROM outbox_counts WHERE n > 0 ORDER BY state').all(),
        ).toEqual(counted);
        // The head still only moves forward; the counts beside it are not the head.
        expect(() => raw.exec('UPDATE chain_head SET hash = zeroblob(32)')).toThrow(/POS220/);
        expect(() => raw.exec('UPDATE chain_head SET seq = seq + 2')).toThrow(/POS220/);
        const last = raw.prepare('SELECT max(seq) AS s FROM outbox').get() as { s: number };
        const oldMax = Math.max(...(before.outbox as { seq: number }[]).map((r) => r.seq));
        expect(last.s).toBeGreaterThan(oldMax);
      } finally {
        raw.close();
      }
    } finally {
      cleanup();
    }
  });

  it('drops the hash, outbox seq and event indexes and the rowid of sealed_cards', () => {
    const fx = freshStore();
    const raw = rawConnection(fx.path);
    try {
      const indexes = (table: string) =>
        raw
          .prepare(`SELECT name FROM pragma_index_list(?) ORDER BY name`)
          .all(table)
          .map((r) => (r as { name: string }).name);
      expect(indexes('events')).toEqual(['events_by_payment']);
      expect(indexes('outbox')).toHaveLength(3); // key, (payment_id, type), outbox_by_state
      expect(indexes('sealed_cards')).toHaveLength(1); // its primary key, the table itself
      expect(indexes('payments')).not.toContain('payments_by_created');
      const sealedSql = raw
        .prepare("SELECT sql FROM sqlite_schema WHERE name = 'sealed_cards'")
        .pluck()
        .get() as string;
      expect(sealedSql).toMatch(/WITHOUT ROWID/);
    } finally {
      raw.close();
      fx.close();
    }
  });

  it('still refuses a second outbox record of one event and deleting an event a record names', () => {
    const fx = freshStore();
    try {
      const { payment } = fx.store.startPayment({
        idempotencyKey: 'k-1',
        amountMinor: 100,
        currency: 'EUR',
        offlineMode: 'force_offline',
      });
      fx.store.recordCardRead(payment.id, newPayment('k-1').card);
      fx.store.storeOffline(payment.id, POLICY, { ambiguous: false });
      const raw = rawConnection(fx.path);
      try {
        const row = raw.prepare('SELECT * FROM outbox').get() as Record<string, unknown>;
        const insert = raw.prepare(`INSERT INTO outbox (key, seq, payment_id, event_seq, type,
            state, attempts, created_at, updated_at)
          VALUES (@key, @seq, @payment_id, @event_seq, @type, 'pending', 0, @at, @at)`);
        const values = {
          key: 'void-k-1',
          seq: (row.seq as number) + 1,
          payment_id: row.payment_id,
          type: 'void',
          at: row.created_at,
        };
        const lastEvent = raw.prepare('SELECT max(seq) FROM events').pluck().get() as number;
        const firstEvent = raw.prepare('SELECT min(seq) FROM events').pluck().get() as number;
        expect(row.event_seq).toBe(lastEvent);
        // The same event again: refused; another event of the payment: accepted (control).
        expect(() => insert.run({ ...values, event_seq: row.event_seq })).toThrow(/POS215/);
        expect(() => insert.run({ ...values, event_seq: firstEvent })).not.toThrow();
        // An event a record names stays, even with a retention link for it: give every event
        // of the payment a link (the tombstone's own rules bypassed, the payment is not settled).
        raw.pragma('foreign_keys = OFF');
        raw.exec('DROP TRIGGER purged_events_copy_of_event');
        raw
          .prepare(
            `INSERT INTO purged_events (seq, payment_id, prev_hash, hash)
            SELECT seq, payment_id, prev_hash, hash FROM events WHERE payment_id = ?`,
          )
          .run(row.payment_id as string);
        const del = raw.prepare('DELETE FROM events WHERE seq = ?');
        expect(() => del.run(row.event_seq as number)).toThrow(/no outbox record names.*POS220/);
        expect(() => del.run(firstEvent)).toThrow(/no outbox record names/); // the void's event
        expect(del.run(lastEvent - 1).changes).toBe(1); // control: linked, named by no record
      } finally {
        raw.close();
      }
    } finally {
      fx.close();
    }
  });

  it('keeps the payment list, the queue and the chain queries index-backed (no scan, no sort)', () => {
    const fx = freshStore();
    const raw = rawConnection(fx.path);
    try {
      const plan = (name: keyof typeof SQL, params: unknown[]): string =>
        raw
          .prepare(`EXPLAIN QUERY PLAN ${SQL[name]}`)
          .all(...params)
          .map((r) => (r as { detail: string }).detail)
          .join(' | ');
      const named = {
        listPayments: [{ a: '~', b: '~', n: 10 }],
        listPaymentsByState: ['stored', '~', '~', 10],
        paymentByKey: ['k'],
        paymentById: ['pay_x'],
        eventsOfPayment: ['pay_x'],
        outboxByKey: ['k'],
        outboxOfPayment: ['pay_x'],
        lastOutboxSeqOf: ['pay_x'],
        deadOutbox: [],
        nextPending: [0, 10],
        oldestQueued: [],
        countByState: [],
        offlineExposure: [],
        offlineEarliestDeadline: [],
        chainHead: [],
      } satisfies Partial<Record<keyof typeof SQL, unknown[]>>;
      for (const [name, params] of Object.entries(named)) {
        const text = plan(name as keyof typeof SQL, params);
        // A full scan of a growing table, or a sort of its rows, would grow with the table.
        expect(text, name).not.toMatch(/SCAN (payments|events|outbox|sealed_cards)\b/);
        // A sort of one payment's few rows, or of the list's 12 per-state pages (≤ limit each),
        // is bounded; a sort of the queue or of a state's list would not be.
        if (!name.endsWith('OfPayment') && name !== 'listPayments') {
          expect(text, name).not.toMatch(/TEMP B-TREE/);
        }
      }
      // The list walks its index backwards; the queue its state index in seq order.
      const list = plan('listPayments', [{ a: '~', b: '~', n: 10 }]);
      expect(
        list.match(/SEARCH payments USING COVERING INDEX payments_by_state_created/g),
      ).toHaveLength(PAYMENT_STATES.length);
      expect(plan('listPaymentsByState', named.listPaymentsByState)).toMatch(
        /payments_by_state_created/,
      );
      expect(plan('nextPending', named.nextPending)).toMatch(/outbox_by_state/);
      expect(plan('deadOutbox', named.deadOutbox)).toMatch(/outbox_by_state/);
    } finally {
      raw.close();
      fx.close();
    }
  });

  it('lists payments of mixed states newest first, page by page, without payments_by_created', () => {
    const fx = freshStore();
    try {
      const { store } = fx;
      for (let i = 0; i < 9; i++) {
        const key = `mixed-${i}`;
        const { payment } = store.startPayment({
          idempotencyKey: key,
          amountMinor: 100 + i,
          currency: 'EUR',
          offlineMode: i % 3 === 0 ? 'force_offline' : 'prefer_online',
        });
        store.recordCardRead(payment.id, newPayment(key).card);
        if (i % 3 === 0) store.storeOffline(payment.id, POLICY, { ambiguous: false });
        else if (i % 3 === 1) store.cancelPayment(payment.id, 'customer left');
        else {
          store.recordStep(payment.id, 'authorization_requested');
          store.recordOnlineOutcome(payment.id, { outcome: 'declined', declineCode: '05' });
        }
      }
      const raw = rawConnection(fx.path);
      const expected = raw
        .prepare('SELECT id FROM payments ORDER BY created_at DESC, id DESC')
        .pluck()
        .all();
      raw.close();
      expect(new Set(store.listPayments().map((p) => p.state)).size).toBe(3); // control
      const seen: string[] = [];
      let before: string | undefined;
      for (let page = 0; page < 10; page++) {
        const { payments, next } = store.listPaymentPage({ limit: 2, before });
        seen.push(...payments.map((p) => p.id));
        if (next === null) break;
        before = next;
      }
      expect(seen).toEqual(expected);
    } finally {
      fx.close();
    }
  });
});
