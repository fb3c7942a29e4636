/**
 * The fleet simulator (issue 16, agent/fleet-sim.ts): terminals with their own identity, store
 * and session, on a 2-node in-process aedes cluster, a burst of payments each, one node stopped
 * during the drain; every approved key reaches the cloud ledger once. And the command's option
 * errors (POS501).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { simFleet } from '../../agent/commands/sim-fleet.js';
import { startFleet } from '../../agent/fleet-sim.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { until } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('fleet simulator', () => {
  it('runs terminals with their own identities on a broker list; a node lost during the drain loses nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-fleet-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const a = await EmbeddedBroker.start();
    const b = await EmbeddedBroker.start({ joinCluster: a });
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    const cloudKeys = nacl.sign.keyPair();
    const fleet = await startFleet({
      terminals: 4,
      brokerUrls: [a.url, b.url],
      dir: path.join(dir, 'terminals'),
      cloudPublicKey: cloudKeys.publicKey,
      vaultPublicKey: nacl.box.keyPair().publicKey,
      paymentsPerSecond: 0,
      ackTimeoutMs: 500,
      reconnectPeriodMs: 100,
      reconnectMaxMs: 300,
    });
    cleanups.push(() => fleet.stop());
    expect(fleet.devices.size).toBe(4);
    expect(
      new Set([...fleet.devices.values()].map((k) => Buffer.from(k).toString('hex'))).size,
    ).toBe(4);
    // Spread over the nodes: terminals 0 and 2 on a, 1 and 3 on b.
    expect(fleet.terminals().map((t) => t.endpoint)).toEqual([a.url, b.url, a.url, b.url]);
    const cloud = await CloudCore.start({
      brokerUrl: b.url,
      brokerUrls: [b.url, a.url],
      signer: { secretKey: cloudKeys.secretKey },
      ledgerFile: path.join(dir, 'ledger.db'),
      reconnectPeriodMs: 100,
      connectTimeoutMs: 0,
    });
    cleanups.push(() => cloud.stop());
    for (const [id, key] of fleet.devices) cloud.registerDevice(id, key);
    await cloud.whenConnected();
    cloud.setFaults({ ackDelayMs: 200 });
    fleet.burst(5);
    await until(() => cloud.counters().records > 0, { what: 'the drain to start' });
    await a.stop();
    cloud.clearFaults();
    await until(() => fleet.figures().backlog === 0 && fleet.figures().online === 4, {
      what: 'the fleet drained and back online',
    });
    const figures = fleet.figures();
    expect(figures).toMatchObject({ terminals: 4, online: 4, payments: 20, acked: 20 });
    expect(figures.failovers).toBeGreaterThanOrEqual(2);
    // Each terminal published its batches; the fleet figure is the sum of its terminals'.
    expect(fleet.terminals().every((t) => t.publishes >= 1 && t.resends < t.publishes)).toBe(true);
    expect(figures.publishes).toBe(fleet.terminals().reduce((n, t) => n + t.publishes, 0));
    expect(fleet.terminals().every((t) => t.endpoint === b.url)).toBe(true);
    const ledger = cloud.records();
    expect(fleet.keys.filter((k) => !ledger.has(k))).toEqual([]);
    expect(cloud.counters().accepted).toBe(20);
  }, 30_000);

  it('refuses bad options with POS501 naming the fix', async () => {
    const out = { write: () => true } as unknown as NodeJS.WritableStream;
    const base = { terminals: 2, rate: 0.1, duration: 1, every: 1 };
    await expect(simFleet({ ...base, terminals: 0 }, out)).rejects.toMatchObject({
      code: 'POS501',
      message: expect.stringMatching(/--terminals must be a whole number 1–5000/),
    });
    await expect(simFleet({ ...base, broker: 'http://x' }, out)).rejects.toMatchObject({
      code: 'POS501',
      message: expect.stringMatching(/--broker http:\/\/x is not mqtt/),
    });
    await expect(simFleet({ ...base, keepalive: 0 }, out)).rejects.toMatchObject({
      code: 'POS501',
      message: expect.stringMatching(/--keepalive must be whole seconds 1–1200/),
    });
    await expect(simFleet({ ...base, pingTimeout: 5 }, out)).rejects.toMatchObject({
      code: 'POS501',
      message: expect.stringMatching(/--ping-timeout must be whole milliseconds/),
    });
  });
});
