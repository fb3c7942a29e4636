/**
 * The field tech's read-only commands (issue 12): the config path without `--config`, `verify`
 * and `queue` never creating a database, their `--json` shapes, and `queue --watch` progress
 * with rate and time left (on an injected clock and sleep: no real timers).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  drainProgress,
  formatDuration,
  runQueue,
  type QueueReport,
} from '../../agent/commands/queue.js';
import { runVerify, type VerifyReport } from '../../agent/commands/verify.js';
import { loadConfig } from '../../agent/config.js';
import {
  DEFAULT_CONFIG_FILE,
  describeConfigPath,
  resolveConfigPath,
} from '../../agent/config-path.js';
import { initDev } from '../../agent/service.js';
import { isAgentError } from '../../common/agent-error.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { newPayment } from '../store-forward/helpers.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function terminal(): { configFile: string; db: string; dataDir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-field-'));
  dirs.push(dir);
  initDev(
    {
      dir: path.join(dir, 't'),
      deviceId: 'lane-0009',
      pinpad: 'mock://pad',
      broker: 'mqtt://127.0.0.1:9',
      apiPort: 7420,
    },
    new Writable({ write: (_c, _e, done) => done() }),
  );
  const configFile = path.join(dir, 't', 'config.json');
  const dataDir = loadConfig(configFile).dataDir;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return { configFile, db: path.join(dataDir, 'agent.db'), dataDir };
}

function capture(): { out: Writable; text: () => string } {
  let text = '';
  return {
    out: new Writable({
      write(chunk: Buffer, _e, done) {
        text += chunk.toString();
        done();
      },
    }),
    text: () => text,
  };
}

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (error) {
    if (isAgentError(error)) return error.code;
    throw error;
  }
  throw new Error('expected an AgentError');
}

describe('the config path', () => {
  it('is --config, else POS_AGENT_CONFIG, else /etc/pos-agent/config.json, and says which', () => {
    expect(resolveConfigPath('/tmp/a.json', { POS_AGENT_CONFIG: '/tmp/b.json' })).toEqual({
      file: '/tmp/a.json',
      source: 'flag',
    });
    const env = resolveConfigPath(undefined, { POS_AGENT_CONFIG: '/tmp/b.json' });
    expect(env).toEqual({ file: '/tmp/b.json', source: 'env' });
    expect(describeConfigPath(env)).toBe('config /tmp/b.json (from POS_AGENT_CONFIG)');
    const def = resolveConfigPath(undefined, { POS_AGENT_CONFIG: '' });
    expect(def).toEqual({ file: DEFAULT_CONFIG_FILE, source: 'default' });
    expect(DEFAULT_CONFIG_FILE).toBe('/etc/pos-agent/config.json');
    expect(describeConfigPath(def)).toMatch(/the default; --config FILE or POS_AGENT_CONFIG/);
    expect(describeConfigPath({ file: '/x', source: 'flag' })).toBeUndefined();
  });
});

describe('read-only commands on a terminal without a database', () => {
  it('verify and queue fail with POS201 and create nothing; queue --retry too', async () => {
    const { configFile, dataDir } = terminal();
    expect(readdirSync(dataDir)).toEqual([]);
    const { out } = capture();
    expect(await codeOf(() => runVerify(configFile, out))).toBe('POS201');
    for (const retry of [false, true])
      expect(await codeOf(() => runQueue({ config: configFile, retry, watch: false, out }))).toBe(
        'POS201',
      );
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

describe('--json', () => {
  it('verify prints a stable object', async () => {
    const { configFile, db } = terminal();
    const store = PaymentStore.open({ path: db });
    store.createPayment(newPayment('key-v-1'));
    store.close();
    const { out, text } = capture();
    expect(runVerify(configFile, out, { json: true })).toBe(0);
    const report = JSON.parse(text()) as VerifyReport;
    expect(report).toEqual({
      version: 1,
      config: configFile,
      ok: true,
      chain: { ok: true, events: 1, problems: [] },
      projection: { ok: true, payments: 1, problems: [] },
    });
  });

  it('queue prints depth, exposure and dead records; --retry requeues them', async () => {
    const { configFile, db } = terminal();
    const store = PaymentStore.open({ path: db });
    store.createPayment(newPayment('key-q-1'));
    store.createPayment(newPayment('key-q-2', { amountMinor: 2000 }));
    store.applyAcks([{ key: 'key-q-2', status: 'rejected', code: 'E1', reason: 'bad merchant' }]);
    store.close();
    const now = (): number => Date.parse('2030-01-01T00:00:00Z');
    const first = capture();
    expect(
      await runQueue({
        config: configFile,
        retry: false,
        watch: false,
        json: true,
        out: first.out,
        now,
      }),
    ).toBe(1);
    const report = JSON.parse(first.text()) as QueueReport;
    expect(report).toMatchObject({
      version: 1,
      config: configFile,
      requeued: 0,
      queue: { depth: 1, pending: 1, inFlight: 0, acked: 0, dead: 1 },
      dead: [{ key: 'key-q-2', attempts: expect.any(Number), type: 'payment' }],
    });
    expect(report.dead[0]?.reason).toContain('bad merchant');
    expect(report.queue.oldestAgeSeconds).toBeGreaterThan(0);
    expect(report.offlineExposure).toHaveProperty('byCurrency');

    const retried = capture();
    expect(
      await runQueue({
        config: configFile,
        retry: true,
        watch: false,
        json: true,
        out: retried.out,
        now,
      }),
    ).toBe(0);
    expect(JSON.parse(retried.text())).toMatchObject({ requeued: 1, queue: { depth: 2, dead: 0 } });
  });
});

describe('queue --watch', () => {
  it('computes rate and time left from what drained', () => {
    expect(drainProgress(100, 100, 0, 1000)).toEqual({
      depth: 100,
      acked: 0,
      ratePerSecond: null,
      secondsLeft: null,
    });
    expect(drainProgress(100, 60, 40, 2000)).toEqual({
      depth: 60,
      acked: 40,
      ratePerSecond: 20,
      secondsLeft: 3,
    });
    expect(formatDuration(null)).toBe('unknown');
    expect(formatDuration(3)).toBe('3 s');
    expect(formatDuration(200)).toBe('3 min 20 s');
    expect(formatDuration(3900)).toBe('1 h 05 min');
  });

  it('prints progress with rate and time left until the backlog has drained', async () => {
    const { configFile, db } = terminal();
    const writer = PaymentStore.open({ path: db });
    const keys = Array.from({ length: 4 }, (_, i) => `key-w-${i}`);
    for (const key of keys) writer.createPayment(newPayment(key));
    let clock = Date.parse('2030-01-01T00:00:00Z');
    // Each "second" the cloud acknowledges one record (as a running agent's sync would).
    const sleep = async (ms: number): Promise<void> => {
      clock += ms;
      const key = keys.shift();
      if (key === undefined) return;
      writer.applyAcks([{ key, status: 'accepted' }]);
    };
    const { out, text } = capture();
    try {
      await runQueue({
        config: configFile,
        retry: false,
        watch: true,
        out,
        now: () => clock,
        sleep,
      });
    } finally {
      writer.close();
    }
    const lines = text().split('\n');
    expect(lines).toContain('  draining: 3 left, 1 acknowledged, 1/s, 3 s left');
    expect(lines).toContain('  draining: 0 left, 4 acknowledged, 1/s, 0 s left');
    expect(lines).toContain('drained');
    expect(existsSync(db)).toBe(true);
  });
});
