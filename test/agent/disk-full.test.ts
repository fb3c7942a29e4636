/**
 * Disk full (issue 10, fault 5), on a real filesystem that fills up: a small tmpfs mounted for
 * the test. Needs root (mount); otherwise the test says it was skipped and why.
 *
 * Before: a payment on a full disk was `500 POS207 … free disk space`, and when the disk filled
 * with a backlog waiting, forwarding stopped with nothing in the log saying why. Now the payment
 * is 503 POS207 with `Retry-After`, a pause of forwarding is a log line, a status field and a
 * metric, and everything recovers without a restart once space is freed.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPartitionRig, type PartitionRig } from '../helpers/partition-rig.js';
import { until } from '../helpers/wait.js';

let mountPoint: string | undefined;
let skipReason: string | undefined;
let rig: PartitionRig | undefined;

beforeAll(() => {
  if (process.getuid?.() !== 0) {
    skipReason = 'not root: mounting a small tmpfs to fill up needs root';
    return;
  }
  mountPoint = mkdtempSync(path.join(tmpdir(), 'pos-diskfull-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', mountPoint], {
      stdio: 'pipe',
    });
  } catch (error) {
    skipReason = `cannot mount a tmpfs (${(error as Error).message.split('\n')[0]})`;
    rmSync(mountPoint, { recursive: true, force: true });
    mountPoint = undefined;
  }
  if (skipReason !== undefined) console.warn(`[skipped] disk-full test: ${skipReason}`);
});
afterAll(async () => {
  await rig?.dispose();
  if (mountPoint !== undefined) {
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  }
});

/** Writes 64 KiB blocks into `file` until the filesystem refuses (ENOSPC). */
function fill(file: string): void {
  const block = Buffer.alloc(65_536, 1);
  const chunks: Buffer[] = [];
  for (;;) {
    chunks.push(block);
    try {
      writeFileSync(file, Buffer.concat(chunks));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      // Take the last few bytes too: SQLite must not find room for one more page.
      for (let i = 0; ; i++) {
        try {
          writeFileSync(`${file}.${i}`, Buffer.alloc(512, 1));
        } catch {
          return;
        }
      }
    }
  }
}

describe('disk full', () => {
  it('answers 503 POS207 with Retry-After, logs and counts the pause of forwarding, and recovers without a restart', async (context) => {
    if (mountPoint === undefined) {
      context.skip();
      return;
    }
    const dataDir = path.join(mountPoint, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    rig = await startPartitionRig(
      { keepaliveSeconds: 1, pingTimeoutMs: 200 },
      { dataDir, config: { sync: { ackTimeoutMs: 300 } } },
    );
    const r = rig;
    // A backlog: the link is down, three payments are stored offline.
    r.proxy.pause('drop');
    await until(() => !r.agent.worker.online, { what: 'the agent to go offline' });
    for (let i = 1; i <= 3; i++) {
      const stored = await r.pay(`backlog-${i}`, { amount: 500 + i, currency: 'EUR' });
      expect(stored.json).toMatchObject({ state: 'stored' });
    }

    const filler = path.join(mountPoint, 'filler');
    fill(filler);
    const card = await fetch(`${r.agent.apiUrl}/v1/payments`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${r.agent.apiToken}`,
        'content-type': 'application/json',
        'idempotency-key': 'on-full-disk',
      },
      body: JSON.stringify({ amount: 700, currency: 'EUR' }),
    });
    expect(card.status).toBe(503);
    expect(card.headers.get('retry-after')).toBe('30');
    expect(((await card.json()) as { error: { code: string } }).error.code).toBe('POS207');

    // The link comes back while the disk is full: forwarding cannot mark its batch.
    r.proxy.reset();
    r.proxy.resume();
    await until(() => r.agent.status().storage?.forwarding.paused === true, {
      what: 'forwarding to be paused by storage',
    });
    expect(r.log()).toContain('forwarding paused by storage');
    expect((await r.get('/metrics')).text).toContain('pos_agent_forwarding_paused_by_storage 1');
    expect(r.agent.status().queue.depth).toBe(3);

    // Space is freed: forwarding resumes by itself and the backlog drains; payments work again.
    rmSync(filler, { force: true });
    for (let i = 0; ; i++) {
      try {
        rmSync(`${filler}.${i}`);
      } catch {
        break;
      }
    }
    await until(() => r.agent.status().queue.depth === 0, { what: 'the backlog to drain' });
    expect(r.agent.status().storage?.forwarding).toMatchObject({ paused: false, pauses: 1 });
    expect(r.log()).toContain('forwarding resumed');
    for (let i = 1; i <= 3; i++) expect(r.cloud.records().has(`backlog-${i}`)).toBe(true);
    const after = await r.pay('after-space-freed', { amount: 800, currency: 'EUR' });
    expect(after.status).toBe(201);
  });
});
