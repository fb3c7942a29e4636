/**
 * What happens to each EMV tag at the card boundary (architecture.md §3.3; EMV Book 3 Annex A for the
 * names, Annex B for BER-TLV):
 *
 * ```
 *  forward  allow-list (EMV_FORWARDED_TAGS): authorization data, sealed with the card for the vault
 *  seal     sensitive: 5A PAN, 57 track 2 equivalent, 56 track 1 equivalent, 9F6B track 2 data
 *           (contactless), 9F1F track 1 discretionary, 9F20 track 2 discretionary, 99 PIN data —
 *           read by the boundary, sealed, never shown (PCI DSS 4.0.1 req. 3.3.1, 3.4.1)
 *  drop     everything else: unknown tags and vendor-private tags (DFxx, 9F5x… not on the list)
 * ```
 */
import type { Buffer } from 'node:buffer';
import type { AgentError } from '../../common/agent-error.js';
import { driverError } from '../errors.js';
import { EMV_FORWARDED_TAGS } from './card-boundary.js';
import { parseTlv, type TlvObject } from './tlv.js';

/** Tags that carry card data (architecture.md §2): sealed, never shown, never forwarded in clear. */
export const SENSITIVE_EMV_TAGS: ReadonlySet<string> = new Set([
  '5A', '57', '56', '9F6B', '9F1F', '9F20', '99',
]); // prettier-ignore

/** What the boundary does with a tag: see the module comment. */
export type EmvTagHandling = 'forward' | 'seal' | 'drop';

/** Classifies an upper-case hex tag, e.g. `'9F26'` → `'forward'`, `'5A'` → `'seal'`, `'DF01'` → `'drop'`. */
export function classifyEmvTag(tag: string): EmvTagHandling {
  if (SENSITIVE_EMV_TAGS.has(tag)) return 'seal';
  if (EMV_FORWARDED_TAGS.has(tag)) return 'forward';
  return 'drop';
}

/**
 * Parses BER-TLV (see tlv.ts) and reports a malformed input as a coded error.
 * @returns the flattened primitive objects (views into `data`), or `POS143` naming the offset
 *   problem class (never the bytes).
 */
export function parseEmvTlv(
  data: Buffer,
): { ok: true; objects: TlvObject[] } | { ok: false; error: AgentError } {
  const objects = parseTlv(data);
  if (objects !== undefined) return { ok: true, objects };
  return {
    ok: false,
    error: driverError(
      'POS143',
      `EMV data (${data.length} bytes) is not valid BER-TLV (EMV Book 3 Annex B): a tag, length or value is truncated, a tag is longer than 4 bytes, or a length form other than 1 byte/81/82 is used. Ask the customer to insert the card again`,
      { details: { length: data.length } },
    ),
  };
}
