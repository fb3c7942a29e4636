/**
 * Regression: a PIN pad that is absent when the agent starts (ser2net not up yet, cable
 * unplugged) used to stay "disconnected" until a restart; the agent now keeps trying with backoff.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { serveTcp, type PadServer } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { freePort } from '../helpers/free-port.js';
import { until } from '../helpers/wait.js';

describe('PIN pad absent at start-up', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  });

  it('starts the agent anyway, answers POS430, and connects once the pad appears', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-pad-startup-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { terminal } = generateDevelopmentKeys(path.join(dir, 'keys'));
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const padPort = await freePort();
    const config = parseConfig({
      deviceId: 'startup-lane-1',
      dataDir: path.join(dir, 'data'),
      keysDir: path.join(dir, 'keys'),
      pinPad: { path: `tcp://127.0.0.1:${padPort}` },
      broker: { url: broker.url, development: true },
      api: { port: 0 },
    });
    const agent: RunningAgent = await startAgent({
      config,
      keys: terminal,
      logger: createLogger({ file: path.join(dir, 'agent.log') }),
      // The production backoff (0.5 s doubling to 30 s) made this test wait up to 16 s for the
      // next attempt; the retry itself is what is tested, so its waits are short here.
      pinPadOpenRetry: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    cleanups.push(() => agent.stop());

    expect(agent.status().devices[0]).toMatchObject({ name: 'pinPad', state: 'disconnected' });
    // force_offline: no cloud core runs here, so an online attempt would wait out the
    // authorization timeout (15 s) before the offline policy answers.
    const pay = (key: string) =>
      fetch(`${agent.apiUrl}/v1/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${agent.apiToken}`,
          'content-type': 'application/json',
          'idempotency-key': key,
        },
        body: JSON.stringify({ amount: 1000, currency: 'EUR', offline: 'force_offline' }),
      });
    const refused = await pay('startup-key-0001');
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('POS430');

    const pad = new VirtualPinPad({ autoPresent: 'visa' });
    const server: PadServer = await serveTcp(pad, { port: padPort });
    cleanups.splice(1, 0, () => server.stop());
    await until(() => agent.status().devices[0]?.state === 'connected', {
      what: 'the agent to open the PIN pad once it appears',
      timeoutMs: 15_000,
    });
    const taken = await pay('startup-key-0002');
    expect(taken.status).toBe(201);
    expect(await taken.json()).toMatchObject({ state: 'stored', approval: 'offline' });
  }, 30_000);
});
