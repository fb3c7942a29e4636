/**
 * Issue 11 item 5: agent.db, its -wal and -shm files and agent.log were 0644 (any local user
 * could read tokens, first 6 / last 4 and sealed blobs); `development: true` allowed plaintext
 * mqtt:// to any host, not only loopback.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { serveMock } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('data files are 0600', () => {
  it('agent.db, agent.db-wal, agent.db-shm and agent.log, also when an older version left them 0644', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-modes-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const dataDir = path.join(dir, 'data');
    const logFile = path.join(dir, 'agent.log');
    // What an older version left behind.
    writeFileSync(logFile, '', { mode: 0o644 });
    const { terminal } = generateDevelopmentKeys(path.join(dir, 'keys'));
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const pad = serveMock(new VirtualPinPad(), `modes-pad-${process.pid}`);
    cleanups.push(() => pad.stop());
    const agent = await startAgent({
      config: parseConfig({
        deviceId: 'modes-lane-1',
        dataDir,
        keysDir: path.join(dir, 'keys'),
        pinPad: { path: pad.url },
        broker: { url: broker.url, development: true },
        api: { port: 0 },
      }),
      keys: terminal,
      logger: createLogger({ level: 'info', file: logFile }),
    });
    cleanups.push(() => agent.stop());
    for (const file of ['agent.db', 'agent.db-wal', 'agent.db-shm'])
      expect([file, statSync(path.join(dataDir, file)).mode & 0o777]).toEqual([file, 0o600]);
    expect(statSync(logFile).mode & 0o777).toBe(0o600);
  });
});

describe('plaintext MQTT in development only to loopback', () => {
  const config = (url: string) => ({
    deviceId: 'lane-1',
    dataDir: '/tmp/x',
    keysDir: '/tmp/k',
    pinPad: { path: 'mock://p' },
    broker: { url, development: true },
  });
  it.each([
    'mqtt://127.0.0.1:1883',
    'mqtt://localhost:1883',
    'mqtt://[::1]:1883',
    'mqtt://127.1.2.3',
  ])('accepts %s', (url) => {
    expect(() => parseConfig(config(url))).not.toThrow();
  });
  it.each([
    'mqtt://10.0.0.5:1883',
    'mqtt://broker.store.lan',
    'mqtt://127.0.0.1.evil.example:1883',
  ])('refuses %s (POS501, names the fix)', (url) => {
    expect(() => parseConfig(config(url))).toThrow(/POS501[\s\S]*|only to loopback/);
    let message = '';
    try {
      parseConfig(config(url));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('only to loopback');
  });
});
