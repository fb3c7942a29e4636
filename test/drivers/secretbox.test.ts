/**
 * Our in-place NaCl crypto_box / crypto_secretbox (drivers/boundary/secretbox.ts, issue 11
 * item 1) against tweetnacl's: byte for byte the same results, so the cloud opens them as before.
 */
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import {
  buildSealedPlaintext,
  openSealedCard,
  sealToVault,
} from '../../drivers/boundary/sealed-card.js';
import {
  SECRETBOX_ZERO_BYTES,
  boxInPlace,
  secretboxInPlace,
  x25519PublicKey,
} from '../../drivers/boundary/secretbox.js';

const bytes = (n: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: n, maxLength: n });

describe('secretboxInPlace', () => {
  it('equals nacl.secretbox for any message (0 to 300 bytes, over block boundaries)', () => {
    fc.assert(
      fc.property(
        bytes(32),
        bytes(24),
        fc.uint8Array({ maxLength: 300 }),
        (key, nonce, message) => {
          const box = new Uint8Array(SECRETBOX_ZERO_BYTES + message.length);
          box.set(message, SECRETBOX_ZERO_BYTES);
          secretboxInPlace(box, nonce, key);
          expect(Buffer.from(box.subarray(16))).toEqual(
            Buffer.from(nacl.secretbox(message, nonce, key)),
          );
          expect(Buffer.from(box.subarray(0, 16))).toEqual(Buffer.alloc(16));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a box without the 32 zero bytes in front (it would leak the MAC key)', () => {
    const box = new Uint8Array(40);
    box[3] = 1;
    expect(() => secretboxInPlace(box, new Uint8Array(24), new Uint8Array(32))).toThrow(RangeError);
  });
});

describe('boxInPlace and sealToVault', () => {
  it('nacl.box.open opens what boxInPlace sealed to the recipient', () => {
    const vault = nacl.box.keyPair();
    const recipient = x25519PublicKey(vault.publicKey);
    fc.assert(
      fc.property(bytes(24), fc.uint8Array({ maxLength: 200 }), (nonce, message) => {
        const box = new Uint8Array(SECRETBOX_ZERO_BYTES + message.length);
        box.set(message, SECRETBOX_ZERO_BYTES);
        const epk = boxInPlace(box, nonce, recipient);
        const opened = nacl.box.open(box.subarray(16), nonce, epk, vault.secretKey);
        expect(opened === null ? null : Buffer.from(opened)).toEqual(Buffer.from(message));
      }),
      { numRuns: 100 },
    );
  });

  it('a sealed card opens with the vault secret key and leaves the plaintext as given', () => {
    const vault = nacl.box.keyPair();
    const plaintext = buildSealedPlaintext({
      pan: Buffer.from('4111111111111111'),
      expiryYY: 30,
      expiryMM: 12,
      track2: Buffer.from('4111111111111111=30121010000000000'),
    });
    const before = Buffer.from(plaintext);
    const sealed = sealToVault(plaintext, vault.publicKey);
    expect(Buffer.from(plaintext)).toEqual(before);
    const opened = openSealedCard(sealed, vault.secretKey);
    expect(opened.panDigits).toBe('4111111111111111');
    expect(opened.expiry).toBe('3012');
    expect(opened.track2).toBe('4111111111111111=30121010000000000');
    // Two seals of one plaintext differ (fresh ephemeral key and nonce every time).
    expect(sealToVault(plaintext, vault.publicKey)).not.toBe(sealed);
  });
});
