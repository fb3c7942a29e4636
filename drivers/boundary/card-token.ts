/**
 * The only card data that leaves `drivers/` (architecture.md §2, docs/internal-contracts.md): a token,
 * what may be displayed (brand, first 6, last 4, expiry, entry mode, optionally the name), and
 * either the sealed blob for the vault or the reader's own SRED ciphertext.
 */
import type { CardBrand, EntryMode, MaskedPan } from '../../common/card.js';

/** The card vocabulary of common/card.ts, under the names drivers/ has always used. */
export type { CardBrand, EntryMode };

/**
 * A tokenized card (docs/internal-contracts.md). Contains no PAN, track data or PIN: of the PAN
 * only the first 6 (the BIN) and the last 4 ({@link MaskedPan}); PCI DSS 4.0.1 req. 3.4.1.
 */
export interface CardToken extends MaskedPan {
  /**
   * `'tok_'` + RFC 4648 base32 (lower case, no padding) of the first 20 bytes of
   * HMAC-SHA-256(tokenKey, PAN digits as ASCII) — 32 base32 characters. Same card and tenant key
   * → same token (PCI DSS 4.0.1 req. 3.5.1.1, keyed cryptographic hash). For SRED reads see
   * {@link CardBoundary.tokenizeSred}: derived from the reader's ciphertext, not the PAN.
   */
  token: string;
  brand: CardBrand;
  /** 1–12. */
  expiryMonth: number;
  /** Four digits, e.g. 2028 (track data carries YY; 20YY is assumed). */
  expiryYear: number;
  entryMode: EntryMode;
  /** `SURNAME/GIVEN` from track 1, only when the boundary's `allowCardholderName` is true. */
  cardholderName?: string;
  /** base64 of ephemeralPublicKey(32) ‖ nonce(24) ‖ nacl.box ciphertext; see sealed-card.ts. */
  sealed?: string;
  /** Reader-encrypted card data (SRED/P2PE, DUKPT), passed through unopened (architecture.md §2). */
  sred?: { ksnHex: string; ciphertextHex: string };
}

/**
 * Why a card read produced no token. The first five come from the PIN pad (message 29,
 * architecture.md §3.2); the others are the boundary's own verdicts (architecture.md §2 item 1, §3.3):
 * - `bad_read` — unreadable track/EMV data (POS132);
 * - `no_start_sentinel` — track text without its `%`/`;` start and no recognisable format;
 * - `chip_required` — a swiped 2xx/6xx card while fallback swipe is off (POS133);
 * - `invalid_pan` — not 12–19 digits or Luhn fails (POS130);
 * - `expired` — the expiry month has passed (POS131);
 * - `reader_disconnected` — the card reader (or PIN pad) taking the card was unplugged during the
 *   read (POS144); the payment fails safely and the POS app may start it again.
 */
export type CardReadFailure =
  | 'timeout'
  | 'canceled'
  | 'bad_read'
  | 'chip_required'
  | 'card_removed'
  | 'no_start_sentinel'
  | 'invalid_pan'
  | 'expired'
  | 'reader_disconnected';
