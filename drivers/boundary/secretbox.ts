/**
 * NaCl `crypto_box` (X25519 → HSalsa20 → XSalsa20-Poly1305) for sealing card data, on buffers
 * the caller owns and wipes (issue 11 item 1).
 *
 * tweetnacl's `nacl.box` gives the same bytes but copies the padded plaintext into a fresh array
 * and keeps the shared key, the XSalsa20 subkey and the last keystream block in arrays of its
 * own that nobody wipes (its `lowlevel.crypto_box_beforenm` and `crypto_stream_xor` too): a
 * memory image of the agent held every sealed card in clear. Here:
 *
 * ```
 *  X25519         node:crypto (OpenSSL): the ephemeral secret key never enters JS memory
 *  HSalsa20       tweetnacl lowlevel.crypto_core_hsalsa20 (writes only to our output array)
 *  Salsa20 core   below, on local variables, into our 64-byte block array
 *  Poly1305       tweetnacl lowlevel.crypto_onetimeauth: keeps the one-time MAC key (keystream
 *                 bytes 0–31, which encrypt nothing) and the last ciphertext block; no plaintext
 * ```
 *
 * Sources: D. J. Bernstein, "Salsa20 specification" (2005) §§ 3–9; "Extending the Salsa20
 * nonce" (2008) §2 (HSalsa20, XSalsa20); "Cryptography in NaCl" (2009) §§ 7–9 (crypto_box,
 * the 32-byte zero prefix). A test compares every result with `nacl.secretbox` / `nacl.box`.
 */
import { Buffer } from 'node:buffer';
import { type KeyObject, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { secureBytes } from './secure-bytes.js';

/** NaCl `crypto_secretbox_ZEROBYTES`: zero bytes in front of the message. */
export const SECRETBOX_ZERO_BYTES = 32;
/** NaCl `crypto_secretbox_BOXZEROBYTES`: zero bytes in front of the result. */
export const SECRETBOX_BOX_ZERO_BYTES = 16;

/** tweetnacl's `lowlevel` functions used here (present at run time, not in its types). */
const lowlevel = (
  nacl as unknown as {
    lowlevel: {
      crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
      crypto_onetimeauth(
        out: Uint8Array,
        outpos: number,
        m: Uint8Array,
        mpos: number,
        n: number,
        k: Uint8Array,
      ): number;
    };
  }
).lowlevel;

/** "expand 32-byte k" (Salsa20 spec §9). */
const SIGMA = new Uint8Array(Buffer.from('expand 32-byte k', 'ascii'));
const SIGMA_WORDS = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] as const;
const ZERO_16 = new Uint8Array(16);

const word = (b: Uint8Array, at: number): number =>
  (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24) | 0;
const rotl = (v: number, c: number): number => (v << c) | (v >>> (32 - c));
/** Writes the 32-bit word `w` little-endian at `out[at]`. */
function put(out: Uint8Array, at: number, w: number): void {
  out[at] = w & 0xff;
  out[at + 1] = (w >>> 8) & 0xff;
  out[at + 2] = (w >>> 16) & 0xff;
  out[at + 3] = (w >>> 24) & 0xff;
}

// prettier-ignore
/**
 * One Salsa20/20 block (spec §8) for `key` (32 bytes), the 8-byte nonce at `nonce[nonceAt]`
 * and block `counter` (< 2³²), into `out` (64 bytes). Locals only: nothing else holds it.
 */
function salsa20Block(
  out: Uint8Array,
  key: Uint8Array,
  nonce: Uint8Array,
  nonceAt: number,
  counter: number,
): void {
  const j0 = SIGMA_WORDS[0], j5 = SIGMA_WORDS[1], j10 = SIGMA_WORDS[2], j15 = SIGMA_WORDS[3];
  const j1 = word(key, 0), j2 = word(key, 4), j3 = word(key, 8), j4 = word(key, 12);
  const j11 = word(key, 16), j12 = word(key, 20), j13 = word(key, 24), j14 = word(key, 28);
  const j6 = word(nonce, nonceAt), j7 = word(nonce, nonceAt + 4);
  const j8 = counter | 0, j9 = 0;
  let x0 = j0, x1 = j1, x2 = j2, x3 = j3, x4 = j4, x5 = j5, x6 = j6, x7 = j7;
  let x8 = j8, x9 = j9, x10 = j10, x11 = j11, x12 = j12, x13 = j13, x14 = j14, x15 = j15;
  for (let i = 0; i < 20; i += 2) {
    // Column round (spec §5).
    x4 ^= rotl((x0 + x12) | 0, 7);   x8 ^= rotl((x4 + x0) | 0, 9);
    x12 ^= rotl((x8 + x4) | 0, 13);  x0 ^= rotl((x12 + x8) | 0, 18);
    x9 ^= rotl((x5 + x1) | 0, 7);    x13 ^= rotl((x9 + x5) | 0, 9);
    x1 ^= rotl((x13 + x9) | 0, 13);  x5 ^= rotl((x1 + x13) | 0, 18);
    x14 ^= rotl((x10 + x6) | 0, 7);  x2 ^= rotl((x14 + x10) | 0, 9);
    x6 ^= rotl((x2 + x14) | 0, 13);  x10 ^= rotl((x6 + x2) | 0, 18);
    x3 ^= rotl((x15 + x11) | 0, 7);  x7 ^= rotl((x3 + x15) | 0, 9);
    x11 ^= rotl((x7 + x3) | 0, 13);  x15 ^= rotl((x11 + x7) | 0, 18);
    // Row round (spec §4).
    x1 ^= rotl((x0 + x3) | 0, 7);    x2 ^= rotl((x1 + x0) | 0, 9);
    x3 ^= rotl((x2 + x1) | 0, 13);   x0 ^= rotl((x3 + x2) | 0, 18);
    x6 ^= rotl((x5 + x4) | 0, 7);    x7 ^= rotl((x6 + x5) | 0, 9);
    x4 ^= rotl((x7 + x6) | 0, 13);   x5 ^= rotl((x4 + x7) | 0, 18);
    x11 ^= rotl((x10 + x9) | 0, 7);  x8 ^= rotl((x11 + x10) | 0, 9);
    x9 ^= rotl((x8 + x11) | 0, 13);  x10 ^= rotl((x9 + x8) | 0, 18);
    x12 ^= rotl((x15 + x14) | 0, 7); x13 ^= rotl((x12 + x15) | 0, 9);
    x14 ^= rotl((x13 + x12) | 0, 13); x15 ^= rotl((x14 + x13) | 0, 18);
  }
  // No array of the words: an array of numbers is a V8 heap object the collector may move.
  put(out, 0, x0 + j0); put(out, 4, x1 + j1); put(out, 8, x2 + j2); put(out, 12, x3 + j3);
  put(out, 16, x4 + j4); put(out, 20, x5 + j5); put(out, 24, x6 + j6); put(out, 28, x7 + j7);
  put(out, 32, x8 + j8); put(out, 36, x9 + j9); put(out, 40, x10 + j10); put(out, 44, x11 + j11);
  put(out, 48, x12 + j12); put(out, 52, x13 + j13); put(out, 56, x14 + j14); put(out, 60, x15 + j15);
}

/**
 * NaCl `crypto_secretbox` in place: `box` holds {@link SECRETBOX_ZERO_BYTES} zero bytes and then
 * the message; afterwards it holds {@link SECRETBOX_BOX_ZERO_BYTES} zero bytes, the 16-byte
 * Poly1305 tag and the ciphertext, so `box.subarray(16)` equals `nacl.secretbox(message, nonce,
 * key)`. The message is overwritten (nothing else held it); the subkey and keystream live in
 * secure buffers wiped before return.
 * @param nonce — 24 bytes. @param key — 32 bytes.
 * @throws RangeError when a size is wrong (programming error, no card data in the message).
 */
export function secretboxInPlace(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): void {
  if (box.length < SECRETBOX_ZERO_BYTES || nonce.length !== 24 || key.length !== 32)
    throw new RangeError(
      `secretbox: box ${box.length} bytes (≥ 32), nonce ${nonce.length} (24), key ${key.length} (32)`,
    );
  for (let i = 0; i < SECRETBOX_ZERO_BYTES; i++)
    if (box[i] !== 0) throw new RangeError('secretbox: the first 32 bytes of box must be zero');
  const subkey = secureBytes(32);
  const block = secureBytes(64);
  try {
    lowlevel.crypto_core_hsalsa20(subkey, nonce, key, SIGMA);
    for (let at = 0, counter = 0; at < box.length; at += 64, counter++) {
      salsa20Block(block, subkey, nonce, 16, counter);
      const end = Math.min(64, box.length - at);
      for (let i = 0; i < end; i++) box[at + i] = (box[at + i] ?? 0) ^ (block[i] ?? 0);
    }
    lowlevel.crypto_onetimeauth(box, 16, box, 32, box.length - 32, box);
    box.fill(0, 0, SECRETBOX_BOX_ZERO_BYTES);
  } finally {
    subkey.fill(0);
    block.fill(0);
  }
}

/** X25519 public key (32 raw bytes) → node:crypto KeyObject. */
export function x25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/**
 * NaCl `crypto_box` in place to `recipient` from a fresh ephemeral X25519 key pair made by
 * OpenSSL: `box` is laid out as for {@link secretboxInPlace} and sealed the same way with the
 * `crypto_box_beforenm` key (HSalsa20 of the X25519 shared secret). Shared secret and key live in
 * buffers wiped before return; the ephemeral secret key stays inside OpenSSL, which clears it
 * when the key is freed.
 * @returns the ephemeral public key (32 bytes): `nacl.box.open(box.subarray(16), nonce, it,
 *   recipientSecretKey)` opens the result.
 */
export function boxInPlace(box: Uint8Array, nonce: Uint8Array, recipient: KeyObject): Buffer {
  const ephemeral = generateKeyPairSync('x25519');
  const jwk = ephemeral.publicKey.export({ format: 'jwk' });
  const ephemeralPublicKey = Buffer.from(jwk.x ?? '', 'base64url');
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient });
  const key = secureBytes(32);
  try {
    lowlevel.crypto_core_hsalsa20(key, ZERO_16, shared, SIGMA);
    shared.fill(0);
    secretboxInPlace(box, nonce, key);
  } finally {
    shared.fill(0);
    key.fill(0);
  }
  return ephemeralPublicKey;
}
