/**
 * Detection of PAN-shaped text, used by the store's free-text checks (POS214), the log redaction
 * guard and the leak-sweep tests (architecture.md §2, §8; PCI DSS 4.0.1 req. 3.4.1 and 3.5.1).
 *
 * Text is normalized first, so a PAN cannot step around the check by its spelling:
 *
 * ```
 *  "dddd-dddd-dddd-dddd"   "dddd dddd dddd dddd"   "dddd.dddd.dddd.dddd"
 *  full-width digits (NFKC → ASCII)   "٤…" (any Unicode Nd digit)
 *  "dddd\u200Bdddd…" (zero-width space)   "dddd – dddd – …" (dash between spaces)
 *        └──────── all found as one run of 16 digits, then checked by Luhn ────────┘
 * ```
 *
 * - **Digit**: a code point whose Unicode NFKC form is ASCII digits (full-width `１`,
 *   superscript `¹`, circled `①`, mathematical `𝟏`), or any other decimal digit (`\p{Nd}`:
 *   Arabic-Indic, Devanagari, …) by its value.
 * - **Separator**: whitespace (`\s`, with NBSP and the ideographic space), dash punctuation
 *   (`\p{Pd}`), `.`, `_`, and invisible format characters (`\p{Cf}`: zero-width space,
 *   soft hyphen, …), each also in its NFKC form (full-width `－`, `．`). Runs of at most
 *   {@link MAX_SEPARATOR_RUN} separators join digit groups; anything else ends a chain.
 * - **PAN-shaped**: 13–19 digits (ISO/IEC 7812-1 §4.2) with a valid Luhn check digit
 *   (ISO/IEC 7812-1 Annex B), made of whole digit groups of one chain — an unseparated run is
 *   judged whole (a 20-digit order number is not searched inside), and a PAN written in groups
 *   is found even when other groups sit around it (`2024-05-17 4111 1111 1111 1111`).
 *
 * UUIDs (`8-4-4-4-12` hex, RFC 9562 §4) are not read as digit groups: the agent's own UUIDv7
 * idempotency keys would otherwise give a chance match in about 1.5 % of keys (their timestamp
 * is mostly digits), and no one writes a card number in that shape by accident.
 *
 * Cost of the normalization: a chain of groups like a date followed by numbers can hit a chance
 * Luhn match (about 1 in 10 windows of 13–19 digits); the store refuses such a reference with a
 * fix that says how to write it (letters between the numbers).
 */

/** Longest run of separator characters that still joins two digit groups (e.g. `" - "`). */
export const MAX_SEPARATOR_RUN = 3;

/**
 * The Luhn check (ISO/IEC 7812-1 Annex B) over `length` ASCII character codes read by `codeAt`;
 * false on any non-digit or when empty. One loop for strings and for byte buffers: a PAN held in
 * a wipeable buffer (drivers/boundary/) is checked without becoming a string.
 */
export function luhnValidCodes(length: number, codeAt: (index: number) => number): boolean {
  let sum = 0;
  let double = false;
  for (let i = length - 1; i >= 0; i--) {
    let d = codeAt(i) - 48;
    if (!(d >= 0 && d <= 9)) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return length > 0 && sum % 10 === 0;
}

/** True when the ASCII digit string passes the Luhn check (ISO/IEC 7812-1 Annex B). */
export function luhnValidDigits(digits: string): boolean {
  return luhnValidCodes(digits.length, (i) => digits.charCodeAt(i));
}

/** A PAN-shaped span of a text: `text.slice(start, end)`, and its digits normalized to ASCII. */
export interface PanShapedSpan {
  /** UTF-16 index of the first digit. */
  start: number;
  /** UTF-16 index just after the last digit. */
  end: number;
  /** The 13–19 digits as ASCII `0`–`9`. */
  digits: string;
}

type CharClass = { kind: 'digits'; digits: string } | { kind: 'separator' } | { kind: 'other' };

const OTHER: CharClass = { kind: 'other' };
const SEPARATOR: CharClass = { kind: 'separator' };
/** Space, TAB, LF, VT, FF, CR, `-`, `.`, `_` (not `,` or `/`: JSON arrays and paths of numbers). */
const ASCII_SEPARATORS = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x2d, 0x2e, 0x5f]);
const UNICODE_SEPARATOR = /^[\s\p{Pd}\p{Cf}]$/u;
const UNICODE_DIGIT = /^\p{Nd}$/u;
const ASCII_DIGITS = /^[0-9]+$/;
const nonAsciiClasses = new Map<number, CharClass>();

/**
 * The value of a decimal digit that NFKC does not map to ASCII. Unicode keeps every `Nd`
 * digit in runs of ten in order 0–9 (Unicode Standard §4.6, stability policy), and runs that
 * touch are whole multiples of ten, so the count of `Nd` code points before it in its run,
 * modulo 10, is its value.
 */
function decimalValue(codePoint: number): number {
  let count = 0;
  while (count < 100 && UNICODE_DIGIT.test(String.fromCodePoint(codePoint - count - 1))) count++;
  return count % 10;
}

function classifyNonAscii(codePoint: number): CharClass {
  const known = nonAsciiClasses.get(codePoint);
  if (known !== undefined) return known;
  const char = String.fromCodePoint(codePoint);
  const nfkc = char.normalize('NFKC');
  let result: CharClass = OTHER;
  if (ASCII_DIGITS.test(nfkc)) result = { kind: 'digits', digits: nfkc };
  else if (UNICODE_DIGIT.test(char))
    result = { kind: 'digits', digits: String(decimalValue(codePoint)) };
  else if (
    UNICODE_SEPARATOR.test(char) ||
    (nfkc.length === 1 &&
      (ASCII_SEPARATORS.has(nfkc.charCodeAt(0)) || UNICODE_SEPARATOR.test(nfkc)))
  )
    result = SEPARATOR;
  if (nonAsciiClasses.size < 4096) nonAsciiClasses.set(codePoint, result);
  return result;
}

interface DigitGroup {
  start: number;
  end: number;
  digits: string;
}

const UUID_SHAPED = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Splits `text` into chains of digit groups joined by short separator runs. */
function digitChains(original: string): DigitGroup[][] {
  // Same length, so indices stay those of the original text.
  const text = original.includes('-')
    ? original.replace(UUID_SHAPED, (uuid) => 'x'.repeat(uuid.length))
    : original;
  const chains: DigitGroup[][] = [];
  let chain: DigitGroup[] = [];
  let group: DigitGroup | undefined;
  let separators = 0;
  const endChain = (): void => {
    if (chain.length > 0) chains.push(chain);
    chain = [];
  };
  for (let i = 0; i < text.length;) {
    const codePoint = text.codePointAt(i) ?? 0;
    const width = codePoint > 0xffff ? 2 : 1;
    let cls: CharClass;
    if (codePoint >= 0x30 && codePoint <= 0x39) cls = { kind: 'digits', digits: text[i] ?? '' };
    else if (codePoint < 0x80) cls = ASCII_SEPARATORS.has(codePoint) ? SEPARATOR : OTHER;
    else cls = classifyNonAscii(codePoint);
    if (cls.kind === 'digits') {
      if (group === undefined) {
        if (separators > MAX_SEPARATOR_RUN) endChain();
        group = { start: i, end: i + width, digits: cls.digits };
        chain.push(group);
      } else {
        group.end = i + width;
        group.digits += cls.digits;
      }
      separators = 0;
    } else {
      group = undefined;
      if (cls.kind === 'separator') separators++;
      else {
        endChain();
        separators = 0;
      }
    }
    i += width;
  }
  endChain();
  return chains;
}

/** Quick exit: pure ASCII text with fewer than 13 digits cannot hold a PAN. */
function cannotHoldPan(text: string): boolean {
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return false;
    if (c >= 0x30 && c <= 0x39 && ++digits >= 13) return false;
  }
  return true;
}

/**
 * Every PAN-shaped span of `text` after normalization (see the module doc), left to right and
 * not overlapping; of several candidates starting at the same group, the longest is taken.
 */
export function findPanShapedSpans(text: string): PanShapedSpan[] {
  if (cannotHoldPan(text)) return [];
  const spans: PanShapedSpan[] = [];
  for (const chain of digitChains(text)) {
    for (let i = 0; i < chain.length; i++) {
      let digits = '';
      let best: PanShapedSpan | undefined;
      let j = i;
      for (; j < chain.length; j++) {
        const g = chain[j] as DigitGroup;
        digits += g.digits;
        if (digits.length > 19) break;
        if (digits.length >= 13 && luhnValidDigits(digits))
          best = { start: (chain[i] as DigitGroup).start, end: g.end, digits };
      }
      if (best !== undefined) {
        spans.push(best);
        while (i + 1 < chain.length && (chain[i + 1] as DigitGroup).start < best.end) i++;
      }
    }
  }
  return spans;
}

/**
 * The digits (ASCII) of every PAN-shaped span of `text` ({@link findPanShapedSpans}).
 *
 * @param options.asciiRunsOnly — only whole runs of ASCII digits, no separators or other
 *   scripts: for binary files read as latin1 (database pages, captures), where bytes that
 *   happen to be separators or `¹²³` between digit bytes would give chance matches.
 */
export function findPanShapedRuns(
  text: string,
  options: { asciiRunsOnly?: boolean } = {},
): string[] {
  if (options.asciiRunsOnly === true) {
    const found: string[] = [];
    for (const [run] of text.matchAll(/[0-9]+/g))
      if (run.length >= 13 && run.length <= 19 && luhnValidDigits(run)) found.push(run);
    return found;
  }
  return findPanShapedSpans(text).map((span) => span.digits);
}

/** First 6, `*` for the middle, last 4 (PCI DSS 4.0.1 req. 3.4.1 display masking). */
export function maskPanDigits(digits: string): string {
  return `${digits.slice(0, 6)}${'*'.repeat(Math.max(0, digits.length - 10))}${digits.slice(-4)}`;
}

/**
 * Replaces every PAN-shaped span of `text` (separators and all) with `mask(digits)`: by
 * default first 6, `*` for the middle, and last 4 as ASCII.
 */
export function redactPanShapedRuns(
  text: string,
  mask: (digits: string) => string = maskPanDigits,
): string {
  const spans = findPanShapedSpans(text);
  if (spans.length === 0) return text;
  let out = '';
  let at = 0;
  for (const span of spans) {
    out += text.slice(at, span.start) + mask(span.digits);
    at = span.end;
  }
  return out + text.slice(at);
}

const JSON_NUMBER_CHAR = /[0-9.eE+-]/;

/**
 * {@link redactPanShapedRuns} for one line of JSON (a pino log line), keeping the line valid
 * JSON: a PAN-shaped span inside a string is masked in place, as {@link redactPanShapedRuns}
 * does; a span in a bare number (`{"n":4111…1111}`, or the 19 fraction digits of a double such
 * as `0.0003530443678222592`, which pass Luhn one time in ten) turns the whole number into a
 * string holding its masked digits (`{"n":"411111******1111"}`). Masking a bare number in place
 * would write `*` into a number, and the line would no longer parse (RFC 8259 §6).
 *
 * Text that is not JSON is redacted all the same; only the quoting may then be off.
 */
export function redactPanShapedRunsInJson(line: string): string {
  const spans = findPanShapedSpans(line);
  if (spans.length === 0) return line;
  let out = '';
  let at = 0;
  let inString = false;
  let scanned = 0;
  for (const span of spans) {
    if (span.start < at) continue; // inside a number already quoted
    // String state at span.start: walk the quotes (and escapes) between the last span and it.
    for (; scanned < span.start; scanned++) {
      const c = line.charCodeAt(scanned);
      if (c === 0x5c && inString)
        scanned++; // skip the escaped character
      else if (c === 0x22) inString = !inString;
    }
    if (inString) {
      out += line.slice(at, span.start) + maskPanDigits(span.digits);
      at = span.end;
      continue;
    }
    let start = span.start;
    while (start > at && JSON_NUMBER_CHAR.test(line[start - 1] ?? '')) start--;
    let end = span.end;
    while (end < line.length && JSON_NUMBER_CHAR.test(line[end] ?? '')) end++;
    out += `${line.slice(at, start)}"${redactPanShapedRuns(line.slice(start, end))}"`;
    at = end;
    scanned = end;
  }
  return out + line.slice(at);
}
