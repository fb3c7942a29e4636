/**
 * The hash chain of the event log (architecture.md §4: "each row carries prev_hash and
 * hash = SHA-256(prev_hash ‖ canonical row), so a gap or an edit is detectable").
 *
 * ```
 * event 1: prev_hash = 00…00 (32 zero bytes)   hash₁ = SHA-256(00…00 ‖ row₁)
 * event 2: prev_hash = hash₁                   hash₂ = SHA-256(hash₁ ‖ row₂)
 * event n: prev_hash = hashₙ₋₁                 hashₙ = SHA-256(hashₙ₋₁ ‖ rowₙ)
 * ```
 *
 * One chain covers every event of the device, in `seq` order. The hash of a payment's
 * `payment_stored` event travels to the cloud as the outbox record's `chain`, which anchors the
 * chain outside the terminal: a local rewrite of history cannot also rewrite what the cloud holds.
 */
import { hash as sha } from 'node:crypto';
import { storeError } from './errors.js';

/** `prev_hash` of the first event: 32 zero bytes. */
export const GENESIS_HASH: Buffer = Buffer.alloc(32);

/** A JSON value the canonical encoding accepts: no floats, no `undefined` inside arrays. */
export type CanonicalValue =
  | string
  | number
  | boolean
  | null
  | readonly CanonicalValue[]
  | { readonly [key: string]: CanonicalValue | undefined };

/**
 * Canonical JSON text of `value`: RFC 8785 (JCS) restricted to safe integers.
 *
 * - objects: members sorted by key in UTF-16 code unit order, members whose value is `undefined`
 *   left out (so `{ a: undefined }` and `{}` encode the same — the optional-property convention);
 * - arrays: in order; `undefined` in an array is refused;
 * - strings: as `JSON.stringify` writes them (ECMA-262 QuoteJSONString);
 * - numbers: safe integers only (`Number.isSafeInteger`), written in decimal — money is integer
 *   minor units (architecture.md §4: "No floats anywhere");
 * - no whitespace anywhere.
 *
 * @throws AgentError POS222 for a float, NaN, ±Infinity, unsafe integer, bigint, function,
 *   symbol, `undefined` in an array, or a non-plain object (Date, Buffer, Map…).
 */
export function canonicalJson(value: unknown): string {
  try {
    return fast(value);
  } catch (error) {
    // The checked encoder below makes the same text, or the error with the value's path.
    if (error === NOT_CANONICAL) return encode(value, '$');
    throw error;
  }
}

/** Thrown by {@link fast} for anything it does not encode itself; never escapes this file. */
const NOT_CANONICAL = Symbol('not canonical');

/**
 * The encoder of the hash chain's hot path (an ack event holds a whole acknowledgement message):
 * the same text as {@link encode} with no path strings and no intermediate arrays. Whatever is
 * not plainly canonical (a float, undefined in an array, a hole, a non-plain object…) goes to
 * {@link encode}, which decides.
 */
function fast(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw NOT_CANONICAL;
    return String(value);
  }
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value !== 'object') throw NOT_CANONICAL;
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) throw NOT_CANONICAL;
      text += i === 0 ? fast(item) : `,${fast(item)}`;
    }
    return `${text}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw NOT_CANONICAL;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let text = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    text += `${first ? '' : ','}${JSON.stringify(key)}:${fast(member)}`;
    first = false;
  }
  return `${text}}`;
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw storeError(
          'POS222',
          `${path} is ${String(value)}, but canonical JSON holds safe integers only; ` +
            'fix: keep money and counts as integers (minor units, milliseconds)',
        );
      }
      return String(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value
          .map((item: unknown, i) => {
            if (item === undefined) {
              throw storeError('POS222', `${path}[${i}] is undefined; fix: use null`);
            }
            return encode(item, `${path}[${i}]`);
          })
          .join(',')}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw storeError(
          'POS222',
          `${path} is not a plain object; fix: convert it to strings and integers first`,
        );
      }
      const record = value as Record<string, unknown>;
      const members = Object.keys(record)
        .filter((key) => record[key] !== undefined)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${encode(record[key], `${path}.${key}`)}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw storeError(
        'POS222',
        `${path} has type ${typeof value}, which JSON cannot hold; fix: use a string or integer`,
      );
  }
}

/** The columns of one `events` row that the hash covers (everything except the two hashes). */
export interface ChainedRow {
  /** Position in the chain, 1, 2, 3, … without gaps. */
  seq: number;
  /** The payment the event belongs to (`pay_…`). */
  paymentId: string;
  /** The event type, one of `EVENT_TYPES`. */
  type: string;
  /** ISO 8601 UTC instant, e.g. `2026-11-21T09:54:21.000Z`. */
  at: string;
  /** The stored `data` column: canonical JSON text ({@link canonicalJson}) of an object. */
  data: string;
}

/**
 * The canonical row bytes: the UTF-8 bytes of the JSON array text
 * `[seq,"payment_id","type","at","data"]` exactly as `JSON.stringify([seq, paymentId, type, at,
 * data])` writes it — no whitespace, `seq` as a decimal integer, the four others as JSON strings
 * (ECMA-262 QuoteJSONString: `"` and `\` escaped, U+0000–U+001F as `\b \t \n \f \r` or
 * `\u00xx` with lower-case hex, lone surrogates as `\udxxx`, everything else verbatim).
 * `data` is embedded as a string holding the stored canonical JSON text, not re-parsed, so the
 * bytes a verifier hashes are the bytes in the column.
 */
export function canonicalRowBytes(row: ChainedRow): Buffer {
  return Buffer.from(canonicalRowText(row), 'utf8');
}

/** The text whose UTF-8 bytes are {@link canonicalRowBytes}. */
function canonicalRowText(row: ChainedRow): string {
  return JSON.stringify([row.seq, row.paymentId, row.type, row.at, row.data]);
}

/**
 * `hash = SHA-256(prev_hash ‖ canonical row bytes)` (FIPS 180-4), 32 bytes.
 *
 * @param prevHash — the previous event's hash, or {@link GENESIS_HASH} for `seq` 1; 32 bytes.
 */
export function eventHash(prevHash: Uint8Array, row: ChainedRow): Buffer {
  const text = canonicalRowText(row);
  // At most 3 UTF-8 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units).
  const most = prevHash.length + 3 * text.length;
  // An ack event's row (~240 bytes per acknowledged record, ~100 KiB per message) gets its own
  // buffer; a payment event's (a few hundred bytes) reuses the scratch one.
  const bytes = most <= SCRATCH_BYTES ? scratch : Buffer.allocUnsafe(most);
  bytes.set(prevHash, 0);
  const end = prevHash.length + bytes.write(text, prevHash.length, 'utf8');
  // One-shot SHA-256 (node:crypto `hash`, Node >= 20.12), not `createHash`: every Hash object is a
  // native object with a weak handle, and the young-generation GC processes each dead one. With
  // three per payment, ~400 of them took 0.8 ms of every ~1.3 ms scavenge pause; one payment in
  // ~100 met such a pause, right at the p99 of the store work (issue 9). Same bytes, same hash.
  return sha('sha256', bytes.subarray(0, end), 'buffer');
}

/** Bytes of {@link scratch}: a payment event's canonical row, with room to spare. */
const SCRATCH_BYTES = 16 * 1024;

/**
 * The hashed bytes of {@link eventHash} (prev_hash ‖ UTF-8 row), reused: eventHash is
 * synchronous and the one-shot hash copies nothing out of it once it returns.
 */
const scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
