/**
 * Payment ids: `pay_` + a UUIDv7 (RFC 9562 §5.7) whose 48-bit timestamp is the store's clock and
 * whose next bits are a counter within a millisecond (RFC 9562 §6.2, method 1), so the ids of one
 * store sort in creation order even when several payments are created in one millisecond. The
 * payment list ("newest first", `ORDER BY created_at DESC, id DESC`) and its keyset cursor rely
 * on that order; with a random counter per id, same-millisecond payments came back in any order.
 */
import { randomInt } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

/** Counter bits the generator uses (uuid's `seq`); it starts below 2^30 to leave room to count. */
const SEQ_LIMIT = 2 ** 31;

/** Makes monotonic payment ids for one store (one per open store; not shared between processes). */
export class PaymentIds {
  #msecs = -Infinity;
  #seq = 0;

  /**
   * The next id for a payment created at `nowMs` (epoch ms). A clock that stands still or steps
   * back keeps the last timestamp and counts on, so ids never go backwards; past 2^31 ids in one
   * millisecond the timestamp moves on by one.
   */
  next(nowMs: number): string {
    if (nowMs > this.#msecs) {
      this.#msecs = nowMs;
      this.#seq = randomInt(0, 2 ** 30);
    } else if (++this.#seq >= SEQ_LIMIT) {
      this.#msecs += 1;
      this.#seq = 0;
    }
    return `pay_${uuidv7({ msecs: this.#msecs, seq: this.#seq })}`;
  }
}
