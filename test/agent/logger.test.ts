/**
 * Where `pos-agent run` logs (issue 12): JSON lines on standard output for journald under
 * systemd, a size-rotated file (pino-roll) otherwise; the PAN redaction guard on both.
 */
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chooseLogTarget, createServiceLogger } from '../../agent/logger.js';
import { until } from '../helpers/wait.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});
const freshDir = (): string => {
  const d = mkdtempSync(path.join(tmpdir(), 'pos-log-'));
  dirs.push(d);
  return d;
};

describe('chooseLogTarget', () => {
  it('picks journald under systemd even when a file is configured, else the file, else stdout', () => {
    expect(chooseLogTarget('/var/log/x.log', { INVOCATION_ID: 'abc' }).kind).toBe('journald');
    expect(chooseLogTarget(undefined, { JOURNAL_STREAM: '8:1234' }).kind).toBe('journald');
    expect(chooseLogTarget('/var/log/x.log', { INVOCATION_ID: '' })).toEqual({
      kind: 'file',
      file: '/var/log/x.log',
    });
    expect(chooseLogTarget(undefined, {}).kind).toBe('stdout');
  });
});

describe('createServiceLogger', () => {
  it('under systemd writes JSON lines to stdout, says so, redacts PANs, and creates no file', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'agent.log');
    const lines: string[] = [];
    const { logger, target, close } = await createServiceLogger(
      { level: 'info', file, rotateBytes: 4096, keepFiles: 2 },
      { env: { INVOCATION_ID: 'x' }, stdout: { write: (line: string) => void lines.push(line) } },
    );
    logger.info({ paymentId: 'pay_1' }, 'card 4111111111111111 read');
    // A double whose 19 fraction digits pass Luhn: masked, and the line still parses.
    logger.info({ waitSeconds: 0.0003530443678222592 }, 'timed');
    await close();
    expect(target.kind).toBe('journald');
    expect(JSON.parse(lines[2] ?? '')).toMatchObject({ waitSeconds: '0.000353*********2592' });
    const parsed = lines.map((l) => JSON.parse(l) as { msg: string; paymentId?: string });
    expect(parsed[0]?.msg).toMatch(/journald.*INVOCATION_ID.*is not used/);
    expect(parsed[1]?.paymentId).toBe('pay_1');
    expect(lines.join('')).not.toContain('4111111111111111');
    expect(lines.join('')).toContain('411111******1111');
    expect(existsSync(file)).toBe(false);
  });

  it('rotates the file by size, keeps keepFiles old ones, and redacts PANs there too', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'logs', 'agent.log');
    const { logger, target, close } = await createServiceLogger(
      { level: 'info', file, rotateBytes: 4096, keepFiles: 2 },
      { env: {} },
    );
    expect(target).toEqual({ kind: 'file', file });
    // As a running agent does: lines over time, not all in one write. Each batch is waited for
    // in the file in use (pino-roll rotates when a write completes with nothing queued).
    for (let i = 0; i < 300; i++) {
      logger.info({ i }, `line ${i} of the rotation test, card 4111111111111111`);
      if (i % 10 === 9) {
        const want = `"i":${i},`;
        const reached = (): boolean =>
          readdirSync(path.join(dir, 'logs'))
            .filter((f) => f !== 'current.log')
            .some((f) => readFileSync(path.join(dir, 'logs', f), 'utf8').includes(want));
        await until(reached, { what: `line ${i} in the log` });
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await close();
    const files = readdirSync(path.join(dir, 'logs')).sort();
    const numbered = files.filter((f) => /^agent\.\d+\.log$/.test(f));
    // 300 lines of ~150 bytes are ~45 KB: many rotations, but only 2 + the current one kept.
    expect(numbered.length).toBe(3);
    expect(lstatSync(path.join(dir, 'logs', 'current.log')).isSymbolicLink()).toBe(true);
    const text = numbered.map((f) => readFileSync(path.join(dir, 'logs', f), 'utf8')).join('');
    for (const f of numbered)
      expect(statSync(path.join(dir, 'logs', f)).size).toBeLessThan(4096 + 4096);
    expect(text).toContain('"i":299');
    expect(text).not.toContain('4111111111111111');
  });
});
