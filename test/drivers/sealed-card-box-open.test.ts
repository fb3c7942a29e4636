import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { boxOpen } from '../../drivers/boundary/sealed-card.js';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const keyPairFrom = (seed: Uint8Array): nacl.BoxKeyPair => nacl.box.keyPair.fromSecretKey(seed);
const same = (a: Uint8Array | null, b: Uint8Array | null): boolean =>
  a === null || b === null ? a === b : Buffer.from(a).equals(Buffer.from(b));

describe('boxOpen (native X25519 + HSalsa20 + XSalsa20-Poly1305)', () => {
  it('opens what nacl.box seals, in both directions, with the same plaintext as nacl.box.open', () => {
    fc.assert(
      fc.property(
        bytes(32),
        bytes(32),
        bytes(24),
        fc.uint8Array({ maxLength: 300 }),
        (senderSeed, recipientSeed, nonce, message) => {
          const sender = keyPairFrom(senderSeed);
          const recipient = keyPairFrom(recipientSeed);
          const box = nacl.box(message, nonce, recipient.publicKey, sender.secretKey);
          const native = boxOpen(box, nonce, sender.publicKey, recipient.secretKey);
          expect(native).not.toBeNull();
          expect(same(native, message)).toBe(true);
          expect(
            same(native, nacl.box.open(box, nonce, sender.publicKey, recipient.secretKey)),
          ).toBe(true);
          // The other way: what the recipient seals back, the sender opens natively.
          const reply = nacl.box(message, nonce, sender.publicKey, recipient.secretKey);
          expect(same(boxOpen(reply, nonce, recipient.publicKey, sender.secretKey), message)).toBe(
            true,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('fails (null) with a wrong secret key, like nacl.box.open', () => {
    fc.assert(
      fc.property(bytes(32), bytes(32), bytes(32), bytes(24), (a, b, c, nonce) => {
        const sender = keyPairFrom(a);
        const recipient = keyPairFrom(b);
        const stranger = keyPairFrom(c);
        fc.pre(!Buffer.from(b).equals(Buffer.from(c)));
        const box = nacl.box(
          Buffer.from('card data'),
          nonce,
          recipient.publicKey,
          sender.secretKey,
        );
        expect(boxOpen(box, nonce, sender.publicKey, stranger.secretKey)).toBeNull();
        expect(nacl.box.open(box, nonce, sender.publicKey, stranger.secretKey)).toBeNull();
      }),
      { numRuns: 100 },
    );
  });

  it('fails (null) on an altered box, like nacl.box.open', () => {
    fc.assert(
      fc.property(
        bytes(32),
        bytes(32),
        bytes(24),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (a, b, nonce, at, flip) => {
          const sender = keyPairFrom(a);
          const recipient = keyPairFrom(b);
          const box = nacl.box(
            Buffer.from('0123456789'),
            nonce,
            recipient.publicKey,
            sender.secretKey,
          );
          const i = at % box.length;
          box[i] = (box[i] ?? 0) ^ flip;
          expect(boxOpen(box, nonce, sender.publicKey, recipient.secretKey)).toBeNull();
          expect(nacl.box.open(box, nonce, sender.publicKey, recipient.secretKey)).toBeNull();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('gives the same answer as nacl.box.open for any 32 bytes as the public key (top bit set, non-canonical)', () => {
    fc.assert(
      fc.property(bytes(32), bytes(32), bytes(24), (publicKey, seed, nonce) => {
        const recipient = keyPairFrom(seed);
        const box = nacl.box(Buffer.from('sealed'), nonce, publicKey, recipient.secretKey);
        const expected = nacl.box.open(box, nonce, publicKey, recipient.secretKey);
        expect(same(boxOpen(box, nonce, publicKey, recipient.secretKey), expected)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('matches nacl.box.open for a low-order public key, which OpenSSL refuses (all-zero shared secret)', () => {
    const lowOrder = new Uint8Array(32); // u = 0
    const one = new Uint8Array(32);
    one[0] = 1; // u = 1
    for (const publicKey of [lowOrder, one]) {
      const recipient = nacl.box.keyPair();
      const nonce = nacl.randomBytes(24);
      const message = Buffer.from('low order');
      const box = nacl.box(message, nonce, publicKey, recipient.secretKey);
      const expected = nacl.box.open(box, nonce, publicKey, recipient.secretKey);
      expect(expected).not.toBeNull();
      expect(same(boxOpen(box, nonce, publicKey, recipient.secretKey), expected)).toBe(true);
    }
  });
});
