/**
 * The offline exposure as a running total (migration 6, issue 9): the triggers keep
 * `offline_exposure` equal to what a GROUP BY over the payments says, after any sequence of
 * offline approvals, online approvals, settlements by the cloud, voids and declines; the offline
 * caps decide on it; the integrity pass finds it edited; and a version 5 database upgraded to 6
 * keeps its payments and starts with the right total.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { openDatabase } from '../../store-forward/database.js';
import { MIGRATIONS } from '../../store-forward/migrations/index.js';
import { V6 } from '../../store-forward/migrations/v6.js';
import { OFFLINE_OPEN_STATES, type AckResult } from '../../store-forward/model.js';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { freshStore, newPayment, rawConnection, storeClock, tempDir } from './helpers.js';

/** Caps that a few payments of 100–300 reach, so the policy declines some of them. */
const POLICY: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 300, USD: 300 },
  totalLimitMinor: { EUR: 700, USD: 500 },
  maxCount: 5,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

const COUNTED = `SELECT currency, count(*) AS n, sum(amount_minor) AS total,
    min(forwarding_deadline_at) AS deadline
  FROM payments NOT INDEXED WHERE approval = 'offline'
    AND state IN ('stored', 'forwarded', 'confirmed')
  GROUP BY currency ORDER BY currency`;

type Op =
  | { kind: 'offline'; amount: number; usd: boolean; ambiguous: boolean }
  | { kind: 'online'; amount: number; usd: boolean; approve: boolean }
  | { kind: 'ack'; pick: number; outcome: 'approved' | 'declined' | null }
  | { kind: 'cancel'; pick: number };

const amount = fc.integer({ min: 1, max: 3 }).map((n) => n * 100);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('offline' as const),
    amount,
    usd: fc.boolean(),
    ambiguous: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('online' as const),
    amount,
    usd: fc.boolean(),
    approve: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('ack' as const),
    pick: fc.nat(50),
    outcome: fc.constantFrom('approved', 'declined', null) as fc.Arbitrary<
      'approved' | 'declined' | null
    >,
  }),
  fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat(50) }),
);

describe('offline exposure running total (migration 6)', () => {
  it('lists exactly OFFLINE_OPEN_STATES in every state list of the migration', () => {
    const lists = [...V6.sql.matchAll(/state IN \(([^)]*)\)/g)].map((m) => m[1]);
    expect(lists.length).toBeGreaterThanOrEqual(7);
    const expected = OFFLINE_OPEN_STATES.map((s) => `'${s}'`).join(', ');
    for (const list of lists) expect(list).toBe(expected);
  });

  it('equals the GROUP BY over the payments after any sequence of approvals, settlements and voids', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 30 }), (ops) => {
        const fx = freshStore({ memory: true });
        const raw = rawConnection(fx.path);
        try {
          let n = 0;
          for (const step of ops) {
            const key = `key-${n++}`;
            switch (step.kind) {
              case 'offline':
              case 'online': {
                const card = newPayment(key).card;
                const { payment } = fx.store.startPayment({
                  idempotencyKey: key,
                  amountMinor: step.amount,
                  currency: step.usd ? 'USD' : 'EUR',
                  offlineMode: step.kind === 'offline' ? 'force_offline' : 'prefer_online',
                });
                fx.store.recordCardRead(payment.id, card);
                if (step.kind === 'offline') {
                  const before = fx.store.offlineExposure();
                  const { decision } = fx.store.storeOffline(payment.id, POLICY, {
                    ambiguous: step.ambiguous,
                  });
                  const stored = before.byCurrency[payment.currency]?.amountMinor ?? 0;
                  const fits =
                    stored + step.amount <= (POLICY.totalLimitMinor[payment.currency] ?? 0) &&
                    before.count + 1 <= POLICY.maxCount;
                  expect(decision.ok).toBe(fits);
                } else {
                  fx.store.recordStep(payment.id, 'authorization_requested');
                  fx.store.recordOnlineOutcome(
                    payment.id,
                    step.approve
                      ? { outcome: 'approved', authCode: 'A1' }
                      : { outcome: 'declined' },
                  );
                }
                break;
              }
              case 'ack': {
                const keys = raw
                  .prepare("SELECT key FROM outbox WHERE state = 'pending' ORDER BY seq")
                  .all() as { key: string }[];
                const target = keys[step.pick % Math.max(keys.length, 1)];
                if (target === undefined) break;
                const result: AckResult = {
                  key: target.key,
                  status: 'accepted',
                  ...(step.outcome === null ? {} : { outcome: step.outcome }),
                };
                fx.store.applyAcks([result]);
                break;
              }
              case 'cancel': {
                const ids = raw.prepare('SELECT id FROM payments ORDER BY id').all() as {
                  id: string;
                }[];
                const target = ids[step.pick % Math.max(ids.length, 1)];
                if (target === undefined) break;
                try {
                  fx.store.cancelPayment(target.id, 'customer changed their mind');
                } catch (error) {
                  // A settled or final payment cannot be canceled: the state machine says so.
                  if (!isAgentError(error, 'POS212')) throw error;
                }
                break;
              }
            }
            const counted = raw.prepare(COUNTED).all() as {
              currency: string;
              n: number;
              total: number;
              deadline: string;
            }[];
            const exposure = fx.store.offlineExposure();
            expect(exposure.byCurrency).toEqual(
              Object.fromEntries(
                counted.map((r) => [r.currency, { amountMinor: r.total, count: r.n }]),
              ),
            );
            expect(exposure.count).toBe(counted.reduce((sum, r) => sum + r.n, 0));
            const earliest = counted.map((r) => r.deadline).sort()[0] ?? null;
            expect(exposure.earliestDeadlineAt).toBe(earliest);
          }
          expect(fx.store.checkProjection().ok).toBe(true);
        } finally {
          raw.close();
          fx.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('is found by the integrity pass when someone edits the running total', () => {
    const fx = freshStore();
    const raw = rawConnection(fx.path);
    try {
      const { payment } = fx.store.startPayment({
        idempotencyKey: 'edited',
        amountMinor: 200,
        currency: 'EUR',
        offlineMode: 'force_offline',
      });
      fx.store.recordCardRead(payment.id, newPayment('edited').card);
      fx.store.storeOffline(payment.id, POLICY, { ambiguous: false });
      // Control: untouched, the check passes.
      expect(fx.store.checkProjection()).toEqual({ ok: true, payments: 1 });
      raw.prepare("UPDATE offline_exposure SET total_minor = 0 WHERE currency = 'EUR'").run();
      const report = fx.store.checkProjection();
      expect(report.ok).toBe(false);
      expect(JSON.stringify(report)).toMatch(/offline exposure of EUR.*200.*POS221/);
      expect(fx.store.integrity.verifySinceCheckpoint().projection.ok).toBe(false);
    } finally {
      raw.close();
      fx.close();
    }
  });

  it('upgrades a version 5 database: keeps its payments and starts from their exposure', () => {
    const { dir, cleanup } = tempDir();
    const path = join(dir, 'agent.db');
    try {
      const v5 = openDatabase(path, { migrations: MIGRATIONS.slice(0, 5) });
      const insert = v5.prepare(`INSERT INTO payments (id, idempotency_key, amount_minor, currency,
          state, card_token, card_first6, card_brand, card_last4, card_expiry_month,
          card_expiry_year, card_entry_mode, created_at, updated_at, forwarding_deadline_at,
          approval, offline_mode)
        VALUES (?, ?, ?, ?, ?, 'tok_abcdefghijklmnopqrstuvwxyz234567', '411111', 'visa', '1111',
          12, 2030, 'chip', ?, ?, ?, ?, 'prefer_online')`);
      const rows: [string, number, string, string, string | null, string][] = [
        ['stored', 150, 'EUR', '2026-11-24T09:00:00.000Z', 'offline', 'k1'],
        ['forwarded', 250, 'EUR', '2026-11-24T08:00:00.000Z', 'offline', 'k2'],
        ['confirmed', 70, 'USD', '2026-11-24T10:00:00.000Z', 'offline', 'k3'],
        ['approved', 999, 'EUR', '2026-11-24T07:00:00.000Z', 'offline', 'k4'],
        ['approved', 500, 'EUR', '2026-11-24T06:00:00.000Z', 'online', 'k5'],
      ];
      rows.forEach(([state, amountMinor, currency, deadline, approval, key], i) => {
        insert.run(
          `pay_00000000-0000-7000-8000-00000000000${i}`,
          key,
          amountMinor,
          currency,
          state,
          '2026-11-21T09:00:00.000Z',
          '2026-11-21T09:00:01.000Z',
          deadline,
          approval,
        );
      });
      v5.close();

      const store = PaymentStore.open({ path, clock: storeClock() });
      try {
        expect(store.listPayments()).toHaveLength(5);
        expect(store.offlineExposure()).toEqual({
          count: 3,
          byCurrency: { EUR: { amountMinor: 400, count: 2 }, USD: { amountMinor: 70, count: 1 } },
          earliestDeadlineAt: '2026-11-24T08:00:00.000Z',
        });
      } finally {
        store.close();
      }
      const raw = rawConnection(path);
      try {
        expect(raw.pragma('user_version', { simple: true })).toBeGreaterThanOrEqual(6);
        const indexes = raw
          .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'payments'")
          .all()
          .map((r) => (r as { name: string }).name);
        expect(indexes).toContain('payments_offline_open');
        expect(indexes).not.toContain('payments_by_approval');
      } finally {
        raw.close();
      }
    } finally {
      cleanup();
    }
  });
});
