/**
 * Crash and restart (issue 3 §7): payments left mid-flight — as a crash leaves them, taken step by
 * step through the store and then abandoned — are each in a defined state when a real agent
 * starts on the same data directory, and the POS app sees them through `GET /v1/payments`.
 * Since issue 9 §2 a payment before its decision is a draft in memory, so a crash there leaves
 * nothing (nobody was told anything); an interrupted authorization is declined and voided.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { sweepForPans } from '../helpers/leak-sweep.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';
import { newPayment, rawConnection, sealedBlob, tokenFor } from '../store-forward/helpers.js';

let rig: Rig | undefined;
let dir: string | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const card = (seed: number) => ({ ...newPayment('x').card, token: tokenFor(seed) });

describe('recovery at start-up', () => {
  it('brings every payment a crash left mid-flight into a final state, visible through GET /v1/payments', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-recovery-'));
    const dataDir = path.join(dir, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    const store = PaymentStore.open({ path: path.join(dataDir, 'agent.db') });
    const start = (key: string) =>
      store.startPayment({
        idempotencyKey: key,
        amountMinor: 1000,
        currency: 'EUR',
        offlineMode: 'prefer_online',
      }).payment.id;
    const awaitingCard = start('crash-awaiting-card');
    const cardRead = start('crash-card-read');
    store.recordCardRead(cardRead, card(1), { sealed: sealedBlob(1) });
    const awaitingPin = start('crash-awaiting-pin');
    store.recordCardRead(awaitingPin, card(2), { sealed: sealedBlob(2) });
    store.recordStep(awaitingPin, 'pin_requested');
    const authorizing = start('crash-authorizing');
    store.recordCardRead(authorizing, card(3), { sealed: sealedBlob(3) });
    store.recordStep(authorizing, 'authorization_requested');
    const inFlight = start('crash-in-flight');
    store.recordCardRead(inFlight, card(4));
    store.storeOffline(inFlight, rigPolicy, { ambiguous: false });
    // The crash: the process ends without any of these reaching an outcome.
    store.close();
    // A database left by an agent before issue 9, which wrote "in flight" to the outbox: start-up
    // releases the row and the record is sent again.
    const raw = rawConnection(path.join(dataDir, 'agent.db'));
    raw
      .prepare(
        "UPDATE outbox SET state = 'in_flight', batch_id = 'batch-before-crash', attempts = 1 WHERE key = ?",
      )
      .run('crash-in-flight');
    raw.close();

    rig = await startRig({ dataDir });
    const r = rig;
    const answer = await r.request('GET', '/v1/payments');
    expect(answer.status).toBe(200);
    const byKey = new Map(
      (answer.json.payments as Record<string, unknown>[]).map((p) => [p.idempotencyKey, p]),
    );
    expect(byKey.size).toBe(2);
    for (const [key, id] of [
      ['crash-awaiting-card', awaitingCard],
      ['crash-card-read', cardRead],
      ['crash-awaiting-pin', awaitingPin],
    ] as const) {
      // Drafts: gone with the process, their keys free for the POS app's retry.
      expect(byKey.has(key)).toBe(false);
      expect((await r.request('GET', `/v1/payments/${id}`)).status).toBe(404);
    }
    expect(byKey.get('crash-authorizing')).toMatchObject({
      id: authorizing,
      state: 'declined',
      declineCode: 'authorization_interrupted',
    });
    // The record in flight at the crash is sent again; the void of the interrupted authorization
    // reaches the cloud under the payment's own key.
    await r.waitFor(() => r.agent.store.queueStats().depth === 0);
    expect(r.agent.store.queueStats()).toMatchObject({ acked: 2, dead: 0 });
    expect(r.cloud.records().get('crash-authorizing')).toMatchObject({ voided: true });
    expect(r.cloud.records().get('crash-in-flight')).toMatchObject({ outcome: 'approved' });
    expect(r.agent.store.getPayment(inFlight)).toMatchObject({
      state: 'approved',
      approval: 'offline',
    });
    expect(r.cloud.charges()).toEqual(['crash-in-flight']);
    const final = ['approved', 'declined', 'confirmed', 'reversed', 'canceled', 'failed'];
    const after = await r.request('GET', '/v1/payments');
    for (const p of after.json.payments as { state: string }[]) {
      expect(final).toContain(p.state);
    }
    expect(r.agent.store.verifyChain().ok).toBe(true);
    expect(r.agent.store.checkProjection().ok).toBe(true);
    expect(
      sweepForPans(r.answers.map((text, i) => ({ source: `answer ${i}`, content: text }))),
    ).toEqual([]);
  });
});

const rigPolicy = {
  perTransactionLimitMinor: { EUR: 10_000 },
  totalLimitMinor: { EUR: 500_000 },
  maxCount: 500,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};
