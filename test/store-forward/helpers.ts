/**
 * Helpers of the store-forward tests: a fresh temporary directory and database file per test
 * (STYLE habit 4), a clock the test moves by hand, and valid inputs to vary one field at a time.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../../common/clock.js';
import type { NewPayment } from '../../store-forward/model.js';
import type { OfflinePolicy } from '../../store-forward/offline-policy.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { FakeClock } from '../helpers/fake-clock.js';

/**
 * The store tests' clock: the one {@link FakeClock}, starting at `startIso`, with every `now()`
 * moving time 1 ms on so the store's events get strictly increasing timestamps.
 */
export function storeClock(startIso = '2026-11-21T09:00:00.000Z'): FakeClock {
  return new FakeClock(startIso, { stepMs: 1 });
}

/**
 * A fresh temporary directory, removed by the returned `cleanup`.
 *
 * @param options.memory — put it on the RAM-backed `/dev/shm` when there is one: for property
 *   tests that open hundreds of stores to check their logic, where each commit's fsync (the
 *   store runs synchronous=FULL) would otherwise cost a disk flush on a shared machine. What is
 *   written and read is the same; durability itself is tested on disk (commit-durability.test.ts).
 */
export function tempDir(options: { memory?: boolean } = {}): { dir: string; cleanup: () => void } {
  const base = options.memory === true && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'pos-sf-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A store on a fresh file; `close()` closes it and removes the directory. */
export function freshStore(
  opts: { clock?: Clock; forwardingDeadlineHours?: number; memory?: boolean } = {},
): {
  store: PaymentStore;
  path: string;
  dir: string;
  clock: Clock;
  close: () => void;
} {
  const { dir, cleanup } = tempDir({ memory: opts.memory === true });
  const path = join(dir, 'agent.db');
  const clock = opts.clock ?? storeClock();
  const store = PaymentStore.open({
    path,
    clock,
    ...(opts.forwardingDeadlineHours === undefined
      ? {}
      : { forwardingDeadlineHours: opts.forwardingDeadlineHours }),
  });
  return {
    store,
    path,
    dir,
    clock,
    close: () => {
      store.close();
      cleanup();
    },
  };
}

/** A second, plain connection on the store's file: what "SQLite itself rejects" is tested with. */
export function rawConnection(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('foreign_keys = ON');
  return db;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** A syntactically valid token: `tok_` + 32 base32 letters derived from `seed`. */
export function tokenFor(seed: number): string {
  let text = '';
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < 32; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    text += BASE32[(x >>> 16) % 32];
  }
  return `tok_${text}`;
}

/** An offline policy no test payment of 1,500 EUR minor units reaches (100 of them at most). */
export const ROOMY_POLICY: OfflinePolicy = {
  perTransactionLimitMinor: { EUR: 100_000 },
  totalLimitMinor: { EUR: 1_000_000 },
  maxCount: 100,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};

/** A valid sealed blob: base64 of 72+ bytes (the store never opens it). */
export function sealedBlob(seed = 1, bytes = 120): string {
  return Buffer.alloc(bytes, seed % 256).toString('base64');
}

/** A valid `NewPayment`; `overrides` replace top-level fields. */
export function newPayment(key: string, overrides: Partial<NewPayment> = {}): NewPayment {
  return {
    idempotencyKey: key,
    amountMinor: 1050,
    currency: 'EUR',
    reference: 'order-17',
    card: {
      token: tokenFor(1),
      brand: 'visa',
      first6: '411111',
      last4: '1111',
      expiryMonth: 12,
      expiryYear: 2030,
      entryMode: 'chip',
    },
    sealed: sealedBlob(),
    ...overrides,
  };
}
