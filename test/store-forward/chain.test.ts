import fc from 'fast-check';
/**
 * The hash chain and the projection check: tampering is done the way an attacker or a careless
 * script would, through a plain connection with the protecting trigger dropped.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import {
  GENESIS_HASH,
  canonicalJson,
  canonicalRowBytes,
  eventHash,
} from '../../store-forward/hash-chain.js';
import { freshStore, newPayment, rawConnection } from './helpers.js';

let fx: ReturnType<typeof freshStore> | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

/**
 * Five payments, one of them approved by an acknowledgement → chain 1…6, where 5 is an ack event
 * (ack_events) and the others are payment events.
 */
function populated() {
  fx = freshStore();
  const { store } = fx;
  const a = store.createPayment(newPayment('key-a')).payment; // 1
  const b = store.createPayment(newPayment('key-b')).payment; // 2
  store.createPayment(newPayment('key-x')); // 3
  store.createPayment(newPayment('key-y')); // 4
  store.applyAcks([{ key: 'key-a', status: 'accepted', outcome: 'approved', authCode: 'OK1234' }]); // 5
  const c = store.createPayment(newPayment('key-c')).payment; // 6
  return { ...fx, a, b, c };
}

function tamper(path: string, sql: string, trigger?: string): void {
  const raw = rawConnection(path);
  raw.pragma('foreign_keys = OFF');
  try {
    if (trigger !== undefined) raw.exec(`DROP TRIGGER ${trigger}`);
    raw.exec(sql);
  } finally {
    raw.close();
  }
}

describe('canonical encoding', () => {
  it('sorts keys, drops undefined members, writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [true, null, 'x'], c: undefined }, A: 'é"' })).toBe(
      '{"A":"é\\"","a":{"d":[true,null,"x"]},"b":1}',
    );
  });

  it.each([
    ['a float', { amount: 10.5 }],
    ['NaN', { n: Number.NaN }],
    ['an unsafe integer', { n: 2 ** 53 }],
    ['a Date', { at: new Date(0) }],
    ['undefined in an array', { list: [undefined] }],
    ['a bigint', { n: 1n }],
  ])('refuses %s with POS222', (_name, value) => {
    let code: string | undefined;
    try {
      canonicalJson(value);
    } catch (error) {
      code = isAgentError(error) ? error.code : 'other';
    }
    expect(code).toBe('POS222');
  });

  it('hashes SHA-256(prev_hash ‖ UTF-8 of [seq,"payment_id","type","at","data"]) as documented', () => {
    const row = {
      seq: 1,
      paymentId: 'pay_x',
      type: 'payment_stored',
      at: '2026-11-21T09:00:00.000Z',
      data: '{"a":1}',
    };
    const text = '[1,"pay_x","payment_stored","2026-11-21T09:00:00.000Z","{\\"a\\":1}"]';
    expect(canonicalRowBytes(row).toString('utf8')).toBe(text);
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.alloc(32), Buffer.from(text, 'utf8')]))
      .digest('hex');
    expect(eventHash(GENESIS_HASH, row).toString('hex')).toBe(expected);
  });

  it('hashes the UTF-8 bytes of canonicalRowBytes for any text, non-ASCII and lone surrogates too', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat(),
        fc.string({ unit: 'binary' }),
        fc.string({ unit: 'grapheme' }),
        fc.string(),
        (prev, seq, paymentId, type, data) => {
          const row = { seq, paymentId, type, at: '2026-11-21T09:00:00.000Z', data };
          const expected = createHash('sha256')
            .update(Buffer.concat([prev, canonicalRowBytes(row)]))
            .digest('hex');
          expect(eventHash(prev, row).toString('hex')).toBe(expected);
        },
      ),
    );
  });

  it('hashes rows of any length, across its reused buffer and past it, in any order', () => {
    // eventHash writes the bytes into one reused 16 KiB buffer, or a buffer of their own when
    // they may not fit (3 bytes per UTF-16 unit): lengths on both sides of the edge, 1- to
    // 4-byte characters, a long row then a short one (nothing of the long one may stay).
    const hashOf = (prev: Uint8Array, row: Parameters<typeof eventHash>[1]): string =>
      createHash('sha256').update(prev).update(canonicalRowBytes(row)).digest('hex');
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(
          fc.tuple(
            fc.constantFrom('a', 'é', '€', '😀', '\ud800'),
            fc.integer({ min: 0, max: 12_000 }),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (prev, parts) => {
          for (const [unit, count] of parts) {
            const row = {
              seq: count + 1,
              paymentId: 'pay_x',
              type: 'approved',
              at: 'at',
              data: unit.repeat(count),
            };
            expect(eventHash(prev, row).toString('hex')).toBe(hashOf(prev, row));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('verifyChain', () => {
  it('accepts an untouched log; the first prev_hash is 32 zero bytes and each links to the last', () => {
    const { store, a, b } = populated();
    expect(store.verifyChain()).toEqual({ ok: true, events: 6 });
    const eventsA = store.listEvents(a.id);
    const eventsB = store.listEvents(b.id);
    expect(eventsA[0]?.prevHash).toBe('0'.repeat(64));
    expect(eventsB[0]?.prevHash).toBe(eventsA[0]?.hash);
  });

  it('detects an edited event (trigger dropped, amount changed in data)', () => {
    const { store, path } = populated();
    tamper(
      path,
      'UPDATE events SET data = replace(data, \'"amountMinor":1050\', \'"amountMinor":1\') WHERE seq = 2',
      'events_no_update',
    );
    const report = store.verifyChain();
    expect(report.ok).toBe(false);
    expect(report.ok ? [] : report.problems).toEqual([
      expect.stringMatching(
        /^event 2 \(payment_stored of pay_.*\): stored hash differs .* edited \(POS220\)$/,
      ),
    ]);
  });

  it('detects an edited event whose hash was recomputed too, at the next event', () => {
    const { store, path } = populated();
    const raw = rawConnection(path);
    const row = raw.prepare('SELECT * FROM events WHERE seq = 3').get() as {
      payment_id: string;
      type: string;
      at: string;
      prev_hash: Buffer;
    };
    raw.close();
    const forged = eventHash(row.prev_hash, {
      seq: 3,
      paymentId: row.payment_id,
      type: row.type,
      at: '2026-01-01T00:00:00.000Z',
      data: '{}',
    });
    tamper(
      path,
      `UPDATE events SET at = '2026-01-01T00:00:00.000Z', data = '{}', hash = x'${forged.toString('hex')}' WHERE seq = 3`,
      'events_no_update',
    );
    const report = store.verifyChain();
    expect(report.ok ? [] : report.problems).toEqual([
      'event 4: prev_hash is not the hash of the event before it (POS220)',
    ]);
  });

  it('detects a deleted event in the middle', () => {
    const { store, path } = populated();
    tamper(path, 'DELETE FROM events WHERE seq = 4', 'events_no_delete');
    const report = store.verifyChain();
    expect(report.ok ? [] : report.problems).toEqual([
      'events 4–4 are missing before event 5 (POS220)',
      'event 5: prev_hash is not the hash of the event before it (POS220)',
    ]);
  });

  it('detects a deleted last event through the chain head', () => {
    const { store, path } = populated();
    tamper(path, 'DELETE FROM events WHERE seq = 6', 'events_no_delete');
    const report = store.verifyChain();
    expect(report.ok ? [] : report.problems).toEqual([
      expect.stringMatching(/^chain_head names event 6, but the log ends at event 5/),
    ]);
  });

  it('reports at most 100 problems and counts the rest', () => {
    fx = freshStore();
    for (let i = 0; i < 120; i++) fx.store.createPayment(newPayment(`key-${i}`));
    tamper(fx.path, "UPDATE events SET at = '2020-01-01T00:00:00.000Z'", 'events_no_update');
    const report = fx.store.verifyChain();
    const problems = report.ok ? [] : report.problems;
    expect(problems).toHaveLength(101);
    expect(problems[100]).toBe('… and 20 more problems');
  });

  it('keeps working after a detected problem: new events still chain to the head', () => {
    const { store } = populated();
    store.createPayment(newPayment('key-d'));
    expect(store.verifyChain()).toEqual({ ok: true, events: 7 });
  });

  it('detects an edited ack event (an auth code changed in the batch the cloud acknowledged)', () => {
    const { store, path } = populated();
    tamper(
      path,
      "UPDATE ack_events SET data = replace(data, 'OK1234', 'FORGED') WHERE seq = 5",
      'ack_events_no_update',
    );
    const report = store.verifyChain();
    expect(report.ok ? [] : report.problems).toEqual([
      'event 5 (ack event): stored hash differs from the SHA-256 of its content, the row was edited (POS220)',
    ]);
  });

  it('detects a deleted ack event', () => {
    const { store, path } = populated();
    tamper(path, 'DELETE FROM ack_events WHERE seq = 5', 'ack_events_no_delete');
    const report = store.verifyChain();
    expect(report.ok ? [] : report.problems).toEqual([
      'events 5–5 are missing before event 6 (POS220)',
      'event 6: prev_hash is not the hash of the event before it (POS220)',
    ]);
  });
});

describe('chain checkpoints (issue 9 §4)', () => {
  it('start-up walks only the events after the checkpoint and checks the payments they touched', () => {
    const { store, a } = populated();
    const first = store.integrity.verifySinceCheckpoint();
    expect(first).toMatchObject({
      from: null,
      walked: 6,
      chain: { ok: true },
      projection: { ok: true },
    });
    store.integrity.saveCheckpoint(first.head);
    expect(store.integrity.lastCheckpoint()).toMatchObject({ seq: 6, events: 6 });
    store.createPayment(newPayment('key-d')); // 7
    store.applyAcks([{ key: 'key-b', status: 'accepted' }]); // 8
    const next = store.integrity.verifySinceCheckpoint();
    expect(next).toMatchObject({
      from: { seq: 6 },
      walked: 2,
      chain: { ok: true, events: 8 },
      projection: { ok: true, payments: 2 },
      head: { seq: 8, events: 8 },
    });
    expect(store.getPayment(a.id)?.state).toBe('approved');
  });

  it('tampering before the checkpoint is missed by start-up but found by the full check', () => {
    const { store, path } = populated();
    store.integrity.saveCheckpoint(store.integrity.verifySinceCheckpoint().head);
    tamper(
      path,
      'UPDATE events SET data = replace(data, \'"amountMinor":1050\', \'"amountMinor":1\') WHERE seq = 2',
      'events_no_update',
    );
    expect(store.integrity.verifySinceCheckpoint().chain.ok).toBe(true);
    expect(store.verifyChain().ok).toBe(false);
    const full = store.integrity.fullCheck();
    let step = full.step();
    while (!step.done) step = full.step();
    expect(step.chain.ok).toBe(false);
  });

  it('a change after the checkpoint that breaks the projection is found at start-up', () => {
    const { store, path, c } = populated();
    store.integrity.saveCheckpoint(store.integrity.verifySinceCheckpoint().head);
    store.applyAcks([{ key: 'key-c', status: 'accepted', outcome: 'approved', authCode: 'C1' }]);
    tamper(path, `UPDATE payments SET auth_code = 'FORGED' WHERE id = '${c.id}'`);
    const report = store.integrity.verifySinceCheckpoint();
    expect(report.chain.ok).toBe(true);
    expect(report.projection.ok ? [] : report.projection.problems).toEqual([
      `payment ${c.id}: authCode differs from its events (POS221)`,
    ]);
  });
});

describe('checkProjection', () => {
  it('accepts a projection built by the store', () => {
    const { store } = populated();
    expect(store.checkProjection()).toEqual({ ok: true, payments: 5 });
  });

  it('detects a payments row whose state was edited behind the events', () => {
    const { store, path, c } = populated();
    tamper(
      path,
      `UPDATE payments SET state = 'approved' WHERE id = '${c.id}'`,
      'payments_legal_transition',
    );
    const report = store.checkProjection();
    expect(report.ok ? [] : report.problems).toEqual([
      `payment ${c.id}: state differs from its events (state is approved in payments, stored by its events) (POS221)`,
    ]);
  });

  it('detects an edited auth code and an edited amount', () => {
    const { store, path, a, b } = populated();
    tamper(path, `UPDATE payments SET auth_code = 'FORGED' WHERE id = '${a.id}'`);
    tamper(
      path,
      `UPDATE payments SET amount_minor = 1 WHERE id = '${b.id}'`,
      'payments_identity_immutable',
    );
    const report = store.checkProjection();
    const problems = report.ok ? [] : report.problems;
    expect(problems).toHaveLength(2);
    expect(problems.find((p) => p.includes(a.id))).toContain('authCode');
    expect(problems.find((p) => p.includes(b.id))).toContain('amountMinor');
  });
});
