/**
 * Keyboard-wedge magnetic stripe readers (architecture.md §3.3): the reader types the swipe as a USB
 * keyboard. This decoder turns HID boot-keyboard input reports into the swipe text, US layout.
 * Codec used by both sides (agent and simulator).
 *
 * Sources: USB HID 1.11 Appendix B.1 (boot keyboard report); USB HID Usage Tables 1.5 §10
 * (Keyboard/Keypad page 0x07); US layout (ANSI) for shifted characters.
 *
 * ```
 *  boot keyboard input report, 8 bytes:
 *   0  modifiers  bit0 LCtrl bit1 LShift bit2 LAlt bit3 LGUI bit4 RCtrl bit5 RShift bit6 RAlt bit7 RGUI
 *   1  reserved
 *   2–7  up to six usage codes of keys held down (0x00 none, 0x01 ErrorRollOver)
 *
 *  a swipe: [02 00 22 00 00 00 00 00] '%'   (LShift + 5)
 *           [00 00 00 00 00 00 00 00] release
 *           …
 *           [00 00 28 00 00 00 00 00] Enter: the swipe ends
 * ```
 *
 * A key counts when it appears in a report and was not down in the previous one (key-down edge),
 * so a repeated character needs a release in between, as every wedge reader sends. The swipe
 * text is kept in one fixed Buffer that is wiped after every swipe (architecture.md §2: no strings).
 */
import { Buffer } from 'node:buffer';
import type { AgentError } from '../../common/agent-error.js';
import { driverError } from '../errors.js';

/** Size of a boot keyboard input report. */
export const BOOT_REPORT_BYTES = 8;
/** Longest swipe text accepted (tracks 1+2+3 with sentinels are 79+40+107 characters). */
export const MAX_SWIPE_TEXT_BYTES = 512;
/** Usage code of Enter (Return), which ends a swipe. */
export const USAGE_ENTER = 0x28;

const SHIFT_BITS = 0x02 | 0x20;

/** usage → [unshifted, shifted] ASCII (US layout), HID Usage Tables 1.5 §10. */
const USAGE_TABLE: ReadonlyMap<number, readonly [number, number]> = (() => {
  const m = new Map<number, readonly [number, number]>();
  for (let i = 0; i < 26; i++) m.set(0x04 + i, [0x61 + i, 0x41 + i]); // a–z / A–Z
  const digitsShifted = '!@#$%^&*()';
  for (let i = 0; i < 10; i++)
    m.set(0x1e + i, [i === 9 ? 0x30 : 0x31 + i, digitsShifted.charCodeAt(i)]); // 1–9, 0
  const punct: [number, string, string][] = [
    [0x2c, ' ', ' '],
    [0x2d, '-', '_'],
    [0x2e, '=', '+'],
    [0x2f, '[', '{'],
    [0x30, ']', '}'],
    [0x31, '\\', '|'],
    [0x33, ';', ':'],
    [0x34, "'", '"'],
    [0x35, '`', '~'],
    [0x36, ',', '<'],
    [0x37, '.', '>'],
    [0x38, '/', '?'],
  ];
  for (const [usage, plain, shifted] of punct)
    m.set(usage, [plain.charCodeAt(0), shifted.charCodeAt(0)]);
  return m;
})();

/** The reverse table: ASCII → { usage, shift }, for the simulator's virtual wedge reader. */
export const ASCII_TO_USAGE: ReadonlyMap<number, { usage: number; shift: boolean }> = (() => {
  const m = new Map<number, { usage: number; shift: boolean }>();
  for (const [usage, [plain, shifted]] of USAGE_TABLE) {
    if (!m.has(plain)) m.set(plain, { usage, shift: false });
    if (!m.has(shifted)) m.set(shifted, { usage, shift: true });
  }
  return m;
})();

/** ASCII of a usage code with or without shift (US layout), or `undefined` when not printable. */
export function usageToAscii(usage: number, shift: boolean): number | undefined {
  const entry = USAGE_TABLE.get(usage);
  return entry === undefined ? undefined : entry[shift ? 1 : 0];
}

/** One output of {@link WedgeDecoder.push}. */
export type WedgeOutput =
  /**
   * A complete swipe (Enter seen). `text` is a fresh copy the receiver owns and must wipe;
   * `unknownKeys` counts key presses with no US-layout character (skipped).
   */
  | { kind: 'swipe'; text: Buffer; unknownKeys: number }
  /** A report or swipe that was thrown away (POS141); the swipe buffer was wiped. */
  | { kind: 'error'; error: AgentError };

/**
 * Stateful, pure keyboard-wedge decoder: feed it input reports, get swipes back. Never throws.
 */
export class WedgeDecoder {
  readonly #text = Buffer.alloc(MAX_SWIPE_TEXT_BYTES);
  #length = 0;
  #overflow = false;
  #unknown = 0;
  #down = new Set<number>();

  /** Characters collected since the last Enter. */
  get pendingLength(): number {
    return this.#length;
  }

  /**
   * Decodes one input report.
   * @param report — 8 bytes (boot keyboard report). Not kept: the caller may wipe it afterwards.
   */
  push(report: Uint8Array): WedgeOutput[] {
    if (report.length !== BOOT_REPORT_BYTES)
      return [
        {
          kind: 'error',
          error: driverError(
            'POS141',
            `Keyboard report is ${report.length} bytes; a boot keyboard report is ${BOOT_REPORT_BYTES} (USB HID 1.11 B.1). Is the reader in vendor HID mode? Configure kind "hid-msr" then`,
            { details: { length: report.length } },
          ),
        },
      ];
    const keys = report.subarray(2);
    if (keys.every((k) => k === 0x01)) return []; // ErrorRollOver: too many keys, state unknown
    const shift = ((report[0] ?? 0) & SHIFT_BITS) !== 0;
    const out: WedgeOutput[] = [];
    const now = new Set<number>();
    for (const usage of keys) {
      if (usage === 0x00) continue;
      now.add(usage);
      if (this.#down.has(usage)) continue;
      if (usage === USAGE_ENTER) {
        out.push(this.#finish());
        continue;
      }
      const ascii = usageToAscii(usage, shift);
      if (ascii === undefined) {
        this.#unknown++;
        continue;
      }
      if (this.#length >= MAX_SWIPE_TEXT_BYTES) this.#overflow = true;
      else this.#text[this.#length++] = ascii;
    }
    this.#down = now;
    return out;
  }

  /** Drops a partial swipe and wipes the buffer (disconnect, no payment in progress). */
  reset(): void {
    this.#text.fill(0);
    this.#length = 0;
    this.#overflow = false;
    this.#unknown = 0;
    this.#down = new Set();
  }

  #finish(): WedgeOutput {
    const length = this.#length;
    const overflow = this.#overflow;
    const unknownKeys = this.#unknown;
    const text = overflow ? undefined : Buffer.from(this.#text.subarray(0, length));
    this.#text.fill(0);
    this.#length = 0;
    this.#overflow = false;
    this.#unknown = 0;
    if (text === undefined)
      return {
        kind: 'error',
        error: driverError(
          'POS141',
          `Keyboard-wedge swipe is longer than ${MAX_SWIPE_TEXT_BYTES} characters without Enter: the reader is not a card reader or is misconfigured (it must end each swipe with Enter)`,
          { details: { limit: MAX_SWIPE_TEXT_BYTES } },
        ),
      };
    return { kind: 'swipe', text, unknownKeys };
  }
}

/**
 * Builds the keyboard reports a wedge reader sends for `text` (press, release per character,
 * then Enter press and release). Characters without a US-layout key are skipped.
 * For the simulator and tests.
 */
export function encodeWedgeReports(text: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  const release = (): Buffer => Buffer.alloc(BOOT_REPORT_BYTES);
  for (const ch of text) {
    const key = ASCII_TO_USAGE.get(ch);
    if (key === undefined) continue;
    out.push(Buffer.of(key.shift ? 0x02 : 0x00, 0, key.usage, 0, 0, 0, 0, 0), release());
  }
  out.push(Buffer.of(0, 0, USAGE_ENTER, 0, 0, 0, 0, 0), release());
  return out;
}
