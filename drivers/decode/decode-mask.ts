/**
 * The masking and shared pieces of the trace decoders (decode-trace.ts): what a decoder
 * produces, a PAN masked to first 6 / last 4 (PCI DSS 4.0.1 req. 3.4.1), hex with every
 * PAN-shaped run masked, and the coded error line.
 */
import { Buffer } from 'node:buffer';
import { type AgentError } from '../../common/agent-error.js';
import { luhnValidDigits } from '../../common/luhn-scan.js';

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

/** A byte as two upper-case hex digits. */
export const hexByte = (b: number): string => b.toString(16).toUpperCase().padStart(2, '0');

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

/** Records a coded error and prints it as a line (`! POSxxx: reason`) at `indent`. */
export function addError(out: DecodedTrace, error: AgentError, indent: string): void {
  out.errors.push(error);
  out.lines.push(`${indent}! ${error.code}: ${error.reason}`);
}
