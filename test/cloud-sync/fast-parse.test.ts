import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { EnvelopeSchema, keyId, openEnvelope, signBody } from '../../cloud-sync/envelope.js';
import {
  CARD_KEYS,
  PAYMENT_KEYS,
  RECORD_KEYS,
  fastAcks,
  fastEnvelope,
  fastPathOf,
  fastRecordsBatch,
} from '../../cloud-sync/fast-parse.js';
import {
  AcksSchema,
  OutboxRecordSchema,
  PaymentSchema,
  RecordsBatchSchema,
  WireCardSchema,
} from '../../cloud-sync/schemas.js';
import { CARD_BRANDS, ENTRY_MODES } from '../../common/card.js';

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
const agreesWith =
  (fast: (value: unknown) => unknown, schema: z.ZodType) =>
  (value: unknown): boolean => {
    const answer = fast(value);
    if (answer === undefined) return true;
    const zod = schema.safeParse(value);
    return zod.success && JSON.stringify(answer) === JSON.stringify(zod.data);
  };
const agreesWithZod = agreesWith(fastAcks, AcksSchema);

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

const chars = (alphabet: string, min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: min, maxLength: max });
const isoAt = fc
  .date({ min: new Date('1990-01-01T00:00:00Z'), max: new Date('2100-12-31T23:59:59Z') })
  .filter((d) => !Number.isNaN(d.getTime()))
  .map((d) => d.toISOString());

/** A payment or void record the schema accepts, `seq` set by the batch. */
const validRecord = fc.record(
  {
    key: visible,
    type: fc.constantFrom('payment', 'void'),
    at: isoAt,
    payment: fc.record(
      {
        id: fc.string({ minLength: 1, maxLength: 64 }),
        amountMinor: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        currency: chars('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 3, 3),
        reference: fc.string({ maxLength: 128 }),
        createdAt: isoAt,
      },
      { requiredKeys: ['id', 'amountMinor', 'currency', 'createdAt'] },
    ),
    card: fc.record(
      {
        token: chars('abcdefghijklmnopqrstuvwxyz234567', 1, 32).map((t) => `tok_${t}`),
        brand: fc.constantFrom(...CARD_BRANDS),
        first6: chars('0123456789', 6, 6),
        last4: chars('0123456789', 4, 4),
        expiryMonth: fc.integer({ min: 1, max: 12 }),
        expiryYear: fc.integer({ min: 2000, max: 2099 }),
        entryMode: fc.constantFrom(...ENTRY_MODES),
        cardholderName: fc.string({ minLength: 1, maxLength: 26 }),
      },
      {
        requiredKeys: [
          'token',
          'brand',
          'first6',
          'last4',
          'expiryMonth',
          'expiryYear',
          'entryMode',
        ],
      },
    ),
    sealed: fc
      .uint8Array({ minLength: 72, maxLength: 300 })
      .map((b) => Buffer.from(b).toString('base64')),
    chain: fc
      .uint8Array({ minLength: 32, maxLength: 32 })
      .map((b) => Buffer.from(b).toString('base64url')),
  },
  { requiredKeys: ['key', 'type', 'at', 'payment', 'card', 'chain'] },
);

const recordsBatch = (record: fc.Arbitrary<Record<string, unknown>>) =>
  fc.tuple(visible, fc.array(record, { minLength: 1, maxLength: 4 })).map(([batch, records]) => ({
    batch,
    records: records.map((r, i) => ({ ...r, seq: i + 1 })),
  }));

/** Where a mutation lands: a record field, a payment or card field, or the batch itself. */
const mutationPath = fc.constantFrom(
  ['key'],
  ['seq'],
  ['type'],
  ['at'],
  ['sealed'],
  ['chain'],
  ['sred'],
  ['pinBlock'],
  ['batch'],
  ['pan'],
  ['payment'],
  ['card'],
  ['payment', 'id'],
  ['payment', 'amountMinor'],
  ['payment', 'currency'],
  ['payment', 'reference'],
  ['payment', 'createdAt'],
  ['payment', 'extra'],
  ['card', 'token'],
  ['card', 'brand'],
  ['card', 'first6'],
  ['card', 'last4'],
  ['card', 'expiryMonth'],
  ['card', 'expiryYear'],
  ['card', 'entryMode'],
  ['card', 'cardholderName'],
  ['card', 'pan'],
);

const mutatedBatch = fc
  .tuple(
    recordsBatch(validRecord),
    fc.nat(),
    mutationPath,
    fc.oneof(
      anyValue,
      isoAt,
      fc.integer({ min: -2, max: 2 }),
      fc.double(),
      // The schemas' edges: each limit and one past it.
      fc.constantFrom(12, 13, 1999, 2000, 2099, 2100, 2 ** 53 - 1, 2 ** 53, -0, 0.5),
      fc.constantFrom(0, 1, 25, 26, 27, 63, 64, 65, 95, 96, 128, 129).map((n) => 'x'.repeat(n)),
      fc.constantFrom('tok_', 'tok_A', '12345', '123', 'eur', 'EURO', '2026-02-30T00:00:00Z'),
    ),
    fc.boolean(),
  )
  .map(([batch, at, path, value, remove]) => {
    const records = batch.records.map((r) => structuredClone(r)) as Record<string, unknown>[];
    const target = records[at % records.length] as Record<string, unknown>;
    const [first, second] = path as [string, string | undefined];
    const holder =
      second === undefined ? target : (target[first] as Record<string, unknown> | undefined);
    const field = second ?? first;
    if (holder !== undefined && holder !== null && typeof holder === 'object') {
      if (remove) delete holder[field];
      else holder[field] = value;
    }
    return { ...batch, records };
  });

const recordsAgreeWithZod = agreesWith(fastRecordsBatch, RecordsBatchSchema);

describe('fast-parse: the up/records fast path (issue 9 §3)', () => {
  it('knows the fields of the schemas as they are: a field added to them needs a look here first', () => {
    const keys = (set: ReadonlySet<string>) => [...set].sort();
    expect(keys(PAYMENT_KEYS)).toEqual(Object.keys(PaymentSchema.shape).sort());
    expect(keys(CARD_KEYS)).toEqual(Object.keys(WireCardSchema.shape).sort());
    expect([...keys(RECORD_KEYS), 'pinBlock', 'sred'].sort()).toEqual(
      Object.keys(OutboxRecordSchema.shape).sort(),
    );
  });

  it('answers for every batch of payment records the schema accepts, as zod does', () => {
    fc.assert(
      fc.property(recordsBatch(validRecord), (value) => {
        const fast = fastRecordsBatch(value);
        expect(fast).toBeDefined();
        expect(JSON.stringify(fast)).toBe(JSON.stringify(RecordsBatchSchema.parse(value)));
      }),
      { numRuns: 300 },
    );
  });

  it('never answers for what the schema refuses, nor differently from it', () => {
    fc.assert(fc.property(mutatedBatch, recordsAgreeWithZod), { numRuns: 3000 });
    fc.assert(fc.property(fc.jsonValue(), recordsAgreeWithZod), { numRuns: 300 });
  });

  it('leaves out-of-order seq, empty batches, non-canonical base64 and unknown keys to zod', () => {
    const [record] =
      fc.sample(recordsBatch(validRecord), { numRuns: 1, seed: 9 })[0]?.records ?? [];
    const ok = {
      batch: 'b1',
      records: [
        { ...record, seq: 1 },
        { ...record, seq: 2 },
      ],
    };
    expect(fastRecordsBatch(ok)).toBeDefined();
    expect(
      fastRecordsBatch({
        ...ok,
        records: [
          { ...record, seq: 2 },
          { ...record, seq: 2 },
        ],
      }),
    ).toBe(undefined);
    expect(fastRecordsBatch({ ...ok, records: [] })).toBe(undefined);
    expect(fastRecordsBatch({ ...ok, extra: 1 })).toBe(undefined);
    expect(
      fastRecordsBatch({ ...ok, records: [{ ...record, seq: 1, pan: '4111111111111111' }] }),
    ).toBe(undefined);
    expect(RecordsBatchSchema.safeParse({ ...ok, extra: 1 }).success).toBe(false);
    const urlSafe = { ...ok, records: [{ ...record, seq: 1, sealed: `${'A'.repeat(97)}-==` }] };
    expect(fastRecordsBatch(urlSafe)).toBe(undefined);
    expect(RecordsBatchSchema.safeParse(urlSafe).success).toBe(false);
    expect(fastPathOf(RecordsBatchSchema)).toBe(fastRecordsBatch);
  });
});

describe('fast-parse: the signed envelope (issue 9 §3)', () => {
  const pair = nacl.sign.keyPair();
  const signed = fc
    .string()
    .map(
      (body) =>
        JSON.parse(signBody(body, { secretKey: pair.secretKey }).toString('utf8')) as Record<
          string,
          unknown
        >,
    );

  it('answers for every envelope signBody makes, as EnvelopeSchema does', () => {
    fc.assert(
      fc.property(signed, (envelope) => {
        expect(fastEnvelope(envelope)).toEqual(EnvelopeSchema.parse(envelope));
      }),
      { numRuns: 100 },
    );
  });

  it('never answers for what EnvelopeSchema refuses, nor differently from it', () => {
    const mutated = fc
      .tuple(
        signed,
        fc.constantFrom('v', 'kid', 'body', 'sig', 'extra'),
        fc.oneof(
          anyValue,
          fc.constantFrom(1, 2, '1', 'A'.repeat(88), `${'A'.repeat(86)}==`, 'A'.repeat(87)),
          fc.constantFrom('0123456789abcdef', '0123456789ABCDEF', '0123456789abcde'),
        ),
        fc.boolean(),
      )
      .map(([envelope, field, value, remove]) => {
        const copy = { ...envelope };
        if (remove) delete copy[field];
        else copy[field] = value;
        return copy;
      });
    const agrees = agreesWith(fastEnvelope, EnvelopeSchema);
    fc.assert(fc.property(mutated, agrees), { numRuns: 1000 });
    fc.assert(fc.property(fc.jsonValue(), agrees), { numRuns: 300 });
  });
});
