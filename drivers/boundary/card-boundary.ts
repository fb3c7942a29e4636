/**
 * The card boundary (architecture.md §2): where PCI DSS scope ends. Raw track/EMV Buffers go in, a
 * {@link CardToken} comes out, and every raw buffer is wiped with `fill(0)` on every path.
 *
 * ```
 *  track2 / track1 / EMV TLV (Buffers) ─► parse ─► validate ─► HMAC token ─► seal ─► wipe
 *                                          ISO 7813  Luhn 12–19   PCI 3.5.1.1   nacl.box
 *                                          EMV B3    expiry, SVC
 * ```
 *
 * Nothing here makes a JS string of a PAN, a track or a PIN; only first 6, last 4 and (when
 * allowed) the cardholder name become strings.
 */
import { FIRST6_PATTERN, LAST4_PATTERN } from '../../common/card.js';
import { Buffer } from 'node:buffer';
import { type KeyObject, createHmac } from 'node:crypto';
import { systemClock, type Clock } from '../../common/clock.js';
import type { AgentError } from '../../common/agent-error.js';
import { findPanShapedRuns, luhnValidCodes } from '../../common/luhn-scan.js';
import { driverError, type DriverErrorCode } from '../errors.js';
import { base32Lower } from './base32.js';
import { brandOfPan } from './bin-table.js';
import type { CardReadFailure, CardToken, EntryMode } from './card-token.js';
import { buildSealedPlaintext, sealToVault } from './sealed-card.js';
import { x25519PublicKey } from './secretbox.js';
import { secureBytes, secureCopy } from './secure-bytes.js';
import { parseTlv } from './tlv.js';
import { parseTrack1, parseTrack2, type ParsedTrack } from './track-parser.js';

/**
 * EMV tags forwarded (sealed) for authorization: the allow-list of architecture.md §3.3 (EMV Book 3
 * Annex A names: 9F26 application cryptogram, 9F27 CID, 9F10 IAD, 9F37 unpredictable number,
 * 9F36 ATC, 95 TVR, 9A date, 9C type, 9F02 amount, 5F2A currency, 82 AIP, 9F1A country,
 * 9F34 CVM results, 9F33 capabilities, 9F35 terminal type, 84 DF name, 9F09 version,
 * 9F03 amount other, 5F34 PAN sequence number). Other tags are dropped.
 */
export const EMV_FORWARDED_TAGS: ReadonlySet<string> = new Set([
  '9F26', '9F27', '9F10', '9F37', '9F36', '95', '9A', '9C', '9F02', '5F2A',
  '82', '9F1A', '9F34', '9F33', '9F35', '84', '9F09', '9F03', '5F34',
]); // prettier-ignore

/** Options of {@link CardBoundary} (docs/internal-contracts.md). */
export interface CardBoundaryOptions {
  /** Per-tenant HMAC key for tokens, ≥ 16 bytes (32 recommended). Copied; never sent anywhere. */
  tokenKey: Uint8Array;
  /** The cloud vault's X25519 public key, 32 bytes. */
  vaultPublicKey: Uint8Array;
  /** Put the track 1 / EMV 5F20 cardholder name into the token. @default false */
  allowCardholderName?: boolean;
  /** Accept a swipe of a chip card (service code 2xx/6xx) instead of `chip_required`. @default false */
  allowFallbackSwipe?: boolean;
  /** For the expiry check. @default systemClock */
  clock?: Clock;
}

/** Clear card data as read by a device. The boundary wipes every Buffer given here. */
export interface ClearCardRead {
  entryMode: EntryMode;
  /** Track 1 ASCII (ISO/IEC 7813 format B), empty when not read. */
  track1?: Buffer;
  /** Track 2 ASCII (ISO/IEC 7813), empty when not read. */
  track2?: Buffer;
  /** EMV BER-TLV bytes (binary, not hex), empty when not read. */
  emvTlv?: Buffer;
}

/** Reader-encrypted card data (SRED/P2PE, message 22 of architecture.md §3.2). No clear card data. */
export interface SredCardRead {
  entryMode: EntryMode;
  /** e.g. `411111******1111`: first 6 and last 4 in clear. */
  maskedPan: string;
  /** `YYMM`. */
  expiry: string;
  /** DUKPT key serial number, hex. */
  ksnHex: string;
  /** The reader's ciphertext, hex. */
  ciphertextHex: string;
  /**
   * Three-digit service code from the masked track, when the reader gives one (SRED HID
   * readers do; PIN pad message 22 does not): 2xx/6xx on a swipe is `chip_required`.
   */
  serviceCode?: string;
}

/** Result of the boundary: a token, or why not (with the coded error for logs; no card data). */
export type BoundaryResult =
  { ok: true; card: CardToken } | { ok: false; reason: CardReadFailure; error: AgentError };

const FAILURE_CODES: Partial<Record<CardReadFailure, DriverErrorCode>> = {
  invalid_pan: 'POS130',
  expired: 'POS131',
  bad_read: 'POS132',
  no_start_sentinel: 'POS132',
  chip_required: 'POS133',
};

function fail(reason: CardReadFailure, message: string): BoundaryResult {
  return {
    ok: false,
    reason,
    error: driverError(FAILURE_CODES[reason] ?? 'POS132', message, { details: { reason } }),
  };
}

/** Luhn check (ISO/IEC 7812-1 Annex B) over ASCII digit bytes; false on any non-digit. */
export function luhnValidBytes(digits: Uint8Array): boolean {
  return luhnValidCodes(digits.length, (i) => digits[i] ?? 0);
}

/**
 * BCD (EMV `cn`/`b` track 2 equivalent) → ASCII digits, D → '='; stops at an F nibble. The
 * result is a view of a {@link secureBytes} buffer: wiping it wipes every digit written (a
 * `Buffer.alloc` of ≤ 64 bytes lives on the V8 heap, where the collector leaves stale copies).
 */
function bcdToAscii(bcd: Buffer): Buffer {
  const out = secureBytes(bcd.length * 2);
  let n = 0;
  for (const byte of bcd) {
    for (const nibble of [byte >> 4, byte & 0x0f]) {
      if (nibble === 0x0f) return out.subarray(0, n);
      out[n++] = nibble === 0x0d ? 0x3d : nibble <= 9 ? 0x30 + nibble : 0x3f;
    }
  }
  return out.subarray(0, n);
}

const HEX = /^(?:[0-9A-Fa-f]{2})+$/;

/**
 * The card boundary (architecture.md §2). One instance per tenant key; stateless between cards.
 * @throws AgentError `POS135` from the constructor when a key has the wrong size.
 */
export class CardBoundary {
  readonly #tokenKey: Buffer;
  readonly #vaultPublicKey: KeyObject;
  readonly #allowName: boolean;
  readonly #allowFallback: boolean;
  readonly #clock: Clock;

  /** See {@link CardBoundaryOptions}. */
  constructor(opts: CardBoundaryOptions) {
    if (opts.tokenKey.length < 16)
      throw driverError(
        'POS135',
        `tokenKey is ${opts.tokenKey.length} bytes; it must be at least 16 (32 recommended). Provision the tenant key again`,
      );
    if (opts.vaultPublicKey.length !== 32)
      throw driverError(
        'POS135',
        `vaultPublicKey is ${opts.vaultPublicKey.length} bytes; an X25519 public key is 32 bytes. Provision the vault key again`,
      );
    this.#tokenKey = secureCopy(opts.tokenKey);
    this.#vaultPublicKey = x25519PublicKey(opts.vaultPublicKey);
    this.#allowName = opts.allowCardholderName ?? false;
    this.#allowFallback = opts.allowFallbackSwipe ?? false;
    this.#clock = opts.clock ?? systemClock;
  }

  /**
   * Tokenizes clear card data and wipes `read.track1`, `read.track2` and `read.emvTlv` (always,
   * also on failure). Track 2 is preferred, then track 1 (one good track is enough, architecture.md §3.3),
   * then EMV tag 57 or 5A + 5F24 (EMV Book 3 Annex A).
   * Failures: `bad_read`/`no_start_sentinel` (POS132), `invalid_pan` (POS130), `expired`
   * (POS131), `chip_required` (POS133, a swiped service code 2xx/6xx, ISO/IEC 7813 §10.3.9.1).
   */
  tokenize(read: ClearCardRead): BoundaryResult {
    const wipe: Buffer[] = [];
    for (const b of [read.track1, read.track2, read.emvTlv]) if (b !== undefined) wipe.push(b);
    try {
      return this.#tokenize(read, wipe);
    } finally {
      for (const b of wipe) b.fill(0);
    }
  }

  #tokenize(read: ClearCardRead, wipe: Buffer[]): BoundaryResult {
    const track1 =
      read.track1 !== undefined && read.track1.length > 0 ? parseTrack1(read.track1) : undefined;
    let track: ParsedTrack | undefined;
    let track2Content: Buffer | undefined;
    let firstFailure: 'bad_read' | 'no_start_sentinel' | undefined;
    const emvForward: Buffer[] = [];
    let emvName: Buffer | undefined;

    if (read.track2 !== undefined && read.track2.length > 0) {
      const t2 = parseTrack2(read.track2);
      if (t2.ok) {
        track = t2.track;
        const start = read.track2[0] === 0x3b ? 1 : 0;
        const q = read.track2.indexOf(0x3f, start);
        track2Content = read.track2.subarray(start, q < 0 ? read.track2.length : q);
      } else firstFailure = t2.reason;
    }
    if (track === undefined && track1?.ok === true) track = track1.track;
    else if (track === undefined && track1 !== undefined && !track1.ok)
      firstFailure ??= track1.reason;

    if (read.emvTlv !== undefined && read.emvTlv.length > 0) {
      const objects = parseTlv(read.emvTlv);
      if (objects === undefined) firstFailure ??= 'bad_read';
      for (const o of objects ?? []) {
        if (EMV_FORWARDED_TAGS.has(o.tag)) emvForward.push(o.raw);
        if (o.tag === '5F20') emvName = o.value;
      }
      if (track === undefined && objects !== undefined) {
        const t57 = objects.find((o) => o.tag === '57');
        const t5a = objects.find((o) => o.tag === '5A');
        const t5f24 = objects.find((o) => o.tag === '5F24');
        if (t57 !== undefined) {
          const ascii = bcdToAscii(t57.value);
          wipe.push(ascii);
          const t2 = parseTrack2(ascii);
          if (t2.ok) {
            track = t2.track;
            track2Content = ascii;
          } else firstFailure ??= 'bad_read';
        } else if (t5a !== undefined && t5f24 !== undefined && t5f24.value.length >= 2) {
          const pan = bcdToAscii(t5a.value);
          wipe.push(pan);
          const yy = t5f24.value[0] ?? 0;
          const mm = t5f24.value[1] ?? 0;
          track = {
            pan,
            expiryYY: (yy >> 4) * 10 + (yy & 0x0f),
            expiryMM: (mm >> 4) * 10 + (mm & 0x0f),
            serviceCode: 201,
          };
        }
      }
    }
    if (track === undefined)
      return fail(
        firstFailure ?? 'bad_read',
        `The card data could not be read (${firstFailure ?? 'no track or EMV data'}): ask the customer to try again`,
      );

    const { pan } = track;
    if (pan.length < 12 || pan.length > 19 || !luhnValidBytes(pan))
      return fail(
        'invalid_pan',
        `The card number (${pan.length} digits) is not a valid PAN: 12–19 digits with a Luhn check digit (ISO/IEC 7812-1). Ask the customer to try again or use another card`,
      );
    const expiry = this.#checkExpiry(track.expiryYY, track.expiryMM);
    if (!expiry.ok) return expiry.result;
    const svcFirst = Math.floor(track.serviceCode / 100);
    if (read.entryMode === 'swipe' && (svcFirst === 2 || svcFirst === 6) && !this.#allowFallback)
      return fail(
        'chip_required',
        `The swiped card has a chip (service code ${svcFirst}xx): ask the customer to insert or tap it (fallback swipe is off)`,
      );

    const card: CardToken = {
      token: this.#tokenOf([pan]),
      brand: brandOfPan(pan),
      first6: pan.subarray(0, 6).toString('ascii'),
      last4: pan.subarray(pan.length - 4).toString('ascii'),
      expiryMonth: track.expiryMM,
      expiryYear: 2000 + track.expiryYY,
      entryMode: read.entryMode,
    };
    const nameBytes = track1?.ok === true ? track1.track.name : emvName;
    // A name with any digit is dropped here, byte by byte, before it becomes a string: digits
    // in the name field are a misread or a PAN (issue 11: such names passed the reader and were
    // refused only later by the store, failing the payment).
    if (
      this.#allowName &&
      nameBytes !== undefined &&
      !nameBytes.some((b) => b >= 0x30 && b <= 0x39)
    ) {
      const name = nameBytes.toString('latin1').trim();
      if (name.length > 0 && findPanShapedRuns(name).length === 0 && !/\p{Nd}/u.test(name))
        card.cardholderName = name;
    }
    const plaintext = buildSealedPlaintext({
      pan,
      expiryYY: track.expiryYY,
      expiryMM: track.expiryMM,
      ...(track2Content === undefined ? {} : { track2: track2Content }),
      emvTlvs: emvForward,
    });
    try {
      card.sealed = sealToVault(plaintext, this.#vaultPublicKey);
    } finally {
      plaintext.fill(0);
    }
    return { ok: true, card };
  }

  /**
   * Passes reader-encrypted data through unopened (architecture.md §2, SRED/P2PE). The token cannot come
   * from the PAN (the terminal never sees it): it is `tok_` + base32 of the first 20 bytes of
   * HMAC-SHA-256(tokenKey, "sred" ‖ 0x00 ‖ KSN ‖ ciphertext). It identifies this read only
   * (DUKPT changes the KSN on every transaction); the cloud decrypts in its HSM and derives the
   * card's PAN token there. Failures: `bad_read` (POS132: masked PAN or hex fields malformed),
   * `expired` (POS131), `chip_required` (POS133: a swiped `serviceCode` 2xx/6xx, fallback off).
   */
  tokenizeSred(read: SredCardRead): BoundaryResult {
    const masked = read.maskedPan;
    const first6 = masked.slice(0, 6);
    const last4 = masked.slice(-4);
    if (
      masked.length < 12 ||
      masked.length > 19 ||
      !FIRST6_PATTERN.test(first6) ||
      !LAST4_PATTERN.test(last4) ||
      !HEX.test(read.ksnHex) ||
      !HEX.test(read.ciphertextHex) ||
      !/^\d{4}$/.test(read.expiry)
    )
      return fail(
        'bad_read',
        'The encrypted card read is malformed (masked PAN, expiry, KSN or ciphertext): ask the customer to try again',
      );
    const svcFirst = read.serviceCode?.[0];
    if (
      read.entryMode === 'swipe' &&
      (svcFirst === '2' || svcFirst === '6') &&
      !this.#allowFallback
    )
      return fail(
        'chip_required',
        `The swiped card has a chip (service code ${svcFirst}xx): ask the customer to insert or tap it (fallback swipe is off)`,
      );
    const yy = Number(read.expiry.slice(0, 2));
    const mm = Number(read.expiry.slice(2));
    const expiry = this.#checkExpiry(yy, mm);
    if (!expiry.ok) return expiry.result;
    const ksn = Buffer.from(read.ksnHex, 'hex');
    const ciphertext = Buffer.from(read.ciphertextHex, 'hex');
    return {
      ok: true,
      card: {
        token: this.#tokenOf([Buffer.from('sred\0', 'ascii'), ksn, ciphertext]),
        brand: brandOfPan(Buffer.from(first6, 'ascii')),
        first6,
        last4,
        expiryMonth: mm,
        expiryYear: 2000 + yy,
        entryMode: read.entryMode,
        sred: {
          ksnHex: read.ksnHex.toUpperCase(),
          ciphertextHex: read.ciphertextHex.toUpperCase(),
        },
      },
    };
  }

  #checkExpiry(yy: number, mm: number): { ok: true } | { ok: false; result: BoundaryResult } {
    if (mm < 1 || mm > 12)
      return {
        ok: false,
        result: fail(
          'bad_read',
          `The card's expiry month ${mm} is not 1–12: ask the customer to try again`,
        ),
      };
    // Valid through the last day of the expiry month (UTC).
    const endOfMonth = Date.UTC(2000 + yy, mm, 1);
    if (this.#clock.now() >= endOfMonth)
      return {
        ok: false,
        result: fail(
          'expired',
          `The card expired at the end of ${String(mm).padStart(2, '0')}/${2000 + yy}: ask for another card`,
        ),
      };
    return { ok: true };
  }

  #tokenOf(parts: Uint8Array[]): string {
    const hmac = createHmac('sha256', this.#tokenKey);
    for (const part of parts) hmac.update(part);
    const digest = hmac.digest();
    const token = `tok_${base32Lower(digest.subarray(0, 20))}`;
    digest.fill(0);
    return token;
  }
}
