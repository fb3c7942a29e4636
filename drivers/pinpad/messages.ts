/**
 * Codec of the reference PIN pad message set (architecture.md §3.2), used by both sides: the agent's
 * {@link PinPad} and the simulator's virtual PIN pad.
 *
 * ```
 *  payload = id(2 ASCII) [FS field]…          FS = 0x1C, fields are 0x20–0x7E
 *  e.g.  "20" FS "1250" FS "EUR" FS "30" FS "S,C,T"
 *        "21" FS "S" FS <track1> FS <track2> FS <emvTlvHex>
 * ```
 *
 * Message 21 carries clear card data: it is parsed at the byte level and its tracks and EMV data
 * stay Buffers (never strings, architecture.md §2); decode errors never quote its fields.
 *
 * Optional request id (issue 14): a pad that lists `RID` in its capabilities (message 01) takes
 * one more field at the end of 20 and 30, `requestId` (1–8 of 0–9 A–Z), and repeats it at the end
 * of its answer (21, 22, 29, 31, 39). The host then knows which request an answer belongs to
 * even after a cancel the pad never confirmed. Pads without it ignore nothing new: the field is
 * only sent to pads that announced it, and a decoder reads it only when it is there.
 */
import { Buffer } from 'node:buffer';
import { driverError } from '../errors.js';
import { FS } from '../link/framing.js';

/** Entry mode codes on the wire: S swipe, C chip (contact), T tap (contactless). */
export type EntryModeCode = 'S' | 'C' | 'T';
/** Reasons of message 29 (card read failed). */
export type PadReadFailure = 'timeout' | 'canceled' | 'bad_read' | 'chip_required' | 'card_removed';
/** Reasons of message 39 (no PIN). */
export type PinFailure = 'timeout' | 'canceled' | 'bypassed';
/** Events of message 90. */
export type PadEvent = 'card_inserted' | 'card_removed' | 'tamper' | 'low_battery';
/** Outcomes of message 50. */
export type ResultOutcome = 'approved' | 'declined' | 'stored';

/** Host → pad messages. `amountMinor`: integer minor units; `currency`: ISO 4217 alpha-3. */
export type HostMessage =
  | { id: '00' }
  | { id: '10'; line1: string; line2: string }
  | {
      id: '20';
      amountMinor: number;
      currency: string;
      /** 1–300 s. */
      timeoutSeconds: number;
      entryModes: EntryModeCode[];
      /** Only for pads with the `RID` capability: 1–8 of 0–9 A–Z, repeated in the answer. */
      requestId?: string;
    }
  | {
      id: '30';
      amountMinor: number;
      currency: string;
      timeoutSeconds: number;
      /** As for 20. */
      requestId?: string;
    }
  | { id: '40' }
  | { id: '50'; outcome: ResultOutcome; text: string };

/** Pad → host messages. */
export type PadMessage =
  | { id: '01'; model: string; serial: string; firmware: string; capabilities: string[] }
  /** Clear card data: Buffers only; `emvTlv` is binary BER-TLV (hex-decoded from the wire). */
  | {
      id: '21';
      entryMode: EntryModeCode;
      track1: Buffer;
      track2: Buffer;
      emvTlv: Buffer;
      /** The request id of the 20 this answers (pads with `RID`). */
      requestId?: string;
    }
  | {
      id: '22';
      entryMode: EntryModeCode;
      maskedPan: string;
      /** `YYMM`. */
      expiry: string;
      ksnHex: string;
      ciphertextHex: string;
      requestId?: string;
    }
  | { id: '29'; reason: PadReadFailure; requestId?: string }
  | { id: '31'; format: 0 | 4; ksnHex: string; pinBlockHex: string; requestId?: string }
  | { id: '39'; reason: PinFailure; requestId?: string }
  | { id: '41' }
  | { id: '51' }
  | { id: '90'; event: PadEvent };

/** Any message of the set. */
export type PinPadMessage = HostMessage | PadMessage;

const HOST_IDS = new Set(['00', '10', '20', '30', '40', '50']);
const ENTRY_MODES = new Set(['S', 'C', 'T']);
const READ_FAILURES = new Set(['timeout', 'canceled', 'bad_read', 'chip_required', 'card_removed']);
const PIN_FAILURES = new Set(['timeout', 'canceled', 'bypassed']);
const EVENTS = new Set(['card_inserted', 'card_removed', 'tamper', 'low_battery']);
const OUTCOMES = new Set(['approved', 'declined', 'stored']);
const HEX = /^(?:[0-9A-F]{2})*$/i;
const REQUEST_ID = /^[0-9A-Z]{1,8}$/;

/** The capability (message 01) of a pad that takes and repeats request ids. */
export const REQUEST_ID_CAPABILITY = 'RID';

/** True when the id is a host → pad message. */
export function isHostMessage(message: PinPadMessage): message is HostMessage {
  return HOST_IDS.has(message.id);
}

function invalid(message: string): Error {
  return driverError('POS122', message);
}

function text(value: string, field: string, maxChars: number): Buffer {
  if (value.length > maxChars)
    throw invalid(`${field} is ${value.length} characters; the PIN pad takes at most ${maxChars}`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e)
      throw invalid(
        `${field} has character code ${c} at ${i}; only printable ASCII 0x20–0x7E is allowed`,
      );
  }
  return Buffer.from(value, 'latin1');
}

function amount(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0)
    throw invalid(`amountMinor ${value} must be a non-negative integer count of minor units`);
  return Buffer.from(String(value), 'latin1');
}

function currency(value: string): Buffer {
  if (!/^[A-Z]{3}$/.test(value))
    throw invalid(`currency "${value}" must be an ISO 4217 alpha-3 code such as EUR`);
  return Buffer.from(value, 'latin1');
}

function seconds(value: number): Buffer {
  if (!Number.isInteger(value) || value < 1 || value > 300)
    throw invalid(`timeoutSeconds ${value} must be an integer 1–300`);
  return Buffer.from(String(value), 'latin1');
}

function hexField(value: string, field: string): Buffer {
  if (!HEX.test(value)) throw invalid(`${field} must be hex with an even number of digits`);
  return Buffer.from(value.toUpperCase(), 'latin1');
}

/** Bytes → upper-case hex ASCII, without making a string (for EMV data in message 21). */
function toHexAscii(bytes: Buffer): Buffer {
  const out = Buffer.alloc(bytes.length * 2);
  const digit = (n: number): number => (n < 10 ? 0x30 + n : 0x37 + n);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    out[2 * i] = digit(b >> 4);
    out[2 * i + 1] = digit(b & 0x0f);
  }
  return out;
}

function fromHexAscii(ascii: Buffer): Buffer | undefined {
  if (ascii.length % 2 !== 0) return undefined;
  const out = Buffer.alloc(ascii.length / 2);
  const value = (c: number): number =>
    c >= 0x30 && c <= 0x39
      ? c - 0x30
      : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : c >= 0x61 && c <= 0x66
          ? c - 0x57
          : -1;
  for (let i = 0; i < out.length; i++) {
    const hi = value(ascii[2 * i] ?? 0);
    const lo = value(ascii[2 * i + 1] ?? 0);
    if (hi < 0 || lo < 0) {
      out.fill(0);
      return undefined;
    }
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function trackField(track: Buffer, field: string): Buffer {
  for (const b of track)
    if (b < 0x20 || b > 0x7e) throw invalid(`${field} holds a byte outside 0x20–0x7E`);
  return track;
}

/**
 * Encodes a message into a frame payload (fields joined by FS).
 * @throws AgentError `POS122` when a field is out of range (amount not an integer, currency not
 *   alpha-3, timeout outside 1–300 s, text not printable ASCII or too long, bad hex).
 */
export function encodeMessage(message: PinPadMessage): Buffer {
  const fields: Buffer[] = [Buffer.from(message.id, 'latin1')];
  switch (message.id) {
    case '00':
    case '40':
    case '41':
    case '51':
      break;
    case '10':
      fields.push(text(message.line1, 'line1', 32), text(message.line2, 'line2', 32));
      break;
    case '20':
      if (message.entryModes.length === 0 || message.entryModes.some((m) => !ENTRY_MODES.has(m)))
        throw invalid('entryModes must be a non-empty list of S, C, T');
      fields.push(
        amount(message.amountMinor),
        currency(message.currency),
        seconds(message.timeoutSeconds),
        Buffer.from(message.entryModes.join(','), 'latin1'),
      );
      break;
    case '30':
      fields.push(
        amount(message.amountMinor),
        currency(message.currency),
        seconds(message.timeoutSeconds),
      );
      break;
    case '50':
      fields.push(Buffer.from(message.outcome, 'latin1'), text(message.text, 'text', 64));
      break;
    case '01':
      fields.push(
        text(message.model, 'model', 32),
        text(message.serial, 'serial', 32),
        text(message.firmware, 'firmware', 32),
        text(message.capabilities.join(','), 'capabilities', 64),
      );
      break;
    case '21':
      fields.push(
        Buffer.from(message.entryMode, 'latin1'),
        trackField(message.track1, 'track1'),
        trackField(message.track2, 'track2'),
        toHexAscii(message.emvTlv),
      );
      break;
    case '22':
      fields.push(
        Buffer.from(message.entryMode, 'latin1'),
        text(message.maskedPan, 'maskedPan', 19),
        text(message.expiry, 'expiry', 4),
        hexField(message.ksnHex, 'ksnHex'),
        hexField(message.ciphertextHex, 'ciphertextHex'),
      );
      break;
    case '29':
    case '39':
      fields.push(Buffer.from(message.reason, 'latin1'));
      break;
    case '31':
      fields.push(
        Buffer.from(String(message.format), 'latin1'),
        hexField(message.ksnHex, 'ksnHex'),
        hexField(message.pinBlockHex, 'pinBlockHex'),
      );
      break;
    case '90':
      fields.push(Buffer.from(message.event, 'latin1'));
      break;
  }
  if ('requestId' in message && message.requestId !== undefined) {
    if (!REQUEST_ID.test(message.requestId))
      throw invalid(`requestId "${message.requestId}" must be 1–8 of 0–9 A–Z`);
    fields.push(Buffer.from(message.requestId, 'latin1'));
  }
  const parts: Buffer[] = [];
  fields.forEach((field, i) => {
    if (i > 0) parts.push(Buffer.of(FS));
    parts.push(field);
  });
  return Buffer.concat(parts);
}

/** Splits a payload at FS into views (no copies). */
function splitFields(payload: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= payload.length; i++) {
    if (i === payload.length || payload[i] === FS) {
      fields.push(payload.subarray(start, i));
      start = i + 1;
    }
  }
  return fields;
}

function malformed(id: string, problem: string): Error {
  return driverError(
    'POS121',
    `PIN pad message ${id} is malformed: ${problem}. Check the pad's protocol version (architecture.md §3.2)`,
    {
      details: { id },
    },
  );
}

/**
 * Decodes a frame payload. Message 21's tracks and EMV data are fresh Buffers (copies) that the
 * caller must wipe; the payload itself is not modified (the caller wipes it too).
 * @throws AgentError `POS121` for an unknown id, a missing field or a value out of its set
 *   (the message names the id and the field, never card data).
 */
export function decodeMessage(payload: Buffer): PinPadMessage {
  const fields = splitFields(payload);
  const id = (fields[0] ?? Buffer.alloc(0)).toString('latin1');
  const str = (i: number, name: string): string => {
    const field = fields[i];
    if (field === undefined) throw malformed(id, `field ${i} (${name}) is missing`);
    return field.toString('latin1');
  };
  const oneOf = <T extends string>(i: number, name: string, set: Set<string>): T => {
    const value = str(i, name);
    // Never quote the value: a field out of place may hold card data (issue 11); its length is
    // enough to tell a truncated field from a shifted one.
    if (!set.has(value))
      throw malformed(
        id,
        `${name} (${value.length} characters, not shown) is not one of ${[...set].join(', ')}`,
      );
    return value as T;
  };
  const int = (i: number, name: string): number => {
    const value = str(i, name);
    if (!/^\d{1,15}$/.test(value)) throw malformed(id, `${name} is not a non-negative integer`);
    return Number(value);
  };
  const hex = (i: number, name: string): string => {
    const value = str(i, name);
    if (!HEX.test(value)) throw malformed(id, `${name} is not hex`);
    return value.toUpperCase();
  };
  const withRequestId = <T extends PinPadMessage>(message: T, at: number): T => {
    const field = fields[at];
    if (field === undefined) return message;
    const value = field.toString('latin1');
    if (!REQUEST_ID.test(value)) throw malformed(id, 'requestId is not 1–8 of 0–9 A–Z');
    return { ...message, requestId: value };
  };
  switch (id) {
    case '00':
    case '40':
    case '41':
    case '51':
      return { id };
    case '10':
      return { id, line1: str(1, 'line1'), line2: str(2, 'line2') };
    case '20': {
      const modes = str(4, 'entryModes').split(',');
      if (modes.some((m) => !ENTRY_MODES.has(m))) throw malformed(id, 'entryModes must be S, C, T');
      return withRequestId(
        {
          id,
          amountMinor: int(1, 'amountMinor'),
          currency: str(2, 'currency'),
          timeoutSeconds: int(3, 'timeoutSeconds'),
          entryModes: modes as EntryModeCode[],
        },
        5,
      );
    }
    case '30':
      return withRequestId(
        {
          id,
          amountMinor: int(1, 'amountMinor'),
          currency: str(2, 'currency'),
          timeoutSeconds: int(3, 'timeoutSeconds'),
        },
        4,
      );
    case '50':
      return { id, outcome: oneOf(1, 'outcome', OUTCOMES), text: str(2, 'text') };
    case '01':
      return {
        id,
        model: str(1, 'model'),
        serial: str(2, 'serial'),
        firmware: str(3, 'firmware'),
        capabilities: str(4, 'capabilities')
          .split(',')
          .filter((c) => c.length > 0),
      };
    case '21': {
      if (fields.length < 5) throw malformed(id, `${fields.length} fields, 5 expected`);
      // Byte-level: no field of message 21 becomes a string.
      const mode = fields[1];
      const entryMode =
        mode?.length === 1
          ? ({ 0x53: 'S', 0x43: 'C', 0x54: 'T' } as const)[mode[0] as 0x53]
          : undefined;
      if (entryMode === undefined) throw malformed(id, 'entryMode is not S, C or T');
      const emvTlv = fromHexAscii(fields[4] ?? Buffer.alloc(0));
      if (emvTlv === undefined) throw malformed(id, 'emvTlvHex is not hex');
      const requestId = fields[5]?.toString('latin1');
      if (requestId !== undefined && !REQUEST_ID.test(requestId)) {
        emvTlv.fill(0);
        throw malformed(id, 'requestId is not 1–8 of 0–9 A–Z');
      }
      return {
        id,
        entryMode,
        track1: Buffer.from(fields[2] ?? Buffer.alloc(0)),
        track2: Buffer.from(fields[3] ?? Buffer.alloc(0)),
        emvTlv,
        ...(requestId === undefined ? {} : { requestId }),
      };
    }
    case '22':
      return withRequestId(
        {
          id,
          entryMode: oneOf<EntryModeCode>(1, 'entryMode', ENTRY_MODES),
          maskedPan: str(2, 'maskedPan'),
          expiry: str(3, 'expiry'),
          ksnHex: hex(4, 'ksnHex'),
          ciphertextHex: hex(5, 'ciphertextHex'),
        },
        6,
      );
    case '29':
      return withRequestId({ id, reason: oneOf<PadReadFailure>(1, 'reason', READ_FAILURES) }, 2);
    case '31': {
      const format = str(1, 'format');
      if (format !== '0' && format !== '4')
        throw malformed(id, 'the PIN block format is not 0 or 4 (ISO 9564)');
      return withRequestId(
        {
          id,
          format: format === '0' ? 0 : 4,
          ksnHex: hex(2, 'ksnHex'),
          pinBlockHex: hex(3, 'pinBlockHex'),
        },
        4,
      );
    }
    case '39':
      return withRequestId({ id, reason: oneOf<PinFailure>(1, 'reason', PIN_FAILURES) }, 2);
    case '90':
      return { id, event: oneOf<PadEvent>(1, 'event', EVENTS) };
    default:
      throw malformed(/^[0-9A-Za-z]{2}$/.test(id) ? id : '??', 'unknown message id');
  }
}
