/**
 * The vendor HID input report of USB magnetic stripe readers in HID mode (MagTek USB HID swipe
 * readers, VID 0x0801; ID TECH in MagTek-compatible HID mode, VID 0x0ACD): architecture.md §3.3, after
 * MagTek "USB HID Swipe Reader Technical Reference Manual" (99875206), section "Input report".
 * Codec used by both sides (the agent's CardReader and the simulator's virtual HID reader).
 *
 * ```
 *  offset  size  field
 *   0       1    track 1 decode status   0 = ok, anything else = read error on that track
 *   1       1    track 2 decode status
 *   2       1    track 3 decode status
 *   3       1    track 1 length          0–110, bytes of track 1 data that are valid
 *   4       1    track 2 length
 *   5       1    track 3 length
 *   6       1    card encode type        0 ISO/ABA, 1 AAMVA, 3 blank, 4 other, 5 undetermined, 6 none
 *   7     110    track 1 data (ASCII, zero padded)
 *  117    110    track 2 data
 *  227    110    track 3 data
 *  ────  ────
 *        337 bytes
 * ```
 *
 * Quirk: hidapi on Windows prepends the report ID 0x00 to every read of a device without report
 * IDs, giving 338 bytes; a 338-byte report whose first byte is 0x00 is accepted with it stripped.
 *
 * Track data are returned as views into the report, so wiping the report wipes them.
 */
import { Buffer } from 'node:buffer';
import type { AgentError } from '../../common/agent-error.js';
import { driverError } from '../errors.js';

/** Size of the vendor HID MSR input report in bytes. */
export const HID_MSR_REPORT_BYTES = 337;
/** Size of each of the three track fields in bytes. */
export const HID_MSR_TRACK_FIELD_BYTES = 110;
/** Offset of the track 1 field; track n starts at 7 + 110·(n−1). */
export const HID_MSR_TRACK_OFFSET = 7;

/** Names of the card encode type byte (offset 6). */
export const ENCODE_TYPES: Readonly<Record<number, string>> = {
  0: 'ISO/ABA',
  1: 'AAMVA',
  3: 'blank',
  4: 'other',
  5: 'undetermined',
  6: 'none',
};

/** One decoded report. Tracks are present only when their status is 0 and their length > 0. */
export interface HidMsrReport {
  /** Decode status of tracks 1, 2, 3 (0 = ok). */
  status: [number, number, number];
  /** Valid bytes in each track field, 0–110. */
  lengths: [number, number, number];
  /** Card encode type byte, see {@link ENCODE_TYPES}. */
  encodeType: number;
  /** Track 1 ASCII (view into the report). */
  track1?: Buffer;
  /** Track 2 ASCII (view into the report). */
  track2?: Buffer;
  /** Track 3 ASCII (view into the report). */
  track3?: Buffer;
}

/** Result of {@link parseHidMsrReport}: the report or a coded `POS140` error (no card data). */
export type HidMsrParseResult =
  { ok: true; report: HidMsrReport } | { ok: false; error: AgentError };

/**
 * Parses one vendor HID MSR input report. Pure; never throws.
 * @param data — one input report, 337 bytes (or 338 with a leading report ID 0x00).
 * @returns `POS140` when the size is wrong or a track length exceeds 110 bytes.
 */
export function parseHidMsrReport(data: Buffer): HidMsrParseResult {
  let r = data;
  if (r.length === HID_MSR_REPORT_BYTES + 1 && r[0] === 0x00) r = r.subarray(1);
  if (r.length !== HID_MSR_REPORT_BYTES)
    return {
      ok: false,
      error: driverError(
        'POS140',
        `HID MSR report is ${data.length} bytes; the vendor report is ${HID_MSR_REPORT_BYTES} (MagTek 99875206). Check that the reader is in HID mode, not keyboard-wedge (configure kind "wedge" then)`,
        { details: { length: data.length } },
      ),
    };
  const status: [number, number, number] = [r[0] ?? 0, r[1] ?? 0, r[2] ?? 0];
  const lengths: [number, number, number] = [r[3] ?? 0, r[4] ?? 0, r[5] ?? 0];
  for (let t = 0; t < 3; t++) {
    const length = lengths[t] ?? 0;
    if (length > HID_MSR_TRACK_FIELD_BYTES)
      return {
        ok: false,
        error: driverError(
          'POS140',
          `HID MSR report says track ${t + 1} is ${length} bytes; a track field holds at most ${HID_MSR_TRACK_FIELD_BYTES}. The report is corrupt: ask the customer to swipe again`,
          { details: { track: t + 1, length } },
        ),
      };
  }
  const report: HidMsrReport = { status, lengths, encodeType: r[6] ?? 0 };
  for (let t = 0; t < 3; t++) {
    const length = lengths[t] ?? 0;
    if (status[t] !== 0 || length === 0) continue;
    const start = HID_MSR_TRACK_OFFSET + t * HID_MSR_TRACK_FIELD_BYTES;
    const view = r.subarray(start, start + length);
    if (t === 0) report.track1 = view;
    else if (t === 1) report.track2 = view;
    else report.track3 = view;
  }
  return { ok: true, report };
}

/** One track of {@link encodeHidMsrReport}: its ASCII bytes, or a decode error status. */
export type HidMsrTrackInput = Uint8Array | { status: number } | undefined;

/**
 * Builds a 337-byte report (the simulator's virtual reader; tests). A missing track has status 0
 * and length 0; `{ status }` gives a failed track (length 0).
 * @throws AgentError `POS140` when a track is longer than 110 bytes.
 */
export function encodeHidMsrReport(
  tracks: [HidMsrTrackInput, HidMsrTrackInput, HidMsrTrackInput],
  encodeType = 0,
): Buffer {
  const out = Buffer.alloc(HID_MSR_REPORT_BYTES);
  out[6] = encodeType;
  tracks.forEach((track, t) => {
    if (track === undefined) return;
    if (!(track instanceof Uint8Array)) {
      out[t] = track.status;
      return;
    }
    if (track.length > HID_MSR_TRACK_FIELD_BYTES)
      throw driverError(
        'POS140',
        `track ${t + 1} is ${track.length} bytes; a HID MSR track field holds at most ${HID_MSR_TRACK_FIELD_BYTES}`,
      );
    out[3 + t] = track.length;
    out.set(track, HID_MSR_TRACK_OFFSET + t * HID_MSR_TRACK_FIELD_BYTES);
  });
  return out;
}
