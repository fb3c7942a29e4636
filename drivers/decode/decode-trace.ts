/**
 * Trace decoders for `pos-agent decode` (field techs): a captured hex trace in, human-readable
 * lines out, with every PAN masked to first 6 / last 4 (PCI DSS 4.0.1 req. 3.4.1) and no other
 * card data shown (discretionary data, names, sensitive EMV tags are summarised by length).
 * They live in `drivers/` because they touch card data; what leaves is masked text only.
 *
 * ```
 *  kind     input bytes                          decoded with
 *  link     STX payload ETX LRC / ACK NAK EOT    framing.ts FrameDecoder + messages.ts (architecture.md §3.1, §3.2)
 *  hid-msr  one 337-byte vendor report           hid-msr-report.ts (MagTek 99875206)
 *  wedge    8-byte boot keyboard reports         keyboard-wedge.ts (USB HID Usage Tables §10)
 *  track    ASCII track text (one or more)       swipe-text.ts + track-parser.ts (ISO/IEC 7813)
 *  tlv      EMV BER-TLV                           tlv.ts + emv-tags.ts (EMV Book 3 Annex B)
 * ```
 *
 * Every decoder wipes the input bytes it was given once it is done.
 */
import { Buffer } from 'node:buffer';
import { isAgentError, type AgentError } from '../../common/agent-error.js';
import { luhnValidDigits, redactPanShapedRuns } from '../../common/luhn-scan.js';
import { brandOfPan } from '../boundary/bin-table.js';
import { luhnValidBytes } from '../boundary/card-boundary.js';
import { classifyEmvTag, parseEmvTlv } from '../boundary/emv-tags.js';
import { parseTrack1, parseTrack2 } from '../boundary/track-parser.js';
import { driverError } from '../errors.js';
import { computeLrc, ETX, FrameDecoder, STX } from '../link/framing.js';
import { decodeMessage } from '../pinpad/messages.js';
import { ENCODE_TYPES, parseHidMsrReport } from '../readers/hid-msr-report.js';
import { BOOT_REPORT_BYTES, WedgeDecoder } from '../readers/keyboard-wedge.js';
import { isTrackError, splitSwipeText } from '../readers/swipe-text.js';

/** Kinds of trace `pos-agent decode` understands. */
export const TRACE_KINDS = ['link', 'hid-msr', 'wedge', 'track', 'tlv'] as const;
/** One of {@link TRACE_KINDS}. */
export type TraceKind = (typeof TRACE_KINDS)[number];

/** What a decoder produced: lines to print (masked) and the coded errors met on the way. */
export interface DecodedTrace {
  lines: string[];
  errors: AgentError[];
}

/**
 * Masks a PAN given as ASCII digits: first 6 and last 4 in clear, `*` between (PCI DSS 4.0.1
 * req. 3.4.1). Fewer than 13 digits: only the last 4 (shorter numbers are not PANs, and showing
 * 10 of 12 digits would reveal too much). Non-digits are masked too.
 */
export function maskPanDigits(pan: Uint8Array): string {
  const n = pan.length;
  let out = '';
  for (let i = 0; i < n; i++) {
    const b = pan[i] ?? 0;
    const clear = n >= 13 ? i < 6 || i >= n - 4 : n > 4 && i >= n - 4;
    out += clear && b >= 0x30 && b <= 0x39 ? String.fromCharCode(b) : '*';
  }
  return out;
}

const hexByte = (b: number): string => b.toString(16).toUpperCase().padStart(2, '0');

/**
 * Parses a pasted hex trace: hex digit pairs, optionally separated by spaces, newlines, commas,
 * colons or dashes, each optionally prefixed with `0x`. The text is a Buffer (stdin) or a string
 * (command-line arguments). Returns `POS142` naming the first offending character's offset.
 */
export function parseHexTrace(
  text: Buffer | string,
): { ok: true; bytes: Buffer } | { ok: false; error: AgentError } {
  const src = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const out = Buffer.alloc(Math.ceil(src.length / 2));
  let n = 0;
  let high = -1;
  const nibble = (c: number): number =>
    c >= 0x30 && c <= 0x39
      ? c - 0x30
      : c >= 0x41 && c <= 0x46
        ? c - 55
        : c >= 0x61 && c <= 0x66
          ? c - 87
          : -1;
  for (let i = 0; i < src.length; i++) {
    const c = src[i] ?? 0;
    if (high < 0 && c === 0x30 && (src[i + 1] === 0x78 || src[i + 1] === 0x58)) {
      i++;
      continue;
    }
    const v = nibble(c);
    if (v >= 0) {
      if (high < 0) high = v;
      else {
        out[n++] = (high << 4) | v;
        high = -1;
      }
      continue;
    }
    if (
      high < 0 &&
      (c === 0x20 ||
        c === 0x09 ||
        c === 0x0a ||
        c === 0x0d ||
        c === 0x2c ||
        c === 0x3a ||
        c === 0x2d)
    )
      continue;
    out.fill(0);
    return {
      ok: false,
      error: driverError(
        'POS142',
        `The trace is not hex at character ${i + 1}: give pairs of hex digits (e.g. "02 30 30 03 03"), separated by spaces, commas or colons, optionally with 0x`,
        { details: { offset: i } },
      ),
    };
  }
  if (high >= 0) {
    out.fill(0);
    return {
      ok: false,
      error: driverError(
        'POS142',
        'The trace has an odd number of hex digits: every byte is two hex digits; the last byte is cut',
      ),
    };
  }
  const bytes = Buffer.from(out.subarray(0, n));
  out.fill(0);
  return { ok: true, bytes };
}

/**
 * Decodes a trace of the given kind. Never throws; wipes `bytes`.
 * @param kind — one of {@link TRACE_KINDS}.
 * @param bytes — the binary trace (see {@link parseHexTrace}).
 */
export function decodeTrace(kind: TraceKind, bytes: Buffer): DecodedTrace {
  const result: DecodedTrace = { lines: [], errors: [] };
  try {
    switch (kind) {
      case 'link':
        decodeLink(bytes, result);
        break;
      case 'hid-msr':
        decodeHidMsr(bytes, result);
        break;
      case 'wedge':
        decodeWedge(bytes, result);
        break;
      case 'track':
        decodeSwipeText(bytes, result, '');
        break;
      case 'tlv':
        decodeTlv(bytes, result, '');
        break;
    }
  } catch (error) {
    // A decoder bug must not print card data or crash the tech's shell: report it coded.
    result.errors.push(
      isAgentError(error)
        ? error
        : driverError(
            'POS142',
            `The ${kind} trace could not be decoded (internal error); report it`,
          ),
    );
  } finally {
    bytes.fill(0);
  }
  // Safety net for every text field a decoder shows (display lines, status fields, reasons):
  // a PAN in any spelling is masked, whatever message or tag carried it.
  result.lines = result.lines.map((line) => redactPanShapedRuns(line));
  return result;
}

/**
 * Upper-case hex of `value` with every PAN-shaped content masked (`*` per hidden hex digit):
 * any 13–19 decimal nibbles in a row that pass Luhn — BCD in either nibble alignment, inside a
 * longer run too — and any 13–19 ASCII digit bytes in a row that pass Luhn, keeping the first 6
 * and last 4 digits. For allow-listed tags, whose values are shown: a PAN put in one of them
 * (a faulty or hostile reader) must not print (issue 11).
 */
export function maskPanShapedHex(value: Uint8Array): string {
  const hex = Buffer.from(value).toString('hex').toUpperCase().split('');
  const hidden = new Array<boolean>(hex.length).fill(false);
  // BCD: decimal hex digits (nibbles) in a row.
  forEachPanWindow(
    hex.length,
    (i) => decimal(hex[i]?.charCodeAt(0)),
    (from, to) => {
      for (let i = from + 6; i < to - 4; i++) hidden[i] = true;
    },
  );
  // ASCII: digit bytes in a row; both hex digits of each hidden byte.
  forEachPanWindow(
    value.length,
    (i) => decimal(value[i]),
    (from, to) => {
      for (let i = from + 6; i < to - 4; i++) hidden[2 * i] = hidden[2 * i + 1] = true;
    },
  );
  return hex.map((c, i) => (hidden[i] === true ? '*' : c)).join('');
}

/** The value of an ASCII digit character code, or undefined. */
function decimal(code: number | undefined): number | undefined {
  return code !== undefined && code >= 0x30 && code <= 0x39 ? code - 0x30 : undefined;
}

/**
 * Calls `found(from, to)` for every window of 13–19 consecutive digits (`digitAt` defined)
 * that passes Luhn, also inside longer runs (a PAN may sit inside other digits).
 */
function forEachPanWindow(
  length: number,
  digitAt: (i: number) => number | undefined,
  found: (from: number, to: number) => void,
): void {
  for (let start = 0; start < length; start++) {
    let digits = '';
    for (let end = start; end < length && end - start < 19; end++) {
      const d = digitAt(end);
      if (d === undefined) break;
      digits += String(d);
      if (digits.length >= 13 && luhnValidDigits(digits)) found(start, end + 1);
    }
  }
}

function addError(out: DecodedTrace, error: AgentError, indent: string): void {
  out.errors.push(error);
  out.lines.push(`${indent}! ${error.code}: ${error.reason}`);
}

function decodeLink(bytes: Buffer, out: DecodedTrace): void {
  const decoder = new FrameDecoder({ interByteTimeoutMs: Number.MAX_SAFE_INTEGER });
  let frames = 0;
  // Walk by state like the decoder does, to print each frame's LRC next to the verdict.
  const lrcs: { expected: number; got: number }[] = [];
  {
    let i = 0;
    while (i < bytes.length) {
      if (bytes[i] !== STX) {
        i++;
        continue;
      }
      const etx = bytes.indexOf(ETX, i + 1);
      if (etx < 0 || etx + 1 >= bytes.length) break;
      const next = bytes.indexOf(STX, i + 1);
      if (next >= 0 && next < etx) {
        i = next;
        continue;
      }
      lrcs.push({ expected: computeLrc(bytes.subarray(i + 1, etx)), got: bytes[etx + 1] ?? 0 });
      i = etx + 2;
    }
  }
  for (const o of decoder.push(bytes, 0)) {
    switch (o.kind) {
      case 'ack':
      case 'nak':
      case 'eot':
        out.lines.push(o.kind.toUpperCase());
        break;
      case 'discarded':
        out.lines.push(`${o.count} byte(s) outside a frame, discarded`);
        break;
      case 'bad-frame': {
        const lrc = o.reason === 'lrc' ? lrcs[frames] : undefined;
        frames++;
        addError(
          out,
          driverError(
            'POS110',
            o.reason === 'lrc' && lrc !== undefined
              ? `frame ${frames}: LRC is 0x${hexByte(lrc.got)}, expected 0x${hexByte(lrc.expected)} (XOR of payload and ETX); the receiver NAKs it`
              : `frame ${frames}: bad frame (${o.reason}); the receiver NAKs it`,
            { details: { frame: frames, reason: o.reason } },
          ),
          '',
        );
        break;
      }
      case 'frame': {
        const lrc = lrcs[frames];
        frames++;
        out.lines.push(
          `frame ${frames}: ${o.payload.length} payload bytes, LRC 0x${lrc === undefined ? '??' : hexByte(lrc.got)} ok`,
        );
        decodePayload(o.payload, out);
        o.payload.fill(0);
        break;
      }
    }
  }
  if (decoder.inFrame)
    addError(
      out,
      driverError('POS110', 'the trace ends inside a frame (no ETX/LRC): capture longer'),
      '',
    );
  decoder.reset();
}

function decodePayload(payload: Buffer, out: DecodedTrace): void {
  let message;
  try {
    message = decodeMessage(payload);
  } catch (error) {
    if (isAgentError(error)) addError(out, error, '  ');
    else throw error;
    return;
  }
  switch (message.id) {
    case '21':
      out.lines.push(`  message 21 card read (clear), entry mode ${message.entryMode}`);
      if (message.track1.length > 0) decodeTrackText(message.track1, 1, out, '    ');
      if (message.track2.length > 0) decodeTrackText(message.track2, 2, out, '    ');
      if (message.emvTlv.length > 0) {
        out.lines.push(`    EMV data, ${message.emvTlv.length} bytes:`);
        decodeTlv(message.emvTlv, out, '      ');
      }
      message.track1.fill(0);
      message.track2.fill(0);
      message.emvTlv.fill(0);
      return;
    case '22':
      out.lines.push(
        `  message 22 card read (SRED), entry mode ${message.entryMode}, PAN ${maskPanDigits(Buffer.from(message.maskedPan, 'latin1'))}, expiry ${message.expiry}, KSN ${message.ksnHex}, ciphertext ${message.ciphertextHex.length / 2} bytes (not opened)`,
      );
      return;
    case '31':
      out.lines.push(
        `  message 31 PIN block, format ${message.format}, KSN ${message.ksnHex}, ${message.pinBlockHex.length / 2}-byte encrypted block (not shown)`,
      );
      return;
    default: {
      const { id, ...fields } = message;
      out.lines.push(`  message ${id} ${JSON.stringify(fields)}`);
    }
  }
}

function decodeHidMsr(bytes: Buffer, out: DecodedTrace): void {
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

function decodeWedge(bytes: Buffer, out: DecodedTrace): void {
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

function decodeSwipeText(text: Buffer, out: DecodedTrace, indent: string): void {
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

function decodeTrackText(
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

function decodeTlv(bytes: Buffer, out: DecodedTrace, indent: string): void {
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
