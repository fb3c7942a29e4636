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
 * Every decoder wipes the input bytes it was given once it is done. The decoders are in
 * decode-link.ts and decode-card.ts, the masking they share in decode-mask.ts.
 */
import { Buffer } from 'node:buffer';
import { isAgentError, type AgentError } from '../../common/agent-error.js';
import { redactPanShapedRuns } from '../../common/luhn-scan.js';
import { driverError } from '../errors.js';
import { decodeHidMsr, decodeSwipeText, decodeTlv, decodeWedge } from './decode-card.js';
import { decodeLink } from './decode-link.js';
import type { DecodedTrace } from './decode-mask.js';

export { maskPanDigits, maskPanShapedHex, type DecodedTrace } from './decode-mask.js';

/** Kinds of trace `pos-agent decode` understands. */
export const TRACE_KINDS = ['link', 'hid-msr', 'wedge', 'track', 'tlv'] as const;
/** One of {@link TRACE_KINDS}. */
export type TraceKind = (typeof TRACE_KINDS)[number];

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
