/**
 * Payment ids sort in creation order within one millisecond and across a clock that steps back
 * (regression: with uuid's random counter per id, the payment list's "newest first" returned
 * same-millisecond payments in any order, and the keyset-cursor API test failed now and then).
 */
import { describe, expect, it } from 'vitest';
import { PaymentIds } from '../../store-forward/payment-ids.js';

const UUID_V7 = /^pay_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('PaymentIds', () => {
  it('1,000 ids in one millisecond sort in the order they were made, and are UUIDv7', () => {
    const ids = new PaymentIds();
    const made = Array.from({ length: 1000 }, () => ids.next(1_780_000_000_000));
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(1000);
    for (const id of made) expect(id).toMatch(UUID_V7);
  });

  it('a clock that stands still or steps back never makes an id that sorts earlier', () => {
    const ids = new PaymentIds();
    const clock = [5000, 5001, 5001, 4000, 4999, 5002, 5002, 6000];
    const made = clock.map((ms) => ids.next(1_780_000_000_000 + ms));
    expect([...made].sort()).toEqual(made);
  });

  it('the timestamp part is the clock (RFC 9562 §5.7: 48-bit Unix ms)', () => {
    const ms = 1_780_000_123_456;
    const hex = new PaymentIds().next(ms).slice(4).replace(/-/g, '').slice(0, 12);
    expect(parseInt(hex, 16)).toBe(ms);
  });
});
