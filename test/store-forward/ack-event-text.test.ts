/**
 * The ack event's data text is written directly for its one shape (store-forward/ack-event-text.ts)
 * instead of by the generic canonical encoder. Every stored hash depends on those bytes, so the two
 * must agree exactly: checked on many generated entries, with strings that need escaping.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ackEventText, type TypedAckEntry } from '../../store-forward/ack-event-text.js';
import { canonicalJson } from '../../store-forward/hash-chain.js';

const text = fc.string({ unit: 'binary', maxLength: 12 });
const entry: fc.Arbitrary<TypedAckEntry> = fc.record({
  key: text,
  paymentId: text,
  type: fc.constantFrom('cloud_approved' as const, 'cloud_declined' as const, 'confirmed' as const),
  data: fc.record(
    {
      key: text,
      record: fc.constantFrom('payment' as const, 'void' as const),
      status: text,
      cloudOutcome: text,
      authCode: text,
      declineCode: text,
      reason: text,
    },
    { requiredKeys: ['key', 'record', 'status'] },
  ),
});

describe('ackEventText', () => {
  it('writes exactly what canonicalJson writes for the same ack event data', () => {
    fc.assert(
      fc.property(fc.array(text, { maxLength: 3 }), fc.array(entry, { maxLength: 6 }), (b, r) => {
        expect(ackEventText(b, r)).toBe(canonicalJson({ batches: b, results: r }));
      }),
      { numRuns: 500 },
    );
  });

  it('an entry as the agent writes it: sorted members, escaped reason', () => {
    const written = ackEventText(
      ['b-1'],
      [
        {
          key: 'k"1',
          paymentId: 'pay_1',
          type: 'cloud_declined',
          data: {
            key: 'k"1',
            record: 'payment',
            status: 'accepted',
            reason: 'a\\b',
            declineCode: '51',
          },
        },
      ],
    );
    expect(written).toBe(
      '{"batches":["b-1"],"results":[{"data":{"declineCode":"51","key":"k\\"1","reason":"a\\\\b",' +
        '"record":"payment","status":"accepted"},"key":"k\\"1","paymentId":"pay_1","type":"cloud_declined"}]}',
    );
  });
});
