/**
 * Sealing of the card data the cloud needs to authorize (DESIGN §2 item 4): `nacl.box`
 * (X25519 + XSalsa20-Poly1305) to the vault's public key from a fresh ephemeral key pair per card.
 *
 * ```
 *  sealed (base64) = ephemeralPublicKey (32) ‖ nonce (24) ‖ nacl.box ciphertext (plaintext + 16)
 *
 *  plaintext       = 0x01 (format version) ‖ BER-TLV objects (EMV Book 3 Annex A tags):
 *    5A    PAN, cn: BCD digits, left-justified, odd length padded with F        always
 *    5F24  expiry, n6: YYMMDD (DD = last day of the month; tracks carry YYMM)   always
 *    57    track 2 equivalent data: BCD PAN, D, YYMM, SVC, discretionary, F pad  swipe, or chip tag 57
 *    …     the EMV authorization tags of the allow-list (DESIGN §3.3), verbatim  chip/contactless
 * ```
 *
 * The terminal can seal but never open (it has no vault secret key). The plaintext is built and
 * wiped as bytes; a PAN is never a JS string on the terminal side (DESIGN §2).
 */
import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { driverError } from '../errors.js';
import { encodeTlv, parseTlv } from './tlv.js';

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

/** ASCII digits ('0'–'9', '=' or 'D' → 0xD) to BCD nibbles, F-padded. */
function asciiToBcd(ascii: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(ascii.length / 2), 0xff);
  for (let i = 0; i < ascii.length; i++) {
    const c = ascii[i] ?? 0;
    const nibble = c === 0x3d || c === 0x44 ? 0xd : (c - 0x30) & 0x0f;
    const at = i >> 1;
    out[at] = i % 2 === 0 ? (nibble << 4) | 0x0f : ((out[at] ?? 0) & 0xf0) | nibble;
  }
  return out;
}

function twoDigitBcd(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | (n % 10);
}

/**
 * Builds the sealed plaintext (format above). The caller owns and must wipe the result.
 */
export function buildSealedPlaintext(input: SealInput): Buffer {
  const parts: Buffer[] = [Buffer.of(SEALED_FORMAT_VERSION)];
  const pan = asciiToBcd(input.pan);
  parts.push(encodeTlv('5A', pan));
  pan.fill(0);
  const lastDay = new Date(Date.UTC(2000 + input.expiryYY, input.expiryMM, 0)).getUTCDate();
  parts.push(
    encodeTlv(
      '5F24',
      Buffer.of(twoDigitBcd(input.expiryYY), twoDigitBcd(input.expiryMM), twoDigitBcd(lastDay)),
    ),
  );
  if (input.track2 !== undefined && input.track2.length > 0) {
    const t2 = asciiToBcd(input.track2);
    parts.push(encodeTlv('57', t2));
    t2.fill(0);
  }
  for (const tlv of input.emvTlvs ?? []) parts.push(Buffer.from(tlv));
  const plaintext = Buffer.concat(parts);
  for (const part of parts) part.fill(0);
  return plaintext;
}

/**
 * Seals a plaintext to the vault: fresh ephemeral X25519 key pair and random nonce per call.
 * The ephemeral secret key is wiped afterwards (tweetnacl's internal copies cannot be).
 * @param plaintext — from {@link buildSealedPlaintext}; not modified.
 * @param vaultPublicKey — 32-byte X25519 public key of the cloud vault.
 * @returns base64 of `ephemeralPublicKey ‖ nonce ‖ ciphertext`.
 */
export function sealToVault(plaintext: Uint8Array, vaultPublicKey: Uint8Array): string {
  const ephemeral = nacl.box.keyPair();
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  const ciphertext = nacl.box(plaintext, nonce, vaultPublicKey, ephemeral.secretKey);
  ephemeral.secretKey.fill(0);
  return Buffer.concat([ephemeral.publicKey, nonce, ciphertext]).toString('base64');
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
  const plaintext = nacl.box.open(blob.subarray(56), nonce, ephemeralPublicKey, vaultSecretKey);
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
