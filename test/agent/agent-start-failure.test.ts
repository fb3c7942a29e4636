/**
 * Regression: when a later start-up step failed (the API port already in use), startAgent threw
 * but left the store open, the MQTT client connected, the sync worker's timers and the PIN pad
 * open — so `pos-agent run` printed the error and then never exited. Each step now registers its
 * undo and a failed start unwinds them.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent } from '../../agent/agent.js';
import { type Clock, systemClock, type TimerHandle } from '../../common/clock.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { serveMock } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('startAgent failing late', () => {
  it('rejects when the API port is taken and leaves no broker connection, open PIN pad or open database', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-start-fail-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { terminal } = generateDevelopmentKeys(path.join(dir, 'keys'));
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const pad = new VirtualPinPad();
    const padServer = serveMock(pad, `start-fail-${process.pid}`);
    cleanups.push(() => padServer.stop());
    // Another process holds the API port.
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => squatter.close(resolve)));
    const port = (squatter.address() as { port: number }).port;
    const dataDir = path.join(dir, 'data');
    const config = parseConfig({
      deviceId: 'start-fail-lane-1',
      dataDir,
      keysDir: path.join(dir, 'keys'),
      pinPad: { path: padServer.url },
      broker: { url: broker.url, reconnectPeriodMs: 100, development: true },
      api: { host: '127.0.0.1', port },
    });
    // The broker connection and the PIN pad are up before the API step fails.
    const attached = new Promise<void>((resolve) => pad.once('attached', () => resolve()));
    // The MQTT connection may or may not be up when the API step fails; when the broker saw it,
    // it must also see it go (without the unwind the client stays and this never resolves).
    let brokerSawAgent = false;
    broker.aedes?.on('client', (client) => {
      if (client.id === 'start-fail-lane-1') brokerSawAgent = true;
    });
    const brokerSawDisconnect = new Promise<void>((resolve) =>
      broker.aedes?.on('clientDisconnect', (client) => {
        if (client.id === 'start-fail-lane-1') resolve();
      }),
    );
    // Every timer the agent sets goes through its injected clock: count those still pending.
    const pending = new Set<TimerHandle>();
    const clock: Clock = {
      now: () => systemClock.now(),
      setTimeout(callback, delayMs) {
        const handle = systemClock.setTimeout(() => {
          pending.delete(handle);
          callback();
        }, delayMs);
        pending.add(handle);
        return handle;
      },
      clearTimeout(handle) {
        pending.delete(handle);
        systemClock.clearTimeout(handle);
      },
    };

    await expect(
      startAgent({
        config,
        keys: terminal,
        logger: createLogger({ level: 'silent', file: path.join(dir, 'agent.log') }),
        clock,
      }),
    ).rejects.toThrow(/EADDRINUSE/);
    await attached;

    // No retention, sync worker, PIN pad link or reconnect timer is left behind.
    expect(pending.size).toBe(0);
    if (brokerSawAgent) await brokerSawDisconnect;
    // The PIN pad transport was closed.
    expect(pad.connected).toBe(false);
    // The database was closed: the last connection's close checkpoints and removes the WAL file.
    expect(existsSync(path.join(dataDir, 'agent.db'))).toBe(true);
    expect(existsSync(path.join(dataDir, 'agent.db-wal'))).toBe(false);
    const reopened = PaymentStore.open({ path: path.join(dataDir, 'agent.db') });
    reopened.close();
  }, 30_000);
});
