/**
 * The project SRED HID report: the input report of an encrypting ("secure reading and exchange
 * of data", PCI PTS SRED) USB magnetic stripe reader in vendor HID mode, as this project
 * supports it. Codec used by both sides (the agent's CardReader and the simulator's virtual
 * SRED reader). Pure; never throws on input.
 *
 * SOURCE AND ASSUMPTIONS — read before pointing this at real hardware. Encrypting MagTek readers
 * (MagneSafe: DynaMag, eDynamo, USB SureSwipe in "enhanced"/encrypted HID mode) send decode
 * status, encrypted track data, a DUKPT KSN and masked track text in one input report; the
 * byte-exact offsets of that report are in MagTek's vendor documentation (MagneSafe programmer's
 * manuals), which we could not cite byte by byte from a public source. So this is NOT claimed to
 * be MagTek's layout: it is our own, clearly named layout with the same fields in the same order
 * MagneSafe readers use (status, encrypted tracks, KSN, masked tracks), without the MagnePrint
 * and device serial fields. A driver for a real MagneSafe report maps its offsets onto
 * {@link SredHidReport} and everything after the parser stays the same.
 *
 * ```
 *  offset  size  field
 *    0       1   track 1 decode status        0 = ok
 *    1       1   track 2 decode status
 *    2       1   track 3 decode status
 *    3       1   encrypted track 1 length     0–112, a multiple of 8 (TDES block)
 *    4       1   encrypted track 2 length
 *    5       1   encrypted track 3 length
 *    6       1   card encode type             as the 337-byte report (0 ISO/ABA …)
 *    7     112   encrypted track 1            zero padded
 *  119     112   encrypted track 2
 *  231     112   encrypted track 3
 *  343      10   DUKPT KSN                    ANSI X9.24-1:2009 (TDES DUKPT): key set id ‖ device id ‖ 21-bit counter
 *  353       1   masked track 1 length        0–112
 *  354       1   masked track 2 length
 *  355       1   masked track 3 length
 *  356     112   masked track 1               ASCII, PAN digits 7…n−4 replaced by '*', '0' or 'X'
 *  468     112   masked track 2
 *  580     112   masked track 3
 *  ────   ────
 *          692 bytes   (693 with a leading report ID 0x00 from hidapi on Windows: stripped)
 * ```
 *
 * What leaves here: `{ maskedPan (first 6 + '*' + last 4), expiry YYMM, service code, ksnHex,
 * ciphertextHex }` — the {@link SredCardRead} that `CardBoundary.tokenizeSred` passes through
 * unopened (architecture.md §2). The ciphertext is the encrypted track whose masked twin gave the masked
 * PAN (track 2 preferred, ISO/IEC 7813 track 2 is what issuers authorize on). A masked track
 * with a clear digit inside the PAN (a reader whose masking is switched off) is refused with
 * POS146 and never becomes a string.
 */
import { Buffer } from 'node:buffer';
import type { AgentError } from '../../common/agent-error.js';
import type { SredCardRead } from '../boundary/card-boundary.js';
import { driverError } from '../errors.js';

/** Size of the project SRED HID report in bytes. */
export const SRED_HID_REPORT_BYTES = 692;
/** Size of each encrypted and masked track field in bytes. */
export const SRED_TRACK_FIELD_BYTES = 112;
/** Offset of the encrypted track 1 field; encrypted track n at 7 + 112·(n−1). */
export const SRED_ENCRYPTED_OFFSET = 7;
/** Offset of the 10-byte DUKPT KSN. */
export const SRED_KSN_OFFSET = 343;
/** Size of the KSN (TDES DUKPT, ANSI X9.24-1:2009). */
export const SRED_KSN_BYTES = 10;
/** Offset of the three masked track lengths. */
export const SRED_MASKED_LENGTHS_OFFSET = 353;
/** Offset of the masked track 1 field; masked track n at 356 + 112·(n−1). */
export const SRED_MASKED_OFFSET = 356;
/** Cipher block size the encrypted lengths must be a multiple of (TDES). */
export const SRED_CIPHER_BLOCK_BYTES = 8;

/** One decoded SRED report. Buffers are views into the report: wiping the report wipes them. */
export interface SredHidReport {
  /** Decode status of tracks 1, 2, 3 (0 = ok). */
  status: [number, number, number];
  /** Card encode type byte (0 ISO/ABA, see hid-msr-report.ts `ENCODE_TYPES`). */
  encodeType: number;
  /** The 10-byte DUKPT KSN. */
  ksn: Buffer;
  /** Encrypted tracks 1 and 2 (present when status 0 and length > 0). Track 3 is not used. */
  encrypted: [Buffer | undefined, Buffer | undefined];
  /** Masked tracks 1 and 2 (present when status 0 and length > 0). */
  masked: [Buffer | undefined, Buffer | undefined];
}

/** Result of {@link parseSredHidReport}: the report or a coded `POS146` error (no card data). */
export type SredHidParseResult =
  { ok: true; report: SredHidReport } | { ok: false; error: AgentError };

/** True when a HID input report of this size is a project SRED report (with or without report ID). */
export function isSredHidReportSize(length: number): boolean {
  return length === SRED_HID_REPORT_BYTES || length === SRED_HID_REPORT_BYTES + 1;
}

function bad(message: string, details: Record<string, unknown>): SredHidParseResult {
  return { ok: false, error: driverError('POS146', message, { details }) };
}

/**
 * Parses one project SRED HID report (layout in the module comment). Pure; never throws.
 * @param data — 692 bytes (or 693 with a leading report ID 0x00).
 * @returns `POS146` when the size is wrong, a length exceeds 112, or an encrypted length is not
 *   a multiple of 8.
 */
export function parseSredHidReport(data: Buffer): SredHidParseResult {
  let r = data;
  if (r.length === SRED_HID_REPORT_BYTES + 1 && r[0] === 0x00) r = r.subarray(1);
  if (r.length !== SRED_HID_REPORT_BYTES)
    return bad(
      `SRED HID report is ${data.length} bytes; the project SRED report is ${SRED_HID_REPORT_BYTES} (drivers/readers/sred-hid-report.ts). Check the reader's HID report mode`,
      { length: data.length },
    );
  const status: [number, number, number] = [r[0] ?? 0, r[1] ?? 0, r[2] ?? 0];
  const encrypted: [Buffer | undefined, Buffer | undefined] = [undefined, undefined];
  const masked: [Buffer | undefined, Buffer | undefined] = [undefined, undefined];
  for (let t = 0; t < 3; t++) {
    const encLength = r[3 + t] ?? 0;
    const maskLength = r[SRED_MASKED_LENGTHS_OFFSET + t] ?? 0;
    if (encLength > SRED_TRACK_FIELD_BYTES || maskLength > SRED_TRACK_FIELD_BYTES)
      return bad(
        `SRED HID report says track ${t + 1} is ${Math.max(encLength, maskLength)} bytes; a track field holds at most ${SRED_TRACK_FIELD_BYTES}. The report is corrupt: ask the customer to swipe again`,
        { track: t + 1, encryptedLength: encLength, maskedLength: maskLength },
      );
    if (encLength % SRED_CIPHER_BLOCK_BYTES !== 0)
      return bad(
        `SRED HID report: encrypted track ${t + 1} is ${encLength} bytes, not a multiple of the ${SRED_CIPHER_BLOCK_BYTES}-byte cipher block. The report is corrupt: ask the customer to swipe again`,
        { track: t + 1, encryptedLength: encLength },
      );
    if (t === 2 || status[t] !== 0) continue;
    if (encLength > 0) {
      const at = SRED_ENCRYPTED_OFFSET + t * SRED_TRACK_FIELD_BYTES;
      encrypted[t] = r.subarray(at, at + encLength);
    }
    if (maskLength > 0) {
      const at = SRED_MASKED_OFFSET + t * SRED_TRACK_FIELD_BYTES;
      masked[t] = r.subarray(at, at + maskLength);
    }
  }
  return {
    ok: true,
    report: {
      status,
      encodeType: r[6] ?? 0,
      ksn: r.subarray(SRED_KSN_OFFSET, SRED_KSN_OFFSET + SRED_KSN_BYTES),
      encrypted,
      masked,
    },
  };
}

const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;
/** Mask characters of encrypting readers: '*' (most), '0' (MagTek's default), 'X'. */
const isMask = (b: number | undefined): boolean => b === 0x2a || b === 0x30 || b === 0x58;

/** What a masked track gives: masked PAN bounds, expiry and service code (no card data). */
interface MaskedFields {
  panStart: number;
  panEnd: number;
  expiry: string;
  serviceCode: string;
}

/** Why a masked track was refused: unreadable, or a clear digit where the mask should be. */
type MaskedParse = { ok: true; fields: MaskedFields } | { ok: false; clear: boolean };

/**
 * Masked track 2 `; first6 mask… last4 = YYMM SVC …?` or track 1 `%B first6 mask… last4 ^ NAME ^
 * YYMM SVC …?` (ISO/IEC 7813 §§ 10–11 with the PAN's middle digits masked).
 */
function parseMasked(track: Buffer, trackNo: 1 | 2): MaskedParse {
  // The start sentinel is required: without it (a reversed swipe, noise) nothing is a PAN.
  if (track[0] !== (trackNo === 2 ? 0x3b : 0x25)) return { ok: false, clear: false };
  let at = 1;
  if (trackNo === 1) {
    if (track[at] !== 0x42) return { ok: false, clear: false };
    at++;
  }
  const panStart = at;
  const separator = trackNo === 2 ? 0x3d : 0x5e;
  while (at < track.length && track[at] !== separator) at++;
  const panEnd = at;
  const length = panEnd - panStart;
  if (at >= track.length || length < 12 || length > 19) return { ok: false, clear: false };
  // A middle with digits other than '0' is a clear PAN: masking is off on the reader.
  for (let i = panStart + 6; i < panEnd - 4; i++)
    if (isDigit(track[i]) && track[i] !== 0x30) return { ok: false, clear: true };
  for (let i = panStart; i < panEnd; i++) {
    const b = track[i];
    const inMiddle = i >= panStart + 6 && i < panEnd - 4;
    if (inMiddle ? !isMask(b) : !isDigit(b)) return { ok: false, clear: false };
  }
  at++;
  if (trackNo === 1) {
    while (at < track.length && track[at] !== 0x5e) at++;
    if (at >= track.length) return { ok: false, clear: false };
    at++;
  }
  for (let i = at; i < at + 7; i++) if (!isDigit(track[i])) return { ok: false, clear: false };
  return {
    ok: true,
    fields: {
      panStart,
      panEnd,
      expiry: track.subarray(at, at + 4).toString('ascii'),
      serviceCode: track.subarray(at + 4, at + 7).toString('ascii'),
    },
  };
}

/** Result of {@link sredReadOf}: what the boundary needs, or `bad_read` with its coded error. */
export type SredReadResult =
  { ok: true; read: SredCardRead } | { ok: false; reason: 'bad_read'; error: AgentError };

/**
 * Turns a parsed SRED report into the {@link SredCardRead} for `CardBoundary.tokenizeSred`:
 * masked PAN `first6****last4`, expiry and service code from the masked track (2, else 1), the
 * KSN and the encrypted twin of that track as upper-case hex. Pure; never throws.
 * @returns `bad_read` with POS132 when no track was read or its masked text does not parse;
 *   with POS146 when the "masked" PAN holds clear digits (reader masking off) or the encrypted
 *   twin is missing. Error messages carry no card data.
 */
export function sredReadOf(report: SredHidReport): SredReadResult {
  let sawClear = false;
  for (const trackNo of [2, 1] as const) {
    const masked = report.masked[trackNo - 1];
    const encrypted = report.encrypted[trackNo - 1];
    if (masked === undefined) continue;
    const parsed = parseMasked(masked, trackNo);
    if (!parsed.ok) {
      sawClear ||= parsed.clear;
      continue;
    }
    if (encrypted === undefined)
      return {
        ok: false,
        reason: 'bad_read',
        error: driverError(
          'POS146',
          `SRED HID report has masked track ${trackNo} but no encrypted track ${trackNo}: ask the customer to swipe again; if it repeats, check the reader's encryption settings`,
          { details: { track: trackNo } },
        ),
      };
    const { panStart, panEnd, expiry, serviceCode } = parsed.fields;
    const maskedPan =
      masked.subarray(panStart, panStart + 6).toString('ascii') +
      '*'.repeat(panEnd - panStart - 10) +
      masked.subarray(panEnd - 4, panEnd).toString('ascii');
    return {
      ok: true,
      read: {
        entryMode: 'swipe',
        maskedPan,
        expiry,
        serviceCode,
        ksnHex: report.ksn.toString('hex').toUpperCase(),
        ciphertextHex: encrypted.toString('hex').toUpperCase(),
      },
    };
  }
  return {
    ok: false,
    reason: 'bad_read',
    error: sawClear
      ? driverError(
          'POS146',
          'SRED HID report: the masked track holds clear PAN digits, so the reader is not masking; the read was discarded. Turn masking on in the reader configuration',
          { details: { reason: 'clear_pan_in_masked_track' } },
        )
      : driverError(
          'POS132',
          'SRED HID report has no readable masked track 1 or 2: ask the customer to swipe again',
          { details: { status: report.status } },
        ),
  };
}

/** One track of {@link encodeSredHidReport}: masked text and ciphertext, or a decode error status. */
export type SredTrackInput =
  { masked: Uint8Array; encrypted: Uint8Array } | { status: number } | undefined;

/**
 * Builds a 692-byte project SRED report (the simulator's virtual reader; tests). A missing track
 * has status 0 and lengths 0; `{ status }` gives a failed track.
 * @throws AgentError `POS146` when a field is too long, an encrypted track is not whole 8-byte
 *   blocks, or the KSN is not 10 bytes.
 */
export function encodeSredHidReport(
  tracks: [SredTrackInput, SredTrackInput],
  ksn: Uint8Array,
  encodeType = 0,
): Buffer {
  if (ksn.length !== SRED_KSN_BYTES)
    throw driverError(
      'POS146',
      `the KSN is ${ksn.length} bytes; the SRED report holds ${SRED_KSN_BYTES}`,
    );
  const out = Buffer.alloc(SRED_HID_REPORT_BYTES);
  out[6] = encodeType;
  out.set(ksn, SRED_KSN_OFFSET);
  tracks.forEach((track, t) => {
    if (track === undefined) return;
    if (!('masked' in track)) {
      out[t] = track.status;
      return;
    }
    if (
      track.masked.length > SRED_TRACK_FIELD_BYTES ||
      track.encrypted.length > SRED_TRACK_FIELD_BYTES ||
      track.encrypted.length % SRED_CIPHER_BLOCK_BYTES !== 0
    )
      throw driverError(
        'POS146',
        `track ${t + 1}: masked ${track.masked.length} / encrypted ${track.encrypted.length} bytes; fields hold at most ${SRED_TRACK_FIELD_BYTES}, encrypted in whole ${SRED_CIPHER_BLOCK_BYTES}-byte blocks`,
      );
    out[3 + t] = track.encrypted.length;
    out.set(track.encrypted, SRED_ENCRYPTED_OFFSET + t * SRED_TRACK_FIELD_BYTES);
    out[SRED_MASKED_LENGTHS_OFFSET + t] = track.masked.length;
    out.set(track.masked, SRED_MASKED_OFFSET + t * SRED_TRACK_FIELD_BYTES);
  });
  return out;
}
