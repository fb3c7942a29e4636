/**
 * BER-TLV as used by EMV (EMV Book 3 Annex B), on Buffers only: card data never becomes a string.
 *
 * ```
 *  tag:    1st byte b5..b1 = 11111 → more tag bytes follow while b8 = 1   (e.g. 9F 26)
 *          b6 = 1 → constructed (value is more TLVs, e.g. 70, 77)
 *  length: 0x00–0x7F short form; 0x81 LL; 0x82 LL LL
 *  value:  `length` bytes
 *  0x00 / 0xFF between objects: padding, skipped
 * ```
 */
import { Buffer } from 'node:buffer';

/** One primitive data object. `value` and `raw` are views into the parsed buffer (no copy). */
export interface TlvObject {
  /** Tag as upper-case hex, e.g. `'9F26'` (tag names are not card data). */
  tag: string;
  /** The value bytes (view). */
  value: Buffer;
  /** Tag, length and value bytes as they appeared (view), for forwarding verbatim. */
  raw: Buffer;
}

/**
 * Parses BER-TLV; constructed objects (templates 70, 77, …) are flattened into their primitive
 * children. Returns `undefined` on malformed input (truncated tag/length/value, length form
 * other than short/81/82).
 */
export function parseTlv(data: Buffer): TlvObject[] | undefined {
  const out: TlvObject[] = [];
  return walk(data, out) ? out : undefined;
}

function walk(data: Buffer, out: TlvObject[]): boolean {
  let i = 0;
  while (i < data.length) {
    const start = i;
    const first = data[i] ?? 0;
    if (first === 0x00 || first === 0xff) {
      i++;
      continue;
    }
    i++;
    if ((first & 0x1f) === 0x1f) {
      let guard = 0;
      for (;;) {
        if (i >= data.length || ++guard > 3) return false;
        const b = data[i++] ?? 0;
        if ((b & 0x80) === 0) break;
      }
    }
    const tagEnd = i;
    if (i >= data.length) return false;
    let length = data[i++] ?? 0;
    if (length === 0x81) {
      if (i + 1 > data.length) return false;
      length = data[i++] ?? 0;
    } else if (length === 0x82) {
      if (i + 2 > data.length) return false;
      length = ((data[i] ?? 0) << 8) | (data[i + 1] ?? 0);
      i += 2;
    } else if (length > 0x7f) return false;
    if (i + length > data.length) return false;
    const value = data.subarray(i, i + length);
    i += length;
    if ((first & 0x20) !== 0) {
      if (!walk(value, out)) return false;
    } else {
      out.push({
        tag: data.subarray(start, tagEnd).toString('hex').toUpperCase(),
        value,
        raw: data.subarray(start, i),
      });
    }
  }
  return true;
}

/** Encodes one primitive TLV; `tagHex` like `'5F24'`, value up to 65,535 bytes. */
export function encodeTlv(tagHex: string, value: Uint8Array): Buffer {
  const tag = Buffer.from(tagHex, 'hex');
  const lengthBytes =
    value.length < 0x80
      ? Buffer.of(value.length)
      : value.length < 0x100
        ? Buffer.of(0x81, value.length)
        : Buffer.of(0x82, value.length >> 8, value.length & 0xff);
  return Buffer.concat([tag, lengthBytes, value]);
}
