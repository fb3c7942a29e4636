/**
 * Card tokens of the approving test cards, made by the real card boundary (drivers/boundary), for
 * the fleet simulator and the bench: what a terminal's store holds after a swipe, without a PIN
 * pad. The test PANs never leave this call; only tokens (first 6 / last 4, sealed blob) come out.
 */
import { CardBoundary } from '../drivers/boundary/card-boundary.js';
import type { CardToken } from '../drivers/boundary/card-token.js';
import { TEST_CARDS, buildTrack2 } from './test-cards.js';

/**
 * `count` tokens of the approving test cards, in turn (docs/test-cards.md), each a swipe of an
 * ISO/IEC 7813 track 2 built from the card.
 *
 * @param keys.tokenKey — the tenant token key (32 bytes).
 * @param keys.vaultPublicKey — the cloud vault's public key the sealed blob is made for.
 * @throws Error when the boundary refuses a test card (a broken test card table, never input).
 */
export function approvedCardTokens(
  keys: { tokenKey: Uint8Array; vaultPublicKey: Uint8Array },
  count: number,
): CardToken[] {
  const boundary = new CardBoundary({
    tokenKey: keys.tokenKey,
    vaultPublicKey: keys.vaultPublicKey,
  });
  const cards = TEST_CARDS.filter((c) => c.outcome === 'approve');
  const tokens: CardToken[] = [];
  for (let i = 0; i < count; i++) {
    const card = cards[i % cards.length];
    if (card === undefined) throw new Error('no approving test card');
    const result = boundary.tokenize({ entryMode: 'swipe', track2: buildTrack2(card.pan) });
    if (!result.ok) throw new Error(`card boundary refused a test card: ${result.reason}`);
    tokens.push(result.card);
  }
  return tokens;
}
