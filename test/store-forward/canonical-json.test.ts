/**
 * The hash chain's canonical JSON (store-forward/hash-chain.ts) got a faster encoder for the ack
 * events of issue 9. Every hash already stored depends on its bytes, so it must write exactly what
 * the encoder before it wrote, and refuse exactly what it refused, with the same message: checked
 * here against a copy of that encoder on many generated values.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { storeError } from '../../store-forward/errors.js';
import { canonicalJson } from '../../store-forward/hash-chain.js';

/** The encoder as it was before issue 9's fast path (the reference). */
function reference(value: unknown, path = '$'): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw storeError(
          'POS222',
          `${path} is ${String(value)}, but canonical JSON holds safe integers only; ` +
            'fix: keep money and counts as integers (minor units, milliseconds)',
        );
      }
      return String(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value
          .map((item: unknown, i) => {
            if (item === undefined) {
              throw storeError('POS222', `${path}[${i}] is undefined; fix: use null`);
            }
            return reference(item, `${path}[${i}]`);
          })
          .join(',')}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw storeError(
          'POS222',
          `${path} is not a plain object; fix: convert it to strings and integers first`,
        );
      }
      const record = value as Record<string, unknown>;
      const members = Object.keys(record)
        .filter((key) => record[key] !== undefined)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${reference(record[key], `${path}.${key}`)}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw storeError(
        'POS222',
        `${path} has type ${typeof value}, which JSON cannot hold; fix: use a string or integer`,
      );
  }
}

/** The text, or the error's code and message. */
function outcome(encode: (value: unknown) => string, value: unknown): string {
  try {
    return `ok ${encode(value)}`;
  } catch (error) {
    return isAgentError(error) ? `${error.code} ${error.message}` : `throws ${String(error)}`;
  }
}

/** Strings with what JSON escapes: quotes, backslashes, controls, lone surrogates, non-ASCII. */
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', '"', '\\', '\u0000', '\u001f', '\u2028', '\ud800', 'é€😀', '__proto__'),
);

const leaf = fc.oneof(
  text,
  fc.integer(),
  fc.maxSafeInteger(),
  fc.boolean(),
  fc.constant(null),
  // What it refuses:
  fc.double(),
  fc.constantFrom(Number.NaN, Infinity, -0, 2 ** 53, undefined),
  fc.bigInt().map((b) => b as unknown),
  fc.date().map((d) => d as unknown),
);

const value = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('node'), { maxLength: 6 }),
    fc.dictionary(text, tie('node'), { maxKeys: 6 }),
    fc.dictionary(text, tie('node'), { maxKeys: 4, noNullPrototype: false }),
    fc.sparseArray(tie('node'), { maxLength: 4 }),
  ),
})).node;

describe('canonicalJson', () => {
  it('writes byte for byte what the encoder before the fast path wrote, and refuses the same values with the same message', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(outcome(canonicalJson, v)).toBe(outcome(reference, v));
      }),
      { numRuns: 3000 },
    );
  });

  it('encodes an ack event of a whole message as the reference does', () => {
    const results = Array.from({ length: 200 }, (_, i) => ({
      key: `01a23aa3-0017-72f4-a3fc-${String(i).padStart(12, '0')}`,
      paymentId: `pay_${i}`,
      type: i % 3 === 0 ? 'cloud_approved' : 'confirmed',
      data: {
        key: `k${i}`,
        record: 'payment',
        status: 'accepted',
        authCode: `A${i}`,
        reason: undefined,
      },
    }));
    const event = { batches: ['b-1', 'b-2'], results };
    expect(canonicalJson(event)).toBe(reference(event));
  });

  it('names the path of a refused value, as before', () => {
    expect(outcome(canonicalJson, { a: [1, { b: 1.5 }] })).toContain('$.a[1].b is 1.5');
    expect(outcome(canonicalJson, [1, undefined])).toContain('$[1] is undefined');
    expect(outcome(canonicalJson, { d: new Date(0) })).toContain('$.d is not a plain object');
  });
});
