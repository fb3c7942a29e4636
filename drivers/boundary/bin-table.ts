/**
 * Card brand by longest-prefix match on the BIN (ISO/IEC 7812-1 issuer identification number;
 * ranges from architecture.md §2 item 3). Works on ASCII digit bytes, never on a PAN string.
 *
 * Each row is a range of prefixes of one length: `from`–`to` inclusive on the first `digits`
 * digits. Longer prefixes win (e.g. Discover 6011 before a hypothetical 60x row).
 */
import type { CardBrand } from './card-token.js';

/** One row of the BIN table. */
export interface BinRange {
  brand: Exclude<CardBrand, 'unknown'>;
  /** Number of leading PAN digits compared. */
  digits: number;
  /** First prefix of the range (inclusive), as a number of `digits` digits. */
  from: number;
  /** Last prefix of the range (inclusive). */
  to: number;
}

/** The BIN table of architecture.md §2, sorted by prefix length, longest first. */
export const BIN_TABLE: readonly BinRange[] = (
  [
    { brand: 'visa', digits: 1, from: 4, to: 4 },
    { brand: 'mastercard', digits: 2, from: 51, to: 55 },
    { brand: 'mastercard', digits: 4, from: 2221, to: 2720 }, // 2-series BINs since 2017
    { brand: 'amex', digits: 2, from: 34, to: 34 },
    { brand: 'amex', digits: 2, from: 37, to: 37 },
    { brand: 'discover', digits: 4, from: 6011, to: 6011 },
    { brand: 'discover', digits: 3, from: 644, to: 649 },
    { brand: 'discover', digits: 2, from: 65, to: 65 },
    { brand: 'jcb', digits: 4, from: 3528, to: 3589 },
    { brand: 'diners', digits: 3, from: 300, to: 305 },
    { brand: 'diners', digits: 2, from: 36, to: 36 },
    { brand: 'diners', digits: 2, from: 38, to: 39 },
    { brand: 'unionpay', digits: 2, from: 62, to: 62 },
  ] satisfies BinRange[]
).sort((a, b) => b.digits - a.digits);

/**
 * The brand of a PAN given as ASCII digit bytes (`0x30`–`0x39`); `'unknown'` when no row matches.
 * Reads at most the first 4 bytes; never copies the PAN.
 */
export function brandOfPan(panDigits: Uint8Array): CardBrand {
  for (const row of BIN_TABLE) {
    if (panDigits.length < row.digits) continue;
    let prefix = 0;
    for (let i = 0; i < row.digits; i++) prefix = prefix * 10 + ((panDigits[i] ?? 0x30) - 0x30);
    if (prefix >= row.from && prefix <= row.to) return row.brand;
  }
  return 'unknown';
}
