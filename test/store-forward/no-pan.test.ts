/**
 * architecture.md §2: no PAN in SQLite, including the WAL file. The store is fed what the card boundary
 * really hands out for the simulator's test cards — token, brand, first 6, last 4, and the PAN
 * sealed with nacl.box to a vault key — and then every byte of the database files is swept for
 * the test PANs and for any Luhn-valid run of 13–19 digits.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import Database from 'better-sqlite3';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import type { CardBrand } from '../../store-forward/model.js';
import { freshStore, tempDir } from './helpers.js';

const TEST_PANS: [string, CardBrand][] = [
  ['4111111111111111', 'visa'],
  ['4012888888881881', 'visa'],
  ['5555555555554444', 'mastercard'],
  ['2223000048400011', 'mastercard'],
  ['378282246310005', 'amex'],
  ['6011111111111117', 'discover'],
  ['3530111333300000', 'jcb'],
  ['4000000000000002', 'visa'],
];

/** What the boundary derives (architecture.md §2 step 2): tok_ + base32 of HMAC-SHA-256(key, PAN)[0..20). */
function tokenOf(pan: string, key: Buffer): string {
  const bytes = createHmac('sha256', key).update(pan, 'ascii').digest().subarray(0, 20);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `tok_${out}`;
}

/** ephemeralPublicKey(32) ‖ nonce(24) ‖ nacl.box(PAN ‖ expiry) in base64 (architecture.md §2 step 4). */
function seal(pan: string, vaultPublicKey: Uint8Array): string {
  const ephemeral = nacl.box.keyPair();
  const nonce = nacl.randomBytes(24);
  const box = nacl.box(
    Buffer.from(`${pan}=3012`, 'ascii'),
    nonce,
    vaultPublicKey,
    ephemeral.secretKey,
  );
  return Buffer.concat([ephemeral.publicKey, nonce, box]).toString('base64');
}

function sweep(dir: string): { files: string[]; runs: string[]; literal: string[]; text: string } {
  const files = readdirSync(dir);
  let text = '';
  for (const file of files) text += readFileSync(join(dir, file)).toString('latin1');
  return {
    files,
    runs: findPanShapedRuns(text),
    literal: TEST_PANS.map(([pan]) => pan).filter((pan) => text.includes(pan)),
    text,
  };
}

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

describe('no PAN reaches the database files', () => {
  it('the sweep finds a PAN in a -wal file when there is one (control)', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const db = new Database(join(dir, 'control.db'));
    db.pragma('journal_mode = WAL');
    db.exec("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('ref 5555555555554444')");
    const result = sweep(dir);
    expect(result.files).toContain('control.db-wal');
    expect(result.runs).toContain('5555555555554444');
    db.close();
  });

  it('stores, forwards and acknowledges the test cards without a PAN-shaped run in db or WAL', () => {
    const fx = freshStore();
    cleanups.push(fx.close);
    const tokenKey = Buffer.alloc(32, 9);
    const vault = nacl.box.keyPair();
    const keys: string[] = [];
    const sealedByKey = new Map<string, string>();
    for (const [i, [pan, brand]] of TEST_PANS.entries()) {
      for (let n = 0; n < 5; n++) {
        const key = `018f3a2c-0000-7000-8000-${String(i * 10 + n).padStart(12, '0')}`;
        keys.push(key);
        fx.store.createPayment({
          idempotencyKey: key,
          amountMinor: 1_000 + i * 10 + n,
          currency: 'EUR',
          reference: `order-${i}-${n}`,
          card: {
            token: tokenOf(pan, tokenKey),
            brand,
            first6: pan.slice(0, 6),
            last4: pan.slice(-4),
            expiryMonth: 12,
            expiryYear: 2030,
            entryMode: 'chip',
            cardholderName: 'DOE/JANE',
          },
          sealed: sealedByKey.set(key, seal(pan, vault.publicKey)).get(key),
        });
      }
    }
    // A reference that is a PAN is refused before it reaches SQLite.
    expect(() =>
      fx.store.createPayment({
        idempotencyKey: 'leaky',
        amountMinor: 1,
        currency: 'EUR',
        reference: '4111111111111111',
        card: {
          token: tokenOf('4111111111111111', tokenKey),
          brand: 'visa',
          first6: '411111',
          last4: '1111',
          expiryMonth: 1,
          expiryYear: 2030,
          entryMode: 'swipe',
        },
      }),
    ).toThrow(/POS214/);
    fx.store.applyAcks([
      ...keys.slice(0, 10).map((key) => ({
        key,
        status: 'accepted' as const,
        outcome: 'approved' as const,
        authCode: 'A1B2C3',
      })),
      ...keys.slice(10, 15).map((key) => ({
        key,
        status: 'rejected' as const,
        code: 'E_CARD',
        reason: 'card 4111111111111111 is blocked', // a careless cloud: redacted before storing
      })),
    ]);

    // The agent's maintenance pass (every second) truncates the WAL that held the deleted sealed
    // data; acks themselves no longer checkpoint (issue 9).
    expect(fx.store.maintenance()).toBe(true);
    expect(fx.store.maintenance()).toBe(false);
    const ackedSealed = keys.slice(0, 10).map((key) => sealedByKey.get(key) as string);
    const unackedSealed = keys.slice(10).map((key) => sealedByKey.get(key) as string);
    const open = sweep(fx.dir);
    // Sealed card data of acknowledged payments is gone from the files, not only from the table.
    const raw = new Database(fx.path, { readonly: true });
    expect(raw.prepare('SELECT count(*) AS n FROM sealed_cards').get()).toEqual({ n: 30 });
    raw.close();
    for (const blob of ackedSealed) expect(open.text.includes(blob)).toBe(false);
    for (const blob of unackedSealed) expect(open.text.includes(blob)).toBe(true);
    expect(open.files).toContain('agent.db-wal');
    // The sweep reads the right bytes: the stored tokens and first 6 digits are there.
    expect(open.text).toContain(tokenOf('5555555555554444', tokenKey));
    expect(open.text).toContain('555555');
    expect(open.literal).toEqual([]);
    expect(open.runs).toEqual([]);

    fx.store.close();
    const closed = sweep(fx.dir);
    expect(closed.literal).toEqual([]);
    expect(closed.runs).toEqual([]);
  });
});
