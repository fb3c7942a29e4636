/**
 * Test fixtures for cloud-sync: wire records, a Map-based in-memory {@link OutboxSource} that
 * checks the worker's use of it (store-forward's SQLite outbox is tested by its own suite), a
 * poll helper. The clock is test/helpers/fake-clock.ts, started at {@link FIXTURE_NOW}.
 */
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import type { AckResult, OutboxRecord } from '../../cloud-sync/schemas.js';
import type { OutboxSource } from '../../cloud-sync/sync-worker.js';

/** The instant the fixture records are made at; cloud-sync tests start their FakeClock here. */
export const FIXTURE_NOW = '2026-11-21T09:54:21.000Z';

/** A valid wire record; `seq` also drives the key and amount. */
export function makeRecord(seq: number, overrides: Partial<OutboxRecord> = {}): OutboxRecord {
  const key = `0190f3a2-0000-7000-8000-${seq.toString().padStart(12, '0')}`;
  return {
    key,
    seq,
    type: 'payment',
    at: '2026-11-21T09:54:21.000Z',
    payment: {
      id: `pay_${seq}`,
      amountMinor: 1000 + seq * 100,
      currency: 'EUR',
      reference: `order-${seq}`,
      createdAt: '2026-11-21T09:54:20.000Z',
    },
    card: {
      token: 'tok_abcdefghijklmnopqrstuvwxyz234567abcdefgh',
      brand: 'visa',
      first6: '411111',
      last4: '1111',
      expiryMonth: 12,
      expiryYear: 2028,
      entryMode: 'chip',
    },
    sealed: Buffer.alloc(120, seq % 256).toString('base64'),
    chain: createHash('sha256').update(String(seq)).digest('base64url'),
    ...overrides,
  };
}

type State = 'pending' | 'acked' | 'dead';

/**
 * In-memory outbox with the SQLite outbox's contract (test/cloud-sync/outbox-contract.ts runs the
 * same suite against both); it also records the worker's misuse in `violations` (an ack applied
 * to a key that already had one: the worker must apply each key once) so tests can assert there
 * is none.
 */
export class MemoryOutbox implements OutboxSource {
  readonly rows = new Map<
    string,
    { record: OutboxRecord; state: State; result?: AckResult; applied: number }
  >();
  readonly violations: string[] = [];

  constructor(records: OutboxRecord[] = []) {
    for (const record of records) this.add(record);
  }

  /** Adds a pending record (the lifecycle's job in the real store). */
  add(record: OutboxRecord): void {
    this.rows.set(record.key, { record, state: 'pending', applied: 0 });
  }

  /** The `limit` of every nextPending call, in order. */
  readonly limits: number[] = [];

  nextPending(limit: number, afterSeq = 0): OutboxRecord[] {
    this.limits.push(limit);
    return [...this.rows.values()]
      .filter((r) => r.state === 'pending' && r.record.seq > afterSeq)
      .sort((a, b) => a.record.seq - b.record.seq)
      .slice(0, limit)
      .map((r) => r.record);
  }

  applyAcks(results: AckResult[]): void {
    for (const result of results) {
      const row = this.rows.get(result.key);
      if (row === undefined) continue; // an unknown key changes nothing, like the SQLite outbox
      row.applied += 1;
      if (row.applied > 1) this.violations.push(`ack applied twice for ${result.key}`);
      if (row.state === 'acked' || (row.state === 'dead' && result.status === 'rejected')) continue;
      row.state = result.status === 'rejected' ? 'dead' : 'acked';
      row.result = result;
    }
  }

  queueStats(): { depth: number; oldestAt: string | null; dead: number } {
    const open = [...this.rows.values()]
      .filter((r) => r.state === 'pending')
      .sort((a, b) => a.record.seq - b.record.seq);
    return {
      depth: open.length,
      oldestAt: open.length === 0 ? null : (open[0]?.record.at ?? null),
      dead: [...this.rows.values()].filter((r) => r.state === 'dead').length,
    };
  }

  count(state: State): number {
    return [...this.rows.values()].filter((r) => r.state === state).length;
  }
}

/** Polls `condition` every 10 ms until true; throws with `what` after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A fresh Ed25519 key pair. */
export function signingKeys(): nacl.SignKeyPair {
  return nacl.sign.keyPair();
}
