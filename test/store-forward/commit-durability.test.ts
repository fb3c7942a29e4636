/**
 * A payment commits as few times as its safety needs (issue 9 §2): offline ONE commit (payment,
 * card token, events, approval, outbox row), online TWO (before the authorization request
 * leaves, and with the outcome); the steps before the decision are a draft in memory. Every
 * commit waits for the disk (synchronous=FULL, never switched).
 *
 * Counted from the WAL file itself: SQLite marks the last frame of each committed transaction
 * with the database size in its header (https://sqlite.org/fileformat.html §4.1), so the commit
 * frames of the current WAL generation are the commits since the last checkpoint.
 */
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';
import type { PaymentStore } from '../../store-forward/payment-store.js';
import { freshStore, newPayment, sealedBlob, tokenFor } from './helpers.js';

let fx: ReturnType<typeof freshStore> | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  fx?.close();
  fx = undefined;
});

const policy: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 10_000 },
  totalLimitMinor: { EUR: 500_000 },
  maxCount: 500,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

/**
 * Commit frames in the WAL at `path`-wal: frames of the header's salt whose "database size after
 * commit" field is non-zero. WAL header: 32 bytes, page size at 8, salts at 16 and 20; each frame:
 * 24-byte header (commit size at 4, salts at 8 and 12) + one page.
 */
function walCommits(path: string): number {
  const wal = readFileSync(`${path}-wal`);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salt1 || wal.readUInt32BE(at + 12) !== salt2) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits += 1;
  }
  return commits;
}

/** The commits `fn` made, and the synchronous levels the store set meanwhile (none expected). */
function commitsOf(path: string, fn: () => void): { commits: number; syncSwitches: string[] } {
  const switches: string[] = [];
  const original = Database.prototype.pragma;
  const spy = vi.spyOn(Database.prototype, 'pragma').mockImplementation(function (
    this: Database.Database,
    source: string,
    options?: Database.PragmaOptions,
  ) {
    if (source.startsWith('synchronous')) switches.push(source.replace(/\s+/g, ''));
    return original.call(this, source, options);
  });
  const before = walCommits(path);
  try {
    fn();
  } finally {
    spy.mockRestore();
  }
  return { commits: walCommits(path) - before, syncSwitches: switches };
}

const card = (seed: number) => ({ ...newPayment('x').card, token: tokenFor(seed) });

function start(store: PaymentStore, key: string, offlineMode: 'force_offline' | 'prefer_online') {
  return store.startPayment({
    idempotencyKey: key,
    amountMinor: 1000,
    currency: 'EUR',
    offlineMode,
  }).payment.id;
}

describe('commits per payment', () => {
  it('control: one createPayment is one commit in the WAL count', () => {
    fx = freshStore();
    const { store, path } = fx;
    expect(commitsOf(path, () => store.createPayment(newPayment('control-1')))).toEqual({
      commits: 1,
      syncSwitches: [],
    });
  });

  it('an offline payment: ONE FULL commit holds the payment, its card, its events and its outbox row', () => {
    fx = freshStore();
    const { store, path } = fx;
    let id = '';
    const counted = commitsOf(path, () => {
      id = start(store, 'offline-1', 'force_offline');
      store.recordCardRead(id, card(1), { sealed: sealedBlob(1) });
      store.storeOffline(id, policy, { ambiguous: false });
    });
    expect(counted).toEqual({ commits: 1, syncSwitches: [] });
    expect(store.getPayment(id)).toMatchObject({ state: 'stored', approval: 'offline' });
    expect(store.listEvents(id).map((e) => e.type)).toEqual([
      'payment_started',
      'card_read',
      'payment_stored',
    ]);
    expect(store.nextPending(10).map((r) => r.key)).toEqual(['offline-1']);
    expect(store.checkProjection()).toMatchObject({ ok: true });
    expect(store.verifyChain()).toMatchObject({ ok: true });
  });

  it('an online payment with PIN: one commit before the request leaves, one with the outcome', () => {
    fx = freshStore();
    const { store, path } = fx;
    let id = '';
    const beforeRequest = commitsOf(path, () => {
      id = start(store, 'online-1', 'prefer_online');
      store.recordCardRead(id, card(2), { sealed: sealedBlob(2) });
      store.recordStep(id, 'pin_requested');
      store.recordStep(id, 'authorization_requested');
    });
    expect(beforeRequest).toEqual({ commits: 1, syncSwitches: [] });
    expect(store.getPayment(id)?.state).toBe('authorizing');
    const outcome = commitsOf(path, () =>
      store.recordOnlineOutcome(id, { outcome: 'approved', authCode: 'A1' }),
    );
    expect(outcome).toEqual({ commits: 1, syncSwitches: [] });
    expect(store.listEvents(id).map((e) => e.type)).toEqual([
      'payment_started',
      'card_read',
      'pin_requested',
      'authorization_requested',
      'approved',
    ]);
    expect(store.checkProjection()).toMatchObject({ ok: true });
  });

  it('a payment declined without the cloud, or ended before its card: one commit each', () => {
    fx = freshStore();
    const { store, path } = fx;
    const declined = commitsOf(path, () => {
      const id = start(store, 'decline-1', 'prefer_online');
      store.recordCardRead(id, card(3));
      store.declineLocally(id, 'offline_not_allowed', 'test', { voidRecord: false });
    });
    expect(declined.commits).toBe(1);
    const failed = commitsOf(path, () => {
      const id = start(store, 'failed-1', 'prefer_online');
      store.recordStep(id, 'failed', { reason: 'card not read: timeout' });
    });
    expect(failed.commits).toBe(1);
    expect(store.getPaymentByKey('failed-1')?.state).toBe('failed');
  });

  it('the steps before the decision write nothing', () => {
    fx = freshStore();
    const { store, path } = fx;
    const steps = commitsOf(path, () => {
      const id = start(store, 'draft-1', 'prefer_online');
      store.recordCardRead(id, card(4), { sealed: sealedBlob(4) });
      store.recordStep(id, 'pin_requested');
    });
    expect(steps.commits).toBe(0);
    // Found by key, in progress, while nothing of it is in the file.
    expect(store.getPaymentByKey('draft-1')?.state).toBe('awaiting_pin');
    expect(store.checkProjection()).toMatchObject({ ok: true, payments: 0 });
  });

  it('a refused step commits nothing and leaves the draft as it was', () => {
    fx = freshStore();
    const { store, path } = fx;
    const id = start(store, 'k1', 'prefer_online');
    const refused = commitsOf(path, () => {
      expect(() =>
        store.startPayment({
          idempotencyKey: 'k1',
          amountMinor: 2000,
          currency: 'EUR',
          offlineMode: 'prefer_online',
        }),
      ).toThrow(/POS210/);
      expect(() => store.recordOnlineOutcome(id, { outcome: 'approved' })).toThrow(/POS212/);
    });
    expect(refused).toEqual({ commits: 0, syncSwitches: [] });
    expect(store.getPayment(id)?.state).toBe('awaiting_card');
  });
});
