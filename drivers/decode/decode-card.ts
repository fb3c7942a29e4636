/**
 * The card trace decoders (decode-trace.ts): a 337-byte vendor HID report, keyboard-wedge boot
 * reports, ASCII track text and EMV BER-TLV, every PAN masked and other card data summarised
 * by length.
 */
import { Buffer } from 'node:buffer';
import { brandOfPan } from '../boundary/bin-table.js';
import { luhnValidBytes } from '../boundary/card-boundary.js';
import { classifyEmvTag, parseEmvTlv } from '../boundary/emv-tags.js';
import { parseTrack1, parseTrack2 } from '../boundary/track-parser.js';
import { driverError } from '../errors.js';
import { ENCODE_TYPES, parseHidMsrReport } from '../readers/hid-msr-report.js';
import { BOOT_REPORT_BYTES, WedgeDecoder } from '../readers/keyboard-wedge.js';
import { isTrackError, splitSwipeText } from '../readers/swipe-text.js';
import {
  addError,
  hexByte,
  maskPanDigits,
  maskPanShapedHex,
  type DecodedTrace,
} from './decode-mask.js';

/** Decodes a `hid-msr` trace into `out` (see decode-trace.ts). */
export function decodeHidMsr(bytes: Buffer, out: DecodedTrace): void {
  const parsed = parseHidMsrReport(bytes);
  if (!parsed.ok) {
    addError(out, parsed.error, '');
    return;
  }
  const r = parsed.report;
  out.lines.push(
    `HID MSR report, encode type ${r.encodeType} (${ENCODE_TYPES[r.encodeType] ?? 'unknown'})`,
  );
  const tracks = [r.track1, r.track2, r.track3];
  for (let t = 0; t < 3; t++) {
    const status = r.status[t] ?? 0;
    const length = r.lengths[t] ?? 0;
    out.lines.push(
      `  track ${t + 1}: status 0x${hexByte(status)} (${status === 0 ? 'ok' : 'read error'}), length ${length}`,
    );
    const track = tracks[t];
    if (track !== undefined && t < 2) decodeTrackText(track, t + 1, out, '    ');
    else if (track !== undefined)
      out.lines.push(`    track 3 data: ${track.length} characters (not shown)`);
  }
  if (r.track1 === undefined && r.track2 === undefined)
    addError(
      out,
      driverError('POS132', 'no readable track 1 or 2 in the report (bad_read): swipe again', {
        details: { reason: 'bad_read' },
      }),
      '  ',
    );
}

/** Decodes a `wedge` trace into `out` (see decode-trace.ts). */
export function decodeWedge(bytes: Buffer, out: DecodedTrace): void {
  if (bytes.length % BOOT_REPORT_BYTES !== 0)
    addError(
      out,
      driverError(
        'POS141',
        `the wedge trace is ${bytes.length} bytes, not a multiple of ${BOOT_REPORT_BYTES}: give whole 8-byte keyboard reports`,
      ),
      '',
    );
  const decoder = new WedgeDecoder();
  let swipes = 0;
  for (let i = 0; i + BOOT_REPORT_BYTES <= bytes.length; i += BOOT_REPORT_BYTES) {
    for (const o of decoder.push(bytes.subarray(i, i + BOOT_REPORT_BYTES))) {
      if (o.kind === 'error') {
        addError(out, o.error, '');
        continue;
      }
      swipes++;
      out.lines.push(
        `swipe ${swipes}: ${o.text.length} characters${o.unknownKeys > 0 ? `, ${o.unknownKeys} key(s) without a US-layout character skipped` : ''}`,
      );
      decodeSwipeText(o.text, out, '  ');
      o.text.fill(0);
    }
  }
  if (decoder.pendingLength > 0)
    addError(
      out,
      driverError(
        'POS141',
        `${decoder.pendingLength} characters after the last Enter: the swipe is incomplete (capture until Enter, usage 0x28)`,
      ),
      '',
    );
  decoder.reset();
}

/** Decodes a `track` trace into `out` (see decode-trace.ts). */
export function decodeSwipeText(text: Buffer, out: DecodedTrace, indent: string): void {
  const tracks = splitSwipeText(text);
  if (tracks.track1 === undefined && tracks.track2 === undefined) {
    addError(
      out,
      driverError(
        'POS132',
        `no track start sentinel ('%' or ';') in ${text.length} characters (no_start_sentinel): a reversed or partial swipe, or not card data`,
        { details: { reason: 'no_start_sentinel' } },
      ),
      indent,
    );
    return;
  }
  if (tracks.track1 !== undefined) decodeTrackText(tracks.track1, 1, out, indent);
  if (tracks.track2 !== undefined) decodeTrackText(tracks.track2, 2, out, indent);
  if (tracks.track3 !== undefined)
    out.lines.push(`${indent}track 3: ${tracks.track3.length} characters (not shown)`);
  if (tracks.strayBytes > 0)
    out.lines.push(`${indent}${tracks.strayBytes} character(s) outside the tracks ignored`);
}

/** Decodes ASCII track text (track 1 or 2) into `out`, the PAN masked (see decode-trace.ts). */
export function decodeTrackText(
  track: Buffer,
  number: 1 | 2 | number,
  out: DecodedTrace,
  indent: string,
): void {
  if (isTrackError(track)) {
    addError(
      out,
      driverError('POS132', `track ${number}: the reader reports a read error (E): bad_read`, {
        details: { reason: 'bad_read', track: number },
      }),
      indent,
    );
    return;
  }
  const parsed = number === 1 ? parseTrack1(track) : parseTrack2(track);
  if (!parsed.ok) {
    addError(
      out,
      driverError(
        'POS132',
        `track ${number}: ${track.length} characters do not parse as ISO/IEC 7813 track ${number} (${parsed.reason})`,
        { details: { reason: parsed.reason, track: number } },
      ),
      indent,
    );
    return;
  }
  const t = parsed.track;
  const svc = t.serviceCode;
  const svcFirst = Math.floor(svc / 100);
  const hasEnd = track.indexOf(0x3f) >= 0;
  out.lines.push(
    `${indent}track ${number}: PAN ${maskPanDigits(t.pan)} (${t.pan.length} digits, Luhn ${luhnValidBytes(t.pan) ? 'ok' : 'FAILS'}, brand ${brandOfPan(t.pan)})`,
  );
  out.lines.push(
    `${indent}  expiry ${String(t.expiryMM).padStart(2, '0')}/${String(t.expiryYY).padStart(2, '0')}, service code ${String(svc).padStart(3, '0')}${svcFirst === 2 || svcFirst === 6 ? ' (chip card: a swipe is refused as chip_required unless fallback is allowed)' : ''}`,
  );
  if (t.name !== undefined)
    out.lines.push(`${indent}  name: ${t.name.length} characters (not shown)`);
  out.lines.push(`${indent}  end sentinel ${hasEnd ? 'present' : 'MISSING'}`);
}

/** Decodes a `tlv` trace into `out` (see decode-trace.ts). */
export function decodeTlv(bytes: Buffer, out: DecodedTrace, indent: string): void {
  const parsed = parseEmvTlv(bytes);
  if (!parsed.ok) {
    addError(out, parsed.error, indent);
    return;
  }
  for (const o of parsed.objects) {
    const handling = classifyEmvTag(o.tag);
    let shown: string;
    if (handling === 'forward') shown = maskPanShapedHex(o.value);
    else if (handling === 'drop') shown = `(dropped: not on the allow-list)`;
    else if (o.tag === '5A') {
      const digits = bcdDigits(o.value);
      shown = `PAN ${maskPanDigits(digits)} (sealed)`;
      digits.fill(0);
    } else if (o.tag === '57') {
      const digits = bcdDigits(o.value);
      const sep = digits.indexOf(0x3d);
      shown = `PAN ${maskPanDigits(sep < 0 ? digits : digits.subarray(0, sep))}, rest not shown (sealed)`;
      digits.fill(0);
    } else shown = '(sealed, not shown)';
    out.lines.push(
      `${indent}${o.tag.padEnd(4)} len ${String(o.value.length).padStart(3)} ${handling.padEnd(7)} ${shown}`,
    );
  }
}

/** BCD nibbles → ASCII digits, D → '=', stopping at an F pad nibble; other nibbles → '?'. */
function bcdDigits(bcd: Buffer): Buffer {
  const out = Buffer.alloc(bcd.length * 2);
  let n = 0;
  for (const byte of bcd)
    for (const nib of [byte >> 4, byte & 0x0f]) {
      if (nib === 0x0f) return out.subarray(0, n);
      out[n++] = nib === 0x0d ? 0x3d : nib <= 9 ? 0x30 + nib : 0x3f;
    }
  return out.subarray(0, n);
}
