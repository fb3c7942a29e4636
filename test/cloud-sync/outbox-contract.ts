/**
 * The outbox contract (`OutboxSource`, cloud-sync/sync-worker.ts) as ONE suite that every
 * implementation runs, the SQLite outbox and the test fakes alike, so that a fake cannot drift
 * from the real thing (the pattern of MQTT.js's `abstractStoreTest`).
 */
import { describe, expect, it } from 'vitest';
import type { OutboxSource } from '../../cloud-sync/sync-worker.js';

/** An outbox under test, holding `keys` (in seq order) as pending records. */
export interface OutboxUnderTest {
  outbox: OutboxSource;
  keys: string[];
  /** Adds one more pending record, returning its key (it sorts after every earlier one). */
  add(): string;
  close(): void;
}

/** Runs the contract against `build(n)`, which makes an outbox with `n` pending records. */
export function outboxContract(name: string, build: (n: number) => OutboxUnderTest): void {
  describe(`outbox contract: ${name}`, () => {
    const withOutbox = (n: number, test: (t: OutboxUnderTest) => void) => () => {
      const t = build(n);
      try {
        test(t);
      } finally {
        t.close();
      }
    };

    it(
      'hands out pending records in seq order, at most `limit`, after `afterSeq`',
      withOutbox(5, ({ outbox, keys }) => {
        const all = outbox.nextPending(10);
        expect(all.map((r) => r.key)).toEqual(keys);
        const seqs = all.map((r) => r.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(outbox.nextPending(2).map((r) => r.key)).toEqual(keys.slice(0, 2));
        expect(outbox.nextPending(10, seqs[2]).map((r) => r.key)).toEqual(keys.slice(3));
        expect(outbox.nextPending(10, seqs[4])).toEqual([]);
      }),
    );

    it(
      'handing out writes nothing: the same records come again (in flight is the caller’s memory)',
      withOutbox(3, ({ outbox, keys }) => {
        outbox.nextPending(10);
        expect(outbox.nextPending(10).map((r) => r.key)).toEqual(keys);
        expect(outbox.queueStats().depth).toBe(3);
      }),
    );

    it(
      'accepted and duplicate acks take records out of the queue; rejected ones go dead',
      withOutbox(4, ({ outbox, keys }) => {
        const [a, b, c] = keys as [string, string, string, string];
        outbox.applyAcks([
          { key: a, status: 'accepted', outcome: 'approved', authCode: 'A1' },
          { key: b, status: 'duplicate' },
          { key: c, status: 'rejected', code: 'E1', reason: 'bad record' },
        ]);
        expect(outbox.nextPending(10).map((r) => r.key)).toEqual(keys.slice(3));
        expect(outbox.queueStats()).toMatchObject({ depth: 1, dead: 1 });
      }),
    );

    it(
      'a repeated ack, an ack for an unknown key and a second rejection change nothing and do not throw',
      withOutbox(2, ({ outbox, keys }) => {
        const [a, b] = keys as [string, string];
        outbox.applyAcks([{ key: a, status: 'accepted' }]);
        outbox.applyAcks([{ key: b, status: 'rejected', code: 'E1' }]);
        const before = outbox.queueStats();
        expect(() =>
          outbox.applyAcks([
            { key: a, status: 'accepted', outcome: 'declined', declineCode: '05' },
            { key: 'no-such-key', status: 'accepted' },
            { key: b, status: 'rejected', code: 'E2' },
          ]),
        ).not.toThrow();
        expect(outbox.queueStats()).toEqual(before);
      }),
    );

    it(
      'queueStats: depth of undelivered records, the oldest one’s time, dead count',
      withOutbox(2, ({ outbox, keys }) => {
        const records = outbox.nextPending(10);
        expect(outbox.queueStats()).toEqual({
          ...outbox.queueStats(),
          depth: 2,
          dead: 0,
          oldestAt: records[0]?.at,
        });
        outbox.applyAcks([{ key: keys[0] as string, status: 'accepted' }]);
        expect(outbox.queueStats()).toMatchObject({ depth: 1, oldestAt: records[1]?.at });
        outbox.applyAcks([{ key: keys[1] as string, status: 'accepted' }]);
        expect(outbox.queueStats()).toMatchObject({ depth: 0, oldestAt: null });
      }),
    );

    it(
      'a record added later has a higher seq than every record handed out before',
      withOutbox(2, ({ outbox, add }) => {
        const last = outbox.nextPending(10).at(-1)?.seq ?? 0;
        const key = add();
        expect(outbox.nextPending(10, last).map((r) => r.key)).toEqual([key]);
      }),
    );
  });
}
