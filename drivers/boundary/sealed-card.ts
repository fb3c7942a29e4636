/**
 * Sealing of the card data the cloud needs to authorize (architecture.md §2 item 4): `nacl.box`
 * (X25519 + XSalsa20-Poly1305) to the vault's public key from a fresh ephemeral key pair per card.
 *
 * ```
 *  sealed (base64) = ephemeralPublicKey (32) ‖ nonce (24) ‖ nacl.box ciphertext (plaintext + 16)
 *
 *  plaintext       = 0x01 (format version) ‖ BER-TLV objects (EMV Book 3 Annex A tags):
 *    5A    PAN, cn: BCD digits, left-justified, odd length padded with F        always
 *    5F24  expiry, n6: YYMMDD (DD = last day of the month; tracks carry YYMM)   always
 *    57    track 2 equivalent data: BCD PAN, D, YYMM, SVC, discretionary, F pad  swipe, or chip tag 57
 *    …     the EMV authorization tags of the allow-list (architecture.md §3.3), verbatim  chip/contactless
 * ```
 *
 * The terminal can seal but never open (it has no vault secret key). The plaintext is built,
 * sealed and wiped in {@link secureBytes} buffers (off-heap, never moved by the garbage
 * collector), by our own `crypto_box` (`secretbox.ts`) so that no library keeps a copy; a PAN
 * is never a JS string on the terminal side (architecture.md §2).
 */
import { Buffer } from 'node:buffer';
import {
  type KeyObject,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
} from 'node:crypto';
import nacl from 'tweetnacl';
import { driverError } from '../errors.js';
import {
  SECRETBOX_BOX_ZERO_BYTES,
  SECRETBOX_ZERO_BYTES,
  boxInPlace,
  x25519PublicKey,
} from './secretbox.js';
import { secureBytes } from './secure-bytes.js';
import { parseTlv } from './tlv.js';

/** Version byte at the start of the sealed plaintext. */
export const SEALED_FORMAT_VERSION = 0x01;

/** Card data for {@link buildSealedPlaintext}; every Buffer is read, none is kept or wiped. */
export interface SealInput {
  /** PAN as ASCII digits. */
  pan: Uint8Array;
  /** Two-digit year and month. */
  expiryYY: number;
  expiryMM: number;
  /** Track 2 content between the sentinels, ASCII (`PAN=YYMMSVC…`), when read. */
  track2?: Uint8Array;
  /** Allow-listed EMV TLVs to forward, each a complete tag-length-value. */
  emvTlvs?: readonly Uint8Array[];
}

/** BCD bytes for `digits` ASCII digits (`'='`/`'D'` → 0xD), F-padded to whole bytes. */
function bcdLength(ascii: Uint8Array): number {
  return Math.ceil(ascii.length / 2);
}

/** Writes `ascii` as BCD nibbles at `out[at]`, F-padded (EMV Book 3 Annex A `cn`). */
function putBcd(out: Uint8Array, at: number, ascii: Uint8Array): void {
  out.fill(0xff, at, at + bcdLength(ascii));
  for (let i = 0; i < ascii.length; i++) {
    const c = ascii[i] ?? 0;
    const nibble = c === 0x3d || c === 0x44 ? 0xd : (c - 0x30) & 0x0f;
    const byte = at + (i >> 1);
    out[byte] = i % 2 === 0 ? (nibble << 4) | 0x0f : ((out[byte] ?? 0) & 0xf0) | nibble;
  }
}

function twoDigitBcd(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | (n % 10);
}

/**
 * Builds the sealed plaintext (format above) in one {@link secureBytes} buffer, writing the
 * BCD and TLV bytes in place (no intermediate copies of the PAN or track). The caller owns the
 * result and must wipe it.
 * @throws RangeError when the PAN or track 2 is longer than a one-byte TLV length allows
 *   (> 254 digits; the boundary checks 12–19 digits first).
 */
export function buildSealedPlaintext(input: SealInput): Buffer {
  const track2 = input.track2 !== undefined && input.track2.length > 0 ? input.track2 : undefined;
  const panBytes = bcdLength(input.pan);
  const t2Bytes = track2 === undefined ? 0 : bcdLength(track2);
  if (panBytes > 0x7f || t2Bytes > 0x7f)
    throw new RangeError('sealed plaintext: PAN or track 2 too long for a one-byte TLV length');
  const emv = input.emvTlvs ?? [];
  const total =
    1 + (2 + panBytes) + (3 + 3) + (track2 === undefined ? 0 : 2 + t2Bytes) +
    emv.reduce((sum, tlv) => sum + tlv.length, 0); // prettier-ignore
  const out = secureBytes(total);
  let at = 0;
  out[at++] = SEALED_FORMAT_VERSION;
  out[at++] = 0x5a;
  out[at++] = panBytes;
  putBcd(out, at, input.pan);
  at += panBytes;
  const lastDay = new Date(Date.UTC(2000 + input.expiryYY, input.expiryMM, 0)).getUTCDate();
  out.set([0x5f, 0x24, 3, twoDigitBcd(input.expiryYY), twoDigitBcd(input.expiryMM)], at);
  out[at + 5] = twoDigitBcd(lastDay);
  at += 6;
  if (track2 !== undefined) {
    out[at++] = 0x57;
    out[at++] = t2Bytes;
    putBcd(out, at, track2);
    at += t2Bytes;
  }
  for (const tlv of emv) {
    out.set(tlv, at);
    at += tlv.length;
  }
  return out;
}

/**
 * Seals a plaintext to the vault (NaCl `crypto_box`): fresh ephemeral X25519 key pair (made and
 * kept by OpenSSL) and random nonce per call, on a padded {@link secureBytes} copy that is
 * sealed in place ({@link boxInPlace}); no copy of the plaintext or of a key survives the call.
 * @param plaintext — from {@link buildSealedPlaintext}; not modified (the caller wipes it).
 * @param vaultPublicKey — 32-byte X25519 public key of the cloud vault, or its KeyObject
 *   ({@link x25519PublicKey}, what the boundary keeps).
 * @returns base64 of `ephemeralPublicKey ‖ nonce ‖ ciphertext`, byte for byte what `nacl.box`
 *   gives; `nacl.box.open` opens it.
 */
export function sealToVault(plaintext: Uint8Array, vaultPublicKey: Uint8Array | KeyObject): string {
  const recipient =
    vaultPublicKey instanceof Uint8Array ? x25519PublicKey(vaultPublicKey) : vaultPublicKey;
  const box = secureBytes(SECRETBOX_ZERO_BYTES + plaintext.length);
  try {
    box.set(plaintext, SECRETBOX_ZERO_BYTES);
    const nonce = randomBytes(nacl.box.nonceLength);
    const ephemeralPublicKey = boxInPlace(box, nonce, recipient);
    return Buffer.concat([
      ephemeralPublicKey,
      nonce,
      box.subarray(SECRETBOX_BOX_ZERO_BYTES),
    ]).toString('base64');
  } finally {
    box.fill(0);
  }
}

/** DER prefix of a PKCS #8 X25519 private key (RFC 8410 §7): the 32 raw bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
/** HSalsa20 constant "expand 32-byte k" (the `sigma` of NaCl's crypto_box_beforenm). */
const SIGMA = new Uint8Array(Buffer.from('expand 32-byte k', 'ascii'));
const ZERO_NONCE_16 = new Uint8Array(16);
/**
 * tweetnacl's `crypto_core_hsalsa20(out, in, k, c)` (its `lowlevel` API, present at run time but
 * missing from its type declarations).
 */
const hsalsa20 = (
  nacl as unknown as {
    lowlevel: {
      crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
    };
  }
).lowlevel.crypto_core_hsalsa20;

/** Vault secret key (tweetnacl Uint8Array) → its native KeyObject, built once per key. */
const nativeSecretKeys = new WeakMap<Uint8Array, KeyObject>();

function nativeSecretKey(secretKey: Uint8Array): KeyObject {
  let key = nativeSecretKeys.get(secretKey);
  if (key === undefined) {
    const der = Buffer.concat([X25519_PKCS8_PREFIX, secretKey]);
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    der.fill(0);
    nativeSecretKeys.set(secretKey, key);
  }
  return key;
}

/**
 * `nacl.box.open` (X25519 + HSalsa20 + XSalsa20-Poly1305, NaCl `crypto_box_open`) with the
 * X25519 step on Node's native OpenSSL code instead of tweetnacl's pure-JS field arithmetic
 * (about a millisecond per call, the cost of the cloud side of the drain, architecture.md §9):
 *
 * shared = X25519(secretKey, publicKey) → key = HSalsa20(shared, 0¹⁶, sigma) →
 * `nacl.secretbox.open(box, nonce, key)` — exactly `nacl.box.before` + `nacl.box.open.after`.
 *
 * Results are identical to `nacl.box.open` (a test compares both on many keys). Where OpenSSL
 * refuses a public key that tweetnacl accepts (a low-order point gives an all-zero shared
 * secret, which OpenSSL rejects), this falls back to `nacl.box.open` itself, so even those
 * inputs give the same answer.
 *
 * @param box — ciphertext with its 16-byte Poly1305 tag.
 * @param nonce — 24 bytes.
 * @param publicKey — the sender's 32-byte X25519 public key.
 * @param secretKey — the receiver's 32-byte X25519 secret key.
 * @returns the plaintext, or `null` when the box does not authenticate (wrong key, altered).
 */
export function boxOpen(
  box: Uint8Array,
  nonce: Uint8Array,
  publicKey: Uint8Array,
  secretKey: Uint8Array,
): Uint8Array | null {
  if (
    publicKey.length !== nacl.box.publicKeyLength ||
    secretKey.length !== nacl.box.secretKeyLength ||
    nonce.length !== nacl.box.nonceLength
  ) {
    // tweetnacl throws its own "bad … size" errors: keep that behaviour.
    return nacl.box.open(box, nonce, publicKey, secretKey);
  }
  let shared: Buffer;
  try {
    shared = diffieHellman({
      privateKey: nativeSecretKey(secretKey),
      // JWK, not SPKI DER: OpenSSL 3's DER decoder costs ~100 µs per key, the raw import ~18 µs.
      publicKey: createPublicKey({
        key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') },
        format: 'jwk',
      }),
    });
  } catch {
    return nacl.box.open(box, nonce, publicKey, secretKey);
  }
  const key = new Uint8Array(nacl.secretbox.keyLength);
  hsalsa20(key, ZERO_NONCE_16, shared, SIGMA);
  shared.fill(0);
  const plaintext = nacl.secretbox.open(box, nonce, key);
  key.fill(0);
  return plaintext;
}

/** What {@link openSealedCard} returns. Vault side only: these strings ARE card data. */
export interface SealedCardContents {
  /** PAN digits. */
  panDigits: string;
  /** Expiry as `YYMM`. */
  expiry: string;
  /** Track 2 equivalent as ISO/IEC 7813 text without sentinels (`PAN=YYMMSVC…`), when sealed. */
  track2?: string;
  /** Forwarded EMV tags, tag hex → value hex (e.g. `{ '9F26': '…' }`). */
  emvTagsHex?: Record<string, string>;
}

function bcdToText(bcd: Buffer): string {
  let out = '';
  for (const byte of bcd) {
    for (const nibble of [byte >> 4, byte & 0x0f]) {
      if (nibble === 0xf) return out;
      out += nibble === 0xd ? '=' : String(nibble);
    }
  }
  return out;
}

/**
 * Opens a sealed card blob with the vault's secret key — **for the vault side only** (the
 * simulator's cloud core; the real cloud's HSM). It returns card data as JS strings, which is
 * acceptable there and nowhere in the agent: the agent never holds a vault secret key.
 * @param sealedBase64 — `CardToken.sealed`.
 * @param vaultSecretKey — 32-byte X25519 secret key of the vault.
 * @throws AgentError `POS134` when the blob is truncated, tampered with, sealed to another key,
 *   or its plaintext is not format version 1.
 */
export function openSealedCard(
  sealedBase64: string,
  vaultSecretKey: Uint8Array,
): SealedCardContents {
  const blob = Buffer.from(sealedBase64, 'base64');
  const minimum = nacl.box.publicKeyLength + nacl.box.nonceLength + nacl.box.overheadLength;
  if (blob.length < minimum)
    throw driverError(
      'POS134',
      `Sealed card data is ${blob.length} bytes, shorter than the ${minimum}-byte minimum: it was truncated in transit`,
    );
  const ephemeralPublicKey = blob.subarray(0, 32);
  const nonce = blob.subarray(32, 56);
  const plaintext = boxOpen(blob.subarray(56), nonce, ephemeralPublicKey, vaultSecretKey);
  if (plaintext === null)
    throw driverError(
      'POS134',
      'Sealed card data cannot be opened with this vault secret key: sealed to another vault key (check the provisioned vault public key) or altered',
    );
  const data = Buffer.from(plaintext);
  if (data[0] !== SEALED_FORMAT_VERSION)
    throw driverError(
      'POS134',
      `Sealed card format version ${data[0] ?? 'none'} is not supported (expected 1)`,
    );
  const objects = parseTlv(data.subarray(1));
  const pan = objects?.find((o) => o.tag === '5A');
  const expiry = objects?.find((o) => o.tag === '5F24');
  if (objects === undefined || pan === undefined || expiry === undefined || expiry.value.length < 2)
    throw driverError(
      'POS134',
      'Sealed card plaintext lacks tag 5A or 5F24: not made by this agent',
    );
  const contents: SealedCardContents = {
    panDigits: bcdToText(pan.value),
    expiry: expiry.value.subarray(0, 2).toString('hex'),
  };
  const track2 = objects.find((o) => o.tag === '57');
  if (track2 !== undefined) contents.track2 = bcdToText(track2.value);
  const emv = objects.filter((o) => !['5A', '5F24', '57'].includes(o.tag));
  if (emv.length > 0)
    contents.emvTagsHex = Object.fromEntries(emv.map((o) => [o.tag, o.value.toString('hex')]));
  data.fill(0);
  plaintext.fill(0);
  return contents;
}
