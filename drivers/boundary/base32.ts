/** RFC 4648 §6 base32, lower case, without padding — the text form of card tokens. */

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** Encodes bytes as lower-case RFC 4648 base32 without `=` padding (20 bytes → 32 characters). */
export function base32Lower(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}
