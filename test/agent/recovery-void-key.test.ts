/**
 * Regression (review B1) through a real agent: the local API refuses an Idempotency-Key in the
 * void-record namespace (`<key>.void`) with 400 naming the rule, and a database holding one
 * payment that recovery cannot bring to a final state still lets the agent start, with every
 * other interrupted payment recovered.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';
import { newPayment, rawConnection, tokenFor } from '../store-forward/helpers.js';

let rig: Rig | undefined;
let dir: string | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const card = (seed: number) => ({ ...newPayment('x').card, token: tokenFor(seed) });

describe('void-record keys and recovery at start-up', () => {
  it('POST /v1/payments with an Idempotency-Key ending in ".void" → 400 naming the rule, nothing stored', async () => {
    rig = await startRig();
    const answer = await rig.request('POST', '/v1/payments', {
      body: { amount: 700, currency: 'EUR' },
      headers: { 'idempotency-key': 'order-1234.void' },
    });
    expect(answer.status).toBe(400);
    expect((answer.json.error as { message: string }).message).toMatch(
      /Idempotency-Key must not end in "\.void"/,
    );
    expect(rig.agent.store.getPaymentByKey('order-1234.void')).toBeUndefined();
  });

  it('starts although one interrupted payment cannot be recovered; the others are recovered', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-recovery-void-'));
    const dataDir = path.join(dir, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    const dbPath = path.join(dataDir, 'agent.db');
    const store = PaymentStore.open({ path: dbPath });
    const start = (key: string) =>
      store.startPayment({
        idempotencyKey: key,
        amountMinor: 1000,
        currency: 'EUR',
        offlineMode: 'prefer_online',
      }).payment.id;
    const other = start('lane-other-0001');
    store.recordCardRead(other, card(1));
    store.declineLocally(other, 'offline_not_allowed', 'test', { voidRecord: false });
    const blocked = start('crash-blocked-01');
    store.recordCardRead(blocked, card(2));
    store.recordStep(blocked, 'authorization_requested');
    const authorizing = start('crash-authorizing');
    store.recordCardRead(authorizing, card(3));
    store.recordStep(authorizing, 'authorization_requested');
    store.close();
    // As an older agent could leave it: the key the blocked payment's void record needs is taken.
    const raw = rawConnection(dbPath);
    try {
      const { seq } = raw
        .prepare("SELECT seq FROM events WHERE payment_id = ? AND type = 'declined'")
        .get(other) as { seq: number };
      raw
        .prepare(
          `INSERT INTO outbox (key, seq, payment_id, event_seq, type, state, attempts, created_at, updated_at)
           VALUES ('crash-blocked-01', 1, ?, ?, 'void', 'pending', 0, '2026-11-21T09:00:00.000Z', '2026-11-21T09:00:00.000Z')`,
        )
        .run(other, seq);
    } finally {
      raw.close();
    }

    rig = await startRig({ dataDir });
    const r = rig;
    const answer = await r.request('GET', '/v1/payments');
    expect(answer.status).toBe(200);
    const byKey = new Map(
      (answer.json.payments as Record<string, unknown>[]).map((p) => [p.idempotencyKey, p]),
    );
    expect(byKey.get('crash-authorizing')).toMatchObject({
      id: authorizing,
      state: 'declined',
      declineCode: 'authorization_interrupted',
    });
    expect(byKey.get('crash-blocked-01')).toMatchObject({ id: blocked, state: 'authorizing' });
    await r.waitFor(() => r.agent.store.queueStats().depth === 0);
    expect(r.cloud.records().get('crash-authorizing')).toMatchObject({ voided: true });
  });
});
