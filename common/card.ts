/**
 * The card vocabulary every layer shares (issue 15): the brands of the BIN table, the entry modes,
 * and the shape of what may be shown of a PAN — the first 6 digits (the BIN) and the last 4
 * (PCI DSS 4.0.1 req. 3.4.1). drivers/boundary/card-token.ts, store-forward/model.ts and
 * cloud-sync/schemas.ts use these; none of them defines its own. No PAN is ever one of these
 * values: a masked PAN is 10 digits at most.
 */

/** Card schemes of the longest-prefix BIN table (drivers/boundary/bin-table.ts, architecture.md §2 item 3). */
export const CARD_BRANDS = [
  'visa',
  'mastercard',
  'amex',
  'discover',
  'jcb',
  'diners',
  'unionpay',
  'unknown',
] as const;
/** One of {@link CARD_BRANDS}. */
export type CardBrand = (typeof CARD_BRANDS)[number];

/** How the card was read: magnetic stripe, contact chip, contactless, or keyed. */
export const ENTRY_MODES = ['swipe', 'chip', 'contactless', 'manual'] as const;
/** One of {@link ENTRY_MODES}. */
export type EntryMode = (typeof ENTRY_MODES)[number];

/** The first 6 digits of a PAN (the BIN), e.g. `411111`. */
export const FIRST6_PATTERN = /^\d{6}$/;
/** The last 4 digits of a PAN, e.g. `1111`. */
export const LAST4_PATTERN = /^\d{4}$/;

/** What may be shown of a PAN (PCI DSS 4.0.1 req. 3.4.1: BIN and last 4). */
export interface MaskedPan {
  /** First 6 digits of the PAN (the BIN); {@link FIRST6_PATTERN}. */
  first6: string;
  /** Last 4 digits of the PAN; {@link LAST4_PATTERN}. */
  last4: string;
}
