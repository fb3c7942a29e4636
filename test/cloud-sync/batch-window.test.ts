/**
 * The pure batch window (cloud-sync/batch-window.ts) under fast-check: whatever the interleaving
 * of new records, publishes, acks (partial, duplicated, reordered, late), failed applies,
 * timeouts, disconnects and restarts, every record is applied at most once, and once the link
 * holds and the cloud answers, every record is applied exactly once.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchWindow, type ResendPolicy } from '../../cloud-sync/batch-window.js';
import type { AckResult } from '../../cloud-sync/schemas.js';

const policy: ResendPolicy = {
  ackTimeoutMs: 1000,
  backoffFactor: 2,
  maxBackoffMs: 8000,
  jitterRatio: 0.2,
};

type Op =
  | { op: 'add'; count: number }
  | { op: 'pump'; limit: number }
  | { op: 'answer'; pick: number; part: number; keep: boolean }
  | { op: 'flush'; fail: boolean }
  | { op: 'advance'; ms: number }
  | { op: 'disconnect' }
  | { op: 'connect' }
  | { op: 'restart' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('add'), count: fc.integer({ min: 1, max: 5 }) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant('pump'), limit: fc.integer({ min: 1, max: 4 }) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('answer'),
      pick: fc.nat(),
      part: fc.integer({ min: 0, max: 3 }),
      keep: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('flush'), fail: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance'), ms: fc.integer({ min: 0, max: 9000 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'disconnect' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'connect' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'restart' as const }) },
);

/** The world around the window: an outbox, a lossy network, a cloud that acks, a clock. */
class World {
  now = 1_000_000;
  seq = 0;
  /** Records pending in the outbox, by key → seq. */
  readonly pending = new Map<string, number>();
  readonly applied = new Map<string, number>();
  readonly everyKey: string[] = [];
  /** Messages the broker delivered to the cloud: batch id and keys (the cloud may answer any). */
  readonly wire: { id: string; keys: string[] }[] = [];
  /** Verified acks waiting for the worker's one shared apply. */
  queue: { id: string; results: AckResult[] }[] = [];
  window: BatchWindow<string[]>;
  batchNo = 0;
  maxInFlightSeen = 0;

  constructor(
    readonly maxInFlight: number,
    readonly rate: number | undefined,
  ) {
    this.window = this.#newWindow();
  }

  #newWindow(): BatchWindow<string[]> {
    let r = 0.37;
    return new BatchWindow<string[]>({
      maxInFlight: this.maxInFlight,
      maxPublishesPerSecond: this.rate,
      policy,
      random: () => (r = (r * 7.31) % 1),
      now: this.now,
    });
  }

  add(count: number): void {
    for (let i = 0; i < count; i += 1) {
      this.seq += 1;
      const key = `k${this.seq}`;
      this.pending.set(key, this.seq);
      this.everyKey.push(key);
    }
  }

  pump(limit: number): void {
    for (let guard = 0; guard < 1000; guard += 1) {
      const step = this.window.step(this.now);
      if (step.kind === 'idle' || step.kind === 'wait') return;
      if (step.kind === 'publish') {
        expect(step.resendAt).toBeGreaterThanOrEqual(this.now + policy.ackTimeoutMs);
        this.wire.push({ id: step.id, keys: step.payload });
        continue;
      }
      const records = [...this.pending.entries()]
        .filter(([, seq]) => seq > step.afterSeq)
        .sort((a, b) => a[1] - b[1])
        .slice(0, limit);
      if (records.length === 0) return;
      this.batchNo += 1;
      const keys = records.map(([key]) => key);
      this.window.opened({
        id: `b${this.batchNo}`,
        payload: keys,
        keys,
        maxSeq: Math.max(...records.map(([, seq]) => seq)),
      });
      this.maxInFlightSeen = Math.max(this.maxInFlightSeen, this.window.inFlight);
    }
    throw new Error('the window never settles');
  }

  /** The cloud answers a message it received: the first `part` keys (0 = all). */
  answer(pick: number, part: number, keep: boolean): void {
    if (this.wire.length === 0) return;
    const index = pick % this.wire.length;
    const message = this.wire[index]!;
    if (!keep) this.wire.splice(index, 1);
    const keys = part === 0 ? message.keys : message.keys.slice(0, part);
    const results: AckResult[] = keys.map((key) => ({
      key,
      status: this.applied.has(key) ? 'duplicate' : 'accepted',
    }));
    const fresh = this.window.ack(message.id, results, this.now);
    if (fresh !== undefined) this.queue.push({ id: message.id, results: fresh });
  }

  flush(fail: boolean): void {
    const queued = this.queue;
    this.queue = [];
    if (!fail) {
      for (const { results } of queued) {
        for (const { key } of results) {
          this.applied.set(key, (this.applied.get(key) ?? 0) + 1);
          this.pending.delete(key);
        }
      }
    }
    for (const { id, results } of queued) this.window.settled(id, results, !fail);
  }

  /** The worker stopped and started again: in flight was memory; the outbox is what remains. */
  restart(): void {
    this.queue = [];
    this.window.reset();
    this.window = this.#newWindow();
  }

  run(op: Op): void {
    switch (op.op) {
      case 'add':
        return this.add(op.count);
      case 'pump':
        return this.pump(op.limit);
      case 'answer':
        return this.answer(op.pick, op.part, op.keep);
      case 'flush':
        return this.flush(op.fail);
      case 'advance':
        this.now += op.ms;
        return;
      case 'disconnect':
        return this.window.disconnect();
      case 'connect':
        return this.window.connect();
      case 'restart':
        return this.restart();
    }
  }
}

describe('BatchWindow (pure): every record applied exactly once, whatever the interleaving', () => {
  it('at most once at every point; exactly once when the link holds and the cloud answers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
        fc.array(opArb, { maxLength: 120 }),
        (maxInFlight, rate, ops) => {
          const world = new World(maxInFlight, rate);
          world.window.connect();
          for (const op of ops) {
            world.run(op);
            for (const [key, n] of world.applied) {
              if (n > 1) throw new Error(`${key} applied ${n} times`);
            }
            expect(world.window.inFlight).toBeLessThanOrEqual(maxInFlight);
          }
          // Then the link holds, nothing fails, the cloud answers everything it gets.
          world.window.connect();
          for (let round = 0; round < 500 && world.pending.size > 0; round += 1) {
            world.pump(4);
            while (world.wire.length > 0) world.answer(0, 0, false);
            world.flush(false);
            world.now += 10_000;
          }
          expect(world.pending.size).toBe(0);
          for (const key of world.everyKey) expect(world.applied.get(key)).toBe(1);
          expect(world.maxInFlightSeen).toBeLessThanOrEqual(maxInFlight);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('publishes nothing while disconnected; on connect every batch in flight is due, oldest first', () => {
    const world = new World(3, undefined);
    world.window.connect();
    world.add(6);
    world.pump(2);
    expect(world.wire.map((m) => m.id)).toEqual(['b1', 'b2', 'b3']);
    world.window.disconnect();
    world.now += 60_000;
    world.wire.length = 0;
    world.pump(2);
    expect(world.wire).toEqual([]);
    world.window.connect();
    const steps = [1, 2, 3].map(() => world.window.step(world.now));
    expect(steps.map((s) => (s.kind === 'publish' ? [s.id, s.reason] : s.kind))).toEqual([
      ['b1', 'reconnect'],
      ['b2', 'reconnect'],
      ['b3', 'reconnect'],
    ]);
  });

  it('resends a batch without an ack at its backoff, then twice as late', () => {
    const w = new BatchWindow<string>({
      maxInFlight: 1,
      policy,
      random: () => 0,
      now: 0,
    });
    w.connect();
    expect(w.step(0)).toEqual({ kind: 'fetch', afterSeq: 0 });
    w.opened({ id: 'b', payload: 'p', keys: ['k1'], maxSeq: 1 });
    expect(w.step(0)).toMatchObject({ kind: 'publish', attempt: 1, resendAt: 1000 });
    expect(w.step(999)).toEqual({ kind: 'idle' });
    expect(w.step(1000)).toMatchObject({ kind: 'publish', attempt: 2, reason: 'timeout' });
    expect(w.nextResendAt()).toBe(3000);
    expect(w.ack('b', [{ key: 'k1', status: 'accepted' }], 3000)).toHaveLength(1);
    // A duplicate ack gives nothing more to apply.
    expect(w.ack('b', [{ key: 'k1', status: 'duplicate' }], 3000)).toBeUndefined();
    expect(w.settled('b', [{ key: 'k1', status: 'accepted' }], true)).toBe(true);
    expect(w.inFlight).toBe(0);
    expect(w.ack('b', [{ key: 'k1', status: 'duplicate' }], 3000)).toBeUndefined();
  });

  it('a publish-rate cap holds the next publish back until a token is there', () => {
    const w = new BatchWindow<string>({
      maxInFlight: 10,
      maxPublishesPerSecond: 2,
      policy,
      random: () => 0,
      now: 0,
    });
    w.connect();
    for (const id of ['a', 'b', 'c']) w.opened({ id, payload: id, keys: [id], maxSeq: 1 });
    expect(w.step(0)).toMatchObject({ kind: 'publish', id: 'a' });
    expect(w.step(0)).toMatchObject({ kind: 'publish', id: 'b' });
    expect(w.step(0)).toEqual({ kind: 'wait', until: 500 });
    expect(w.step(500)).toMatchObject({ kind: 'publish', id: 'c' });
  });

  /** Publishes everything due at `now`; returns the batch ids published, in order. */
  const publishDue = (w: BatchWindow<string>, now: number): string[] => {
    const ids: string[] = [];
    for (let step = w.step(now); step.kind === 'publish'; step = w.step(now)) ids.push(step.id);
    return ids;
  };

  const openFour = (): BatchWindow<string> => {
    const w = new BatchWindow<string>({ maxInFlight: 4, policy, random: () => 0, now: 0 });
    w.connect();
    for (const [i, id] of ['b1', 'b2', 'b3', 'b4'].entries()) {
      w.opened({ id, payload: id, keys: [`k${i + 1}`], maxSeq: i + 1 });
      expect(publishDue(w, i)).toEqual([id]);
    }
    return w;
  };

  it('while the cloud is silent only the oldest batch is resent; an outage adds one message per backoff step', () => {
    const w = openFour();
    const published: string[] = [];
    // Ten silent minutes, the worker woken at every resend time it is given.
    for (let now = 3; now <= 600_000;) {
      published.push(...publishDue(w, now));
      now = w.nextResendAt() ?? Number.POSITIVE_INFINITY;
    }
    expect(w.held).toBe(3);
    // b1 at 1 s, 3 s, 7 s, then every 8 s (the cap): no copy of b2–b4 at all.
    expect(new Set(published)).toEqual(new Set(['b1']));
    expect(published.length).toBe(3 + Math.floor((600_000 - 7000) / 8000));
  });

  it('when the cloud answers again, the held batches wait for their queued messages, not for resends', () => {
    const w = openFour();
    for (const now of [1000, 1001, 1002, 1003]) publishDue(w, now);
    expect(w.held).toBe(3);
    // The cloud is back at 100 s and works through its queue: b1's first message first.
    const ok = (k: string): AckResult[] => [{ key: k, status: 'accepted' }];
    const t = 100_000;
    for (const [id, key] of [
      ['b1', 'k1'],
      ['b2', 'k2'],
      ['b3', 'k3'],
      ['b4', 'k4'],
    ] as const) {
      const fresh = w.ack(id, ok(key), t);
      expect(fresh).toHaveLength(1);
      expect(w.settled(id, ok(key), true)).toBe(true);
      // The next oldest becomes the probe, due one ack timeout later: nothing is sent now.
      expect(publishDue(w, t)).toEqual([]);
    }
    expect(w.inFlight).toBe(0);
  });

  it('a held batch the cloud was heard past (its message was lost) is resent one ack timeout later', () => {
    const w = openFour();
    for (const now of [1000, 1001, 1002, 1003]) publishDue(w, now);
    expect(w.held).toBe(3);
    // b3 answered, b2 not: b2 was last published (at 1 ms) before b3's first publish (2 ms).
    const ok: AckResult[] = [{ key: 'k3', status: 'accepted' }];
    expect(w.ack('b3', ok, 5000)).toHaveLength(1);
    w.settled('b3', ok, true);
    expect(w.held).toBe(1); // b4 was first sent after b3: no evidence it is lost
    // b1 (the probe, due at 3 s) goes on; b2 one ack timeout after b3's ack, at 6 s.
    expect(publishDue(w, 5999)).toEqual(['b1']);
    expect(publishDue(w, 6000)).toEqual(['b2']);
  });

  it('a reconnect sends every batch in flight again, held ones too', () => {
    const w = openFour();
    for (const now of [1000, 1001, 1002, 1003]) publishDue(w, now);
    expect(w.held).toBe(3);
    w.disconnect();
    w.connect();
    expect(publishDue(w, 2000)).toEqual(['b1', 'b2', 'b3', 'b4']);
    expect(w.held).toBe(0);
  });
});
