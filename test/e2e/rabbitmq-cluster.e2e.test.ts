/**
 * Issue 16, step 2: a real broker cluster. Three RabbitMQ 3.10 nodes on loopback
 * (deploy/rabbitmq-cluster.sh: rabbitmq_mqtt, quorum session queues); the agent and the cloud
 * core both list the three nodes and start on node 1. A backlog builds up (the cloud drops its
 * acks for a while), the drain starts, and node 1 is killed (SIGKILL) in the middle of it: the
 * agent and the cloud core fail over to another node with the same client ids and persistent
 * sessions, the drain finishes, and the cloud ledger shows every key once and no key charged
 * twice. The failover (loss of the link to the CONNACK on the next node) takes under 10 s.
 *
 * Skips with the reason when rabbitmq-server is not installed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { findTestCard } from '../../simulator/test-cards.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import {
  RABBITMQ_SKIP_REASON,
  rabbitmqAvailable,
  startRabbitCluster,
  type RabbitCluster,
} from '../../simulator/rabbitmq-cluster.js';
import { until } from '../helpers/wait.js';

const available = rabbitmqAvailable();
if (!available) console.warn(`skipped: ${RABBITMQ_SKIP_REASON}`);

const PAYMENTS = 40;

describe.skipIf(!available)('RabbitMQ 3-node cluster: a node killed during a drain', () => {
  let cluster: RabbitCluster;
  let dir: string;
  let cloud: CloudCore;
  let agent: RunningAgent;
  let padServer: PadServer;
  let pad: VirtualPinPad;

  beforeAll(async () => {
    cluster = await startRabbitCluster();
    dir = mkdtempSync(path.join(tmpdir(), 'pos-rmq-failover-'));
    const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
    cloud = await CloudCore.start({
      brokerUrl: cluster.urls[0] ?? '',
      brokerUrls: cluster.urls,
      clientId: 'cloud-core-rmq',
      signer: { secretKey: cloudKeys.cloudSecretKey },
      openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
      reconnectPeriodMs: 200,
      connectTimeoutMs: 30_000,
    });
    const deviceId = 'rmq-lane-1';
    cloud.registerDevice(deviceId, terminal.devicePublicKey);
    pad = new VirtualPinPad();
    padServer = serveMock(pad, `rmq-pad-${process.pid}`);
    agent = await startAgent({
      config: parseConfig({
        deviceId,
        dataDir: path.join(dir, 'data'),
        keysDir: path.join(dir, 'keys'),
        pinPad: { path: padServer.url },
        broker: {
          urls: cluster.urls,
          reconnectPeriodMs: 200,
          reconnectMaxMs: 1000,
          development: true,
        },
        sync: { ackTimeoutMs: 1000, maxInFlightBatches: 2, maxMessageBytes: 4096 },
        api: { port: 0 },
      }),
      keys: terminal,
      logger: createLogger({ level: 'silent', file: path.join(dir, 'agent.log') }),
    });
    await until(() => agent.worker.online && cloud.connected, {
      what: 'agent and cloud core online on the cluster',
      timeoutMs: 30_000,
    });
  }, 300_000);

  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
    await padServer?.stop();
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

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
      body: JSON.stringify({ amount, currency: 'EUR', offline: 'force_offline' }),
    });
    return (await response.json()) as Record<string, unknown>;
  };

  it('fails over within 10 s, drains on the surviving nodes: 0 lost, 0 charged twice', async () => {
    expect(agent.status().link.broker).toBe(cluster.urls[0]);
    // A backlog: the cloud takes the records but its acks are lost for a while.
    cloud.setFaults({ dropAcks: true });
    const keys: string[] = [];
    for (let n = 1; n <= PAYMENTS; n++) {
      const key = `rmq-drain-${String(n).padStart(3, '0')}`;
      keys.push(key);
      expect(await pay(key, 1000 + n)).toMatchObject({ state: 'stored', approval: 'offline' });
    }
    // The drain: acks flow again, slowly, and node 1 dies in the middle of it.
    cloud.setFaults({ dropAcks: false, ackDelayMs: 200 });
    await until(() => agent.store.queueStats().acked > 0, { what: 'the drain to start' });
    expect(agent.store.queueStats().depth).toBeGreaterThan(0);
    await cluster.kill(1);
    await until(() => agent.worker.online && agent.status().link.broker !== cluster.urls[0], {
      what: 'the agent on another node',
      timeoutMs: 30_000,
    });
    cloud.clearFaults();
    await until(() => cloud.connected, { what: 'the cloud core on another node' });
    await until(() => agent.store.queueStats().depth === 0, {
      what: 'the backlog drained',
      timeoutMs: 60_000,
    });

    const records = cloud.records();
    expect(keys.filter((k) => !records.has(k))).toEqual([]);
    expect(cloud.counters().accepted).toBe(keys.length);
    expect(cloud.counters().approved).toBe(keys.length);
    expect(agent.store.queueStats()).toMatchObject({ depth: 0, dead: 0 });
    const health = agent.status().link.health;
    expect(health?.failovers).toBeGreaterThanOrEqual(1);
    // Done when: failover within 10 s (link lost → CONNACK on the next node).
    expect(health?.lastFailover?.downForMs).toBeLessThan(10_000);
    console.log(
      `rabbitmq failover: ${health?.lastFailover?.from} -> ${health?.lastFailover?.to} in ${health?.lastFailover?.downForMs} ms; cloud duplicates ${cloud.counters().duplicates}`,
    );
  }, 120_000);
});
