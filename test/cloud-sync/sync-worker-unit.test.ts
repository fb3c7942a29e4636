import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { CommandGuard } from '../../cloud-sync/commands.js';
import { keyId, openEnvelope, signBody } from '../../cloud-sync/envelope.js';
import { RecordsBatchSchema } from '../../cloud-sync/schemas.js';
import { resendDelayMs } from '../../cloud-sync/batch-window.js';
import { nextFetchLimit, packBatch } from '../../cloud-sync/pack.js';
import { isAgentError } from '../../common/agent-error.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FIXTURE_NOW, makeRecord } from './fixtures.js';

const device = nacl.sign.keyPair();
const keys = new Map([[keyId(device.publicKey), device.publicKey]]);
const policy = { ackTimeoutMs: 1000, backoffFactor: 2, maxBackoffMs: 30_000, jitterRatio: 0.2 };

describe('resendDelayMs (exponential backoff with jitter)', () => {
  it('doubles from ackTimeoutMs and caps at maxBackoffMs', () => {
    const noJitter = (): number => 0;
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => resendDelayMs(n, policy, noJitter))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000,
    ]);
  });

  it('jitter only stretches, by at most jitterRatio', () => {
    expect(resendDelayMs(1, policy, () => 0.5)).toBe(1100);
    expect(resendDelayMs(3, policy, () => 0.999999)).toBe(4800);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const delay = resendDelayMs(attempt, policy, () => r);
          const base = Math.min(30_000, 1000 * 2 ** (attempt - 1));
          expect(delay).toBeGreaterThanOrEqual(base);
          expect(delay).toBeLessThanOrEqual(Math.round(base * 1.2));
        },
      ),
    );
  });
});

describe('packBatch', () => {
  it('fills up to maxMessageBytes exactly, in seq order, never skipping a record', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1500, max: 20_000 }),
        fc.array(fc.string({ maxLength: 60 }), { minLength: 60, maxLength: 60 }),
        (count, maxMessageBytes, references) => {
          const records = Array.from({ length: count }, (_, i) =>
            makeRecord(i + 1, {
              payment: { ...makeRecord(i + 1).payment, reference: references[i] ?? '' },
            }),
          );
          const packed = packBatch(records, {
            batchId: 'b-1',
            signer: { secretKey: device.secretKey },
            maxMessageBytes,
          });
          expect(packed.refused).toEqual([]);
          expect(packed.records.length).toBeGreaterThan(0);
          expect(packed.payload.length).toBeLessThanOrEqual(maxMessageBytes);
          const opened = openEnvelope(packed.payload, { keys }, RecordsBatchSchema);
          expect(opened.records.map((r) => r.seq)).toEqual(
            records.slice(0, opened.records.length).map((r) => r.seq),
          );
          if (opened.records.length < count) {
            // The next record would not have fitted.
            const more = packBatch(records.slice(0, opened.records.length + 1), {
              batchId: 'b-1',
              signer: { secretKey: device.secretKey },
              maxMessageBytes: Number.MAX_SAFE_INTEGER,
            });
            expect(more.payload.length).toBeGreaterThan(maxMessageBytes);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('makes byte for byte the envelope signBody makes of the same body (the body escaped once, in pieces)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (references, trusted) => {
          const records = references.map((reference, i) =>
            makeRecord(i + 1, { payment: { ...makeRecord(i + 1).payment, reference } }),
          );
          const signer = { secretKey: device.secretKey };
          const packed = packBatch(records, {
            batchId: 'b-"\\-1',
            signer,
            maxMessageBytes: 1_000_000,
            trusted,
          });
          const { body } = JSON.parse(packed.payload.toString('utf8')) as { body: string };
          expect(packed.payload.equals(signBody(body, signer))).toBe(true);
          expect(openEnvelope(packed.payload, { keys }, RecordsBatchSchema).records).toHaveLength(
            records.length,
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a record too large on its own (POS314) and one failing the schema (POS313)', () => {
    const huge = makeRecord(2, { sealed: Buffer.alloc(6000, 7).toString('base64') });
    const bad = { ...makeRecord(3), seq: 0 };
    const packed = packBatch([makeRecord(1), huge, bad, makeRecord(4)], {
      batchId: 'b',
      signer: { secretKey: device.secretKey },
      maxMessageBytes: 4096,
    });
    expect(packed.records.map((r) => r.seq)).toEqual([1, 4]);
    expect(packed.refused.map((r) => [r.key, r.status, r.code])).toEqual([
      [huge.key, 'rejected', 'POS314'],
      [bad.key, 'rejected', 'POS313'],
    ]);
  });

  it('strips keys outside the contract instead of sending them', () => {
    const record = {
      ...makeRecord(1),
      state: 'pending',
      card: { ...makeRecord(1).card, pan: '4111111111111111' },
    };
    const packed = packBatch([record], {
      batchId: 'b',
      signer: { secretKey: device.secretKey },
      maxMessageBytes: 8192,
    });
    expect(packed.stripped.sort()).toEqual(['card.pan', 'state']);
    expect(packed.payload.toString()).not.toContain('4111111111111111');
    expect(packed.records).toHaveLength(1);
  });
});

describe('packBatch.full', () => {
  it('is true exactly when a record was left out for size', () => {
    const records = Array.from({ length: 40 }, (_, i) => makeRecord(i + 1));
    const signer = { secretKey: device.secretKey };
    const all = packBatch(records, { batchId: 'b', signer, maxMessageBytes: 1_000_000 });
    expect(all.records).toHaveLength(40);
    expect(all.full).toBe(false);
    const some = packBatch(records, { batchId: 'b', signer, maxMessageBytes: 4096 });
    expect(some.records.length).toBeLessThan(40);
    expect(some.full).toBe(true);
    const capped = packBatch(records, {
      batchId: 'b',
      signer,
      maxMessageBytes: 1_000_000,
      maxRecords: 10,
    });
    expect(capped.records).toHaveLength(10);
    expect(capped.full).toBe(false);
  });
});

describe('nextFetchLimit', () => {
  it('asks for what fitted plus a quarter after a full batch', () => {
    expect(nextFetchLimit({ limit: 1000, candidates: 1000, packed: 176, full: true }, 1000)).toBe(
      220,
    );
    expect(nextFetchLimit({ limit: 1000, candidates: 1000, packed: 4, full: true }, 1000)).toBe(12);
  });

  it('doubles when every candidate fitted and there may be more, keeps it when the queue ran dry', () => {
    expect(nextFetchLimit({ limit: 220, candidates: 220, packed: 220, full: false }, 1000)).toBe(
      440,
    );
    expect(nextFetchLimit({ limit: 220, candidates: 30, packed: 30, full: false }, 1000)).toBe(220);
  });

  it('stays within 1..maxRecords', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 10_000 }),
        (limit, candidates, packed, full, max) => {
          const next = nextFetchLimit({ limit, candidates, packed, full }, max);
          expect(Number.isInteger(next)).toBe(true);
          expect(next).toBeGreaterThanOrEqual(1);
          expect(next).toBeLessThanOrEqual(max);
        },
      ),
    );
  });
});

describe('CommandGuard', () => {
  const command = (id: string, issuedAt: number, ttlMs: number) => ({
    id,
    issuedAt: new Date(issuedAt).toISOString(),
    expiresAt: new Date(issuedAt + ttlMs).toISOString(),
    command: { type: 'request_diagnostics' as const },
  });
  const codeOf = (fn: () => void): string | undefined => {
    try {
      fn();
    } catch (error) {
      return isAgentError(error) ? error.code : 'other';
    }
    return undefined;
  };

  it('accepts once, refuses replays (POS321), expired (POS320) and future (POS322) commands', () => {
    const clock = new FakeClock(FIXTURE_NOW);
    const guard = new CommandGuard({ clock, maxClockSkewMs: 60_000 });
    const c1 = command('c1', clock.now(), 10_000);
    expect(codeOf(() => guard.accept(c1))).toBeUndefined();
    expect(codeOf(() => guard.accept(c1))).toBe('POS321');
    clock.advance(10_000);
    expect(codeOf(() => guard.accept(c1))).toBe('POS320');
    expect(codeOf(() => guard.accept(command('c2', clock.now() + 120_000, 300_000)))).toBe(
      'POS322',
    );
  });
});

describe('CommandGuard with a SeenCommandStore', () => {
  const command = (id: string, expiresAt: string): Parameters<CommandGuard['accept']>[0] => ({
    id,
    issuedAt: '2026-11-21T09:50:00.000Z',
    expiresAt,
    command: { type: 'request_diagnostics' },
  });

  it('a new guard on the same store refuses a replay (POS321); expired ids are pruned', () => {
    const clock = new FakeClock(FIXTURE_NOW);
    let saved: { id: string; expiresAt: number }[] = [];
    const store = { load: () => saved, save: (s: typeof saved) => void (saved = [...s]) };
    new CommandGuard({ clock, store }).accept(command('c-1', '2026-11-21T10:00:00.000Z'));
    new CommandGuard({ clock, store }).accept(command('c-2', '2026-11-21T11:00:00.000Z'));
    const code = (fn: () => void): string | undefined => {
      try {
        fn();
      } catch (error) {
        return isAgentError(error) ? error.code : String(error);
      }
      return undefined;
    };
    expect(
      code(() =>
        new CommandGuard({ clock, store }).accept(command('c-1', '2026-11-21T10:00:00.000Z')),
      ),
    ).toBe('POS321');
    clock.advance(10 * 60_000); // c-1 expires at 10:00
    new CommandGuard({ clock, store }).accept(command('c-3', '2026-11-21T12:00:00.000Z'));
    expect(saved.map((e) => e.id)).toEqual(['c-2', 'c-3']);
  });

  it('refuses (POS324) and forgets a command whose id cannot be saved', () => {
    const clock = new FakeClock(FIXTURE_NOW);
    let fail = false;
    const guard = new CommandGuard({ clock });
    guard.useStore({
      load: () => [],
      save: () => {
        if (fail) throw new Error('ENOSPC');
      },
    });
    fail = true;
    expect(() => guard.accept(command('c-9', '2026-11-21T10:00:00.000Z'))).toThrow(
      expect.objectContaining({ code: 'POS324' }),
    );
    fail = false;
    expect(() => guard.accept(command('c-9', '2026-11-21T10:00:00.000Z'))).not.toThrow();
  });
});
