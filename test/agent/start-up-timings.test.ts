/**
 * Issue 9 §4: start-up must not grow with the stored history, and to see which step does, every
 * step's wall and CPU time is kept (agent/start-up.ts `StepTiming`), returned as
 * `RunningAgent.startUp` and summed in the `agent started` log line.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { StartUp } from '../../agent/start-up.js';
import { EmbeddedBroker } from '../../simulator/broker.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('start-up step timings', () => {
  it('StartUp times each step in wall and CPU milliseconds, in order', async () => {
    const steps = new StartUp(createLogger({ level: 'silent' }));
    await steps.step('idle', () => new Promise((resolve) => setTimeout(resolve, 5)));
    const spin = process.cpuUsage();
    await steps.step('busy', () => {
      // Burn CPU until the process's own counter moved by 20 ms.
      while (process.cpuUsage(spin).user < 20_000) Math.sqrt(Math.random());
    });
    const timings = steps.timings();
    expect(timings.map((t) => t.step)).toEqual(['idle', 'busy']);
    expect(timings[0]?.wallMs).toBeGreaterThan(0);
    expect(timings[1]?.cpuMs).toBeGreaterThanOrEqual(20);
    // A copy: the caller cannot rewrite the record.
    timings.pop();
    expect(steps.timings()).toHaveLength(2);
  });

  it('a running agent reports every step it ran and logs the total', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-start-timings-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { terminal } = generateDevelopmentKeys(path.join(dir, 'keys'));
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const logFile = path.join(dir, 'agent.log');
    const agent = await startAgent({
      config: parseConfig({
        deviceId: 'timings-lane-1',
        dataDir: path.join(dir, 'data'),
        keysDir: path.join(dir, 'keys'),
        pinPad: { path: 'mock://absent-pad' },
        broker: { url: broker.url, development: true },
        api: { port: 0 },
      }),
      keys: terminal,
      logger: createLogger({ level: 'info', file: logFile }),
      backgroundCheckDelayMs: 60_000,
    });
    cleanups.push(() => agent.stop());
    const names = agent.startUp.map((t) => t.step);
    expect(names[0]).toBe('data-dir');
    expect(names).toContain('store');
    expect(names).toContain('integrity');
    expect(names.at(-1)).toBe('background-check');
    expect(new Set(names).size).toBe(names.length);
    for (const t of agent.startUp) {
      expect(Number.isFinite(t.wallMs) && t.wallMs >= 0).toBe(true);
      expect(Number.isFinite(t.cpuMs) && t.cpuMs >= 0).toBe(true);
    }
    const started = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"agent started"'))
      .map((l) => JSON.parse(l) as { startUpMs: number; slowestStep: string });
    expect(started).toHaveLength(1);
    expect(started[0]?.startUpMs).toBeGreaterThanOrEqual(0);
    expect(names).toContain(started[0]?.slowestStep);
  });
});
