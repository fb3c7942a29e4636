/**
 * Issue 16, step 1: several broker endpoints with failover. Two aedes nodes of one in-process
 * cluster (simulator/broker.ts `joinCluster`: one bus, one persistence); the agent lists both in
 * `broker.urls`, the cloud core both in the other order. Payments are stored offline while the
 * cluster is down, the cluster comes back, and during the drain the agent's node is stopped: the
 * agent fails over to the other node (same client id, same persistent session), the drain
 * finishes there, and payments go on online. The cloud ledger proves the end-to-end
 * acknowledgements make every resend harmless: every key arrived, none was charged twice, and
 * the agent's outbox is empty. `/v1/status`, the metrics and the log show the endpoint in use.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { findTestCard } from '../../simulator/test-cards.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { until } from '../helpers/wait.js';

const OFFLINE = 30;
const ONLINE_AFTER = 10;

describe('broker failover between two cluster nodes (issue 16)', () => {
  let dir: string;
  let nodeA: EmbeddedBroker;
  let nodeB: EmbeddedBroker;
  let cloud: CloudCore;
  let agent: RunningAgent;
  let padServer: PadServer;
  let pad: VirtualPinPad;
  let logFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-failover-'));
    logFile = path.join(dir, 'agent.log');
    const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
    nodeA = await EmbeddedBroker.start();
    nodeB = await EmbeddedBroker.start({ joinCluster: nodeA });
    cloud = await CloudCore.start({
      brokerUrl: nodeB.url,
      brokerUrls: [nodeB.url, nodeA.url],
      signer: { secretKey: cloudKeys.cloudSecretKey },
      openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
      reconnectPeriodMs: 100,
    });
    const deviceId = 'failover-lane-1';
    cloud.registerDevice(deviceId, terminal.devicePublicKey);
    pad = new VirtualPinPad();
    padServer = serveMock(pad, `failover-pad-${process.pid}`);
    const config = parseConfig({
      deviceId,
      dataDir: path.join(dir, 'data'),
      keysDir: path.join(dir, 'keys'),
      pinPad: { path: padServer.url },
      broker: {
        urls: [nodeA.url, nodeB.url],
        reconnectPeriodMs: 100,
        reconnectMaxMs: 400,
        development: true,
      },
      // Small batches and a short ack timeout: the drain takes many round trips, so the node
      // stops in the middle of it, and the batches it swallowed are resent soon.
      sync: { ackTimeoutMs: 1000, maxInFlightBatches: 2, maxMessageBytes: 4096 },
      api: { port: 0 },
      log: { level: 'info', file: logFile },
    });
    agent = await startAgent({
      config,
      keys: terminal,
      logger: createLogger({ level: 'info', file: logFile }),
    });
    await until(() => agent.worker.online && cloud.connected, { what: 'agent and cloud online' });
  }, 30_000);

  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
    await padServer?.stop();
    await nodeB?.stop();
    await nodeA?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const pay = async (key: string, amount: number): Promise<Record<string, unknown>> => {
    const card = findTestCard('visa');
    if (card === undefined) throw new Error('visa test card');
    pad.presentCard(card, { entryMode: 'C' });
    const response = await fetch(`${agent.apiUrl}/v1/payments`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agent.apiToken}`,
        'content-type': 'application/json',
        'idempotency-key': key,
      },
      body: JSON.stringify({ amount, currency: 'EUR' }),
    });
    return (await response.json()) as Record<string, unknown>;
  };

  const status = async (): Promise<{
    link: { state: string; broker: string; endpoints?: string[] };
  }> => {
    const response = await fetch(`${agent.apiUrl}/v1/status`, {
      headers: { authorization: `Bearer ${agent.apiToken}` },
    });
    return (await response.json()) as { link: { state: string; broker: string } };
  };

  it('drains through the other node when the agent’s node stops: 0 lost, 0 charged twice', async () => {
    expect((await status()).link).toMatchObject({
      state: 'online',
      broker: nodeA.url,
      endpoints: [nodeA.url, nodeB.url],
    });

    // The cluster goes down: payments are stored under the offline policy.
    await nodeA.stop();
    await nodeB.stop();
    await until(() => !agent.worker.online, { what: 'agent offline' });
    const keys: string[] = [];
    for (let n = 1; n <= OFFLINE; n++) {
      const key = `failover-${String(n).padStart(3, '0')}`;
      keys.push(key);
      expect(await pay(key, 1000 + n)).toMatchObject({ state: 'stored', approval: 'offline' });
    }
    expect(agent.store.queueStats().depth).toBeGreaterThanOrEqual(OFFLINE);

    // The cluster returns; the agent reconnects (to whichever node its round robin reaches).
    // Acks are held back a little so the drain is still running when the agent's node stops.
    cloud.setFaults({ ackDelayMs: 300 });
    await nodeA.start();
    await nodeB.start();
    await until(() => agent.worker.online && cloud.connected, {
      what: 'agent and cloud back online',
    });
    await until(() => cloud.counters().records > 0, { what: 'the drain to start' });
    expect(agent.store.queueStats().depth).toBeGreaterThan(0);
    const agentNode = agent.status().link.broker === nodeA.url ? nodeA : nodeB;
    const otherNode = agentNode === nodeA ? nodeB : nodeA;
    // The cloud core must stay reachable: move it off the node that stops first, if needed.
    await agentNode.stop();
    await until(() => agent.worker.online && agent.status().link.broker === otherNode.url, {
      what: 'agent failed over to the other node',
    });
    cloud.clearFaults();
    await until(() => cloud.connected, { what: 'cloud core on the surviving node' });
    await until(() => agent.store.queueStats().depth === 0, {
      what: 'the backlog drained through the other node',
    });

    // Payments go on online through the surviving node.
    for (let n = 1; n <= ONLINE_AFTER; n++) {
      const key = `failover-online-${n}`;
      keys.push(key);
      expect(await pay(key, 2000 + n)).toMatchObject({ state: 'approved', approval: 'online' });
    }
    await until(() => agent.store.queueStats().depth === 0, { what: 'online records acked' });

    // The ledger: every key once, every charge once (resends answered `duplicate`).
    const records = cloud.records();
    const lost = keys.filter((k) => !records.has(k));
    expect(lost).toEqual([]);
    expect(cloud.counters().accepted).toBe(keys.length);
    expect(cloud.counters().approved).toBe(keys.length);
    for (const key of keys) expect(records.get(key)).toMatchObject({ status: 'accepted' });
    expect(agent.store.queueStats()).toMatchObject({ depth: 0, dead: 0 });

    // Status, metrics and log name the endpoint in use and count the failover.
    const health = agent.status().link.health;
    if (health === undefined) throw new Error('no link health');
    expect(health.failovers).toBeGreaterThanOrEqual(1);
    expect(health.lastFailover?.to).toBe(otherNode.url);
    expect((await status()).link).toMatchObject({ state: 'online', broker: otherNode.url });
    const metrics = await (
      await fetch(`${agent.apiUrl}/metrics`, {
        headers: { authorization: `Bearer ${agent.apiToken}` },
      })
    ).text();
    expect(metrics).toContain(`pos_agent_link_endpoint{endpoint="${otherNode.url}"} 1`);
    expect(metrics).toContain(`pos_agent_link_endpoint{endpoint="${agentNode.url}"} 0`);
    expect(metrics).toMatch(/pos_agent_link_failovers_total [1-9]/);
    await until(() => readFileSync(logFile, 'utf8').includes('failover'), {
      what: 'the failover in the log',
    });
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain(`"to":"${otherNode.url}"`);
  }, 60_000);
});
