import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { keyId, openEnvelope, signBody } from '../../cloud-sync/envelope.js';
import { fastAcks, fastPathOf } from '../../cloud-sync/fast-parse.js';
import { AcksSchema } from '../../cloud-sync/schemas.js';

/** Values a field of an ack result may take on the wire, valid or not. */
const anyValue = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ minLength: 15, maxLength: 70 }),
  fc.constantFrom('accepted', 'duplicate', 'rejected', 'approved', 'declined', 'A1B2C3', ''),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.integer(),
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
);

const visible = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 40,
});

/** A result the schema accepts, as the cloud core writes them. */
const validResult = fc.record(
  {
    key: visible,
    status: fc.constantFrom('accepted', 'duplicate', 'rejected'),
    code: fc.string({ maxLength: 64 }),
    reason: fc.string({ maxLength: 512 }),
    outcome: fc.constantFrom('approved', 'declined'),
    authCode: fc.string({ maxLength: 16 }),
    declineCode: fc.string({ maxLength: 32 }),
  },
  { requiredKeys: ['key', 'status'] },
);

/** A result with any field replaced, removed or added. */
const mutatedResult = fc
  .tuple(
    validResult,
    fc.constantFrom(
      'key',
      'status',
      'code',
      'reason',
      'outcome',
      'authCode',
      'declineCode',
      'batch',
      'extra',
    ),
    anyValue,
    fc.boolean(),
  )
  .map(([result, field, value, remove]) => {
    const copy: Record<string, unknown> = { ...result };
    if (remove) delete copy[field];
    else copy[field] = value;
    return copy;
  });

const acks = (results: fc.Arbitrary<unknown>) =>
  fc.record({
    batch: fc.oneof(visible, anyValue),
    results: fc.array(results, { maxLength: 5 }),
  });

/** The fast path's answer must be zod's, or no answer: key order included (JSON text). */
function agreesWithZod(value: unknown): boolean {
  const fast = fastAcks(value);
  if (fast === undefined) return true;
  const zod = AcksSchema.safeParse(value);
  return zod.success && JSON.stringify(fast) === JSON.stringify(zod.data);
}

describe('fast-parse: the down/acks fast path (issue 9 §3)', () => {
  it('answers for every acknowledgement the schema accepts without batch answers, as zod does', () => {
    fc.assert(
      fc.property(acks(validResult), (value) => {
        fc.pre(typeof value.batch === 'string' && /^[\x21-\x7E]{1,64}$/.test(value.batch));
        const fast = fastAcks(value);
        expect(fast).toBeDefined();
        expect(JSON.stringify(fast)).toBe(JSON.stringify(AcksSchema.parse(value)));
      }),
      { numRuns: 300 },
    );
  });

  it('never answers for what the schema refuses, nor differently from it', () => {
    fc.assert(fc.property(acks(mutatedResult), agreesWithZod), { numRuns: 2000 });
    fc.assert(fc.property(acks(anyValue), agreesWithZod), { numRuns: 500 });
    fc.assert(fc.property(fc.jsonValue(), agreesWithZod), { numRuns: 500 });
  });

  it('leaves the edges to zod: lengths just over the limits, unknown keys stripped like zod', () => {
    const base = { key: 'k-1', status: 'accepted' };
    for (const [field, max] of [
      ['code', 64],
      ['reason', 512],
      ['authCode', 16],
      ['declineCode', 32],
    ] as const) {
      expect(fastAcks({ batch: 'b', results: [{ ...base, [field]: 'x'.repeat(max) }] })).toEqual({
        batch: 'b',
        results: [{ ...base, [field]: 'x'.repeat(max) }],
      });
      expect(fastAcks({ batch: 'b', results: [{ ...base, [field]: 'x'.repeat(max + 1) }] })).toBe(
        undefined,
      );
    }
    expect(fastAcks({ batch: 'b'.repeat(65), results: [] })).toBe(undefined);
    expect(fastAcks({ batch: 'b', results: [{ ...base, key: 'k'.repeat(256) }] })).toBe(undefined);
    expect(fastAcks({ batch: 'b', results: [{ ...base, key: 'with space' }] })).toBe(undefined);
    expect(fastAcks({ batch: 'b', results: [{ ...base, batch: {} }] })).toBe(undefined);
    const stripped = { batch: 'b', extra: 1, results: [{ ...base, pan: '4111111111111111' }] };
    expect(fastAcks(stripped)).toEqual(AcksSchema.parse(stripped));
    expect(fastAcks(stripped)?.results[0]).not.toHaveProperty('pan');
  });

  it('is what openEnvelope uses for AcksSchema, and a refused ack is still refused by zod', () => {
    expect(fastPathOf(AcksSchema)).toBe(fastAcks);
    const cloud = nacl.sign.keyPair();
    const keys = new Map([[keyId(cloud.publicKey), cloud.publicKey]]);
    const body = { batch: 'b1', results: [{ key: 'k1', status: 'accepted', outcome: 'approved' }] };
    const ok = signBody(JSON.stringify(body), { secretKey: cloud.secretKey });
    expect(openEnvelope(ok, { keys }, AcksSchema)).toEqual(body);
    const bad = signBody(
      JSON.stringify({ batch: 'b1', results: [{ key: 'k1', status: 'maybe' }] }),
      {
        secretKey: cloud.secretKey,
      },
    );
    expect(() => openEnvelope(bad, { keys }, AcksSchema)).toThrow(/POS313/);
  });
});
