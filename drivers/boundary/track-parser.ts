/**
 * Magnetic-stripe track parsers (ISO/IEC 7813 §§ 10–11) on Buffers of ASCII bytes. Results are
 * views into the input (no copies), so wiping the input wipes them.
 *
 * ```
 *  track 2:  ;  PAN (≤19 digits)  =  YYMM  SVC  discretionary…  ?  [LRC]
 *            sentinels optional; 'D' accepted for '=' (EMV track 2 equivalent)
 *  track 1:  %  B  PAN (≤19)  ^  NAME (≤26)  ^  YYMM  SVC  discretionary…  ?  [LRC]
 *  failed read from the reader:  ;E?   %E?
 * ```
 */
import type { Buffer } from 'node:buffer';

/** A parsed track; all Buffers are views into the input. */
export interface ParsedTrack {
  /** PAN as ASCII digits. */
  pan: Buffer;
  /** Expiry year, two digits (0–99). */
  expiryYY: number;
  /** Expiry month as written on the track (validity is checked by the boundary). */
  expiryMM: number;
  /** Three-digit service code (ISO/IEC 7813 §10.3.9.x), e.g. 101, 201. */
  serviceCode: number;
  /** Cardholder name bytes (track 1 only). */
  name?: Buffer;
}

/** Result of a track parser: the track or why it failed. */
export type TrackResult =
  { ok: true; track: ParsedTrack } | { ok: false; reason: 'bad_read' | 'no_start_sentinel' };

const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;

function digitsAt(data: Buffer, at: number, count: number): number | undefined {
  let n = 0;
  for (let i = at; i < at + count; i++) {
    const b = data[i];
    if (!isDigit(b)) return undefined;
    n = n * 10 + ((b ?? 0x30) - 0x30);
  }
  return n;
}

/** Parses `YYMM SVC` at `at`; discretionary data up to the end sentinel is ignored. */
function tail(data: Buffer, at: number, end: number): Omit<ParsedTrack, 'pan'> | undefined {
  if (end - at < 7) return undefined;
  const expiryYY = digitsAt(data, at, 2);
  const expiryMM = digitsAt(data, at + 2, 2);
  const serviceCode = digitsAt(data, at + 4, 3);
  if (expiryYY === undefined || expiryMM === undefined || serviceCode === undefined)
    return undefined;
  return { expiryYY, expiryMM, serviceCode };
}

/** Index of the end sentinel `?` (or the buffer end); bytes after `?` are the track LRC. */
function endOf(data: Buffer, from: number): number {
  const q = data.indexOf(0x3f, from);
  return q < 0 ? data.length : q;
}

/**
 * Parses ISO/IEC 7813 track 2, with or without sentinels. `;E?` (reader error) → `bad_read`;
 * text that starts with neither `;` nor a digit → `no_start_sentinel`.
 */
export function parseTrack2(data: Buffer): TrackResult {
  let i = 0;
  if (data[0] === 0x3b) i = 1;
  else if (!isDigit(data[0])) return { ok: false, reason: 'no_start_sentinel' };
  const end = endOf(data, i);
  const panStart = i;
  while (i < end && isDigit(data[i])) i++;
  const panLength = i - panStart;
  const separator = data[i];
  if (panLength === 0 || panLength > 19 || (separator !== 0x3d && separator !== 0x44))
    return { ok: false, reason: 'bad_read' };
  const rest = tail(data, i + 1, end);
  if (rest === undefined) return { ok: false, reason: 'bad_read' };
  return { ok: true, track: { pan: data.subarray(panStart, panStart + panLength), ...rest } };
}

/**
 * Parses ISO/IEC 7813 track 1 format B (`%B…^NAME^YYMMSVC…?`, sentinel optional).
 * `%E?` → `bad_read`; no `B` format code → `no_start_sentinel`.
 */
export function parseTrack1(data: Buffer): TrackResult {
  let i = data[0] === 0x25 ? 1 : 0;
  if (data[i] !== 0x42) return { ok: false, reason: i === 1 ? 'bad_read' : 'no_start_sentinel' };
  i++;
  const end = endOf(data, i);
  const panStart = i;
  while (i < end && isDigit(data[i])) i++;
  const panLength = i - panStart;
  if (panLength === 0 || panLength > 19 || data[i] !== 0x5e)
    return { ok: false, reason: 'bad_read' };
  const nameStart = i + 1;
  const nameEnd = data.indexOf(0x5e, nameStart);
  if (nameEnd < 0 || nameEnd > end || nameEnd - nameStart > 26)
    return { ok: false, reason: 'bad_read' };
  const rest = tail(data, nameEnd + 1, end);
  if (rest === undefined) return { ok: false, reason: 'bad_read' };
  return {
    ok: true,
    track: {
      pan: data.subarray(panStart, panStart + panLength),
      name: data.subarray(nameStart, nameEnd),
      ...rest,
    },
  };
}
