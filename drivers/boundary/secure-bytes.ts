/**
 * Buffers for card data that can be wiped for good (issue 11 item 1; architecture.md §2).
 *
 * Where a Node Buffer's bytes live decides whether `fill(0)` really removes them:
 *
 * ```
 *  new Uint8Array(n ≤ 64) / Buffer.alloc(n ≤ 64)   V8 heap (on-heap typed array): the garbage
 *                                                   collector MOVES it; the old copy stays
 *  Buffer.from(x) / allocUnsafe(n < 4 KiB)          Node's shared 8 KiB pool: neighbours, and a
 *                                                   slice nobody wipes keeps its bytes
 *  secureBytes(n) = new ArrayBuffer(n)              its own off-heap block (ArrayBuffer backing
 *                                                   stores are never moved by V8): wiped = gone
 * ```
 *
 * So every Buffer that holds a PAN, track data or a key derived for sealing is made here and
 * wiped by its owner (`fill(0)`). Views (`subarray`) of a secure buffer are fine: they share its
 * block, and wiping the whole buffer wipes them.
 */
import { Buffer } from 'node:buffer';

/** A zero-filled Buffer of `length` bytes on its own off-heap block (see the module doc). */
export function secureBytes(length: number): Buffer {
  return Buffer.from(new ArrayBuffer(length));
}

/** A {@link secureBytes} copy of `bytes`; the caller wipes both when done. */
export function secureCopy(bytes: Uint8Array): Buffer {
  const out = secureBytes(bytes.length);
  out.set(bytes);
  return out;
}
