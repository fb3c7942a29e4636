/**
 * An agent on the simulator whose broker link goes through a pausable TCP proxy (issue 10):
 * aedes in-process, the cloud core simulator connected to aedes directly (it stays reachable),
 * the virtual PIN pad over mock://, a fresh data directory (or the one given).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { until } from './wait.js';

/** A running rig; `dispose()` stops everything and removes the temporary directory. */
export interface PartitionRig {
  agent: RunningAgent;
  cloud: CloudCore;
  proxy: TcpProxy;
  pay(key: string, body: Record<string, unknown>): Promise<{ status: number; json: Json }>;
  get(route: string): Promise<{ status: number; text: string }>;
  /** The agent's log file so far. */
  log(): string;
  dispose(): Promise<void>;
}
/** A JSON object. */
export type Json = Record<string, unknown>;

let rigs = 0;

/**
 * Broker ← proxy ← agent; the cloud core talks to the broker directly (it stays reachable).
 *
 * @param broker — overrides of the config's `broker` section (keepaliveSeconds, pingTimeoutMs).
 * @param options.dataDir — the agent's data directory (default: in the temporary directory).
 * @param options.config — overrides of other config sections.
 */
export async function startPartitionRig(
  broker: Json = {},
  options: { dataDir?: string; config?: Json } = {},
): Promise<PartitionRig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-partition-'));
  const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
  const aedes = await EmbeddedBroker.start();
  const proxy = await startTcpProxy({ port: Number(new URL(aedes.url).port) });
  const cloud = await CloudCore.start({
    brokerUrl: aedes.url,
    signer: { secretKey: cloudKeys.cloudSecretKey },
    openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
    reconnectPeriodMs: 100,
  });
  const deviceId = 'partition-lane-1';
  cloud.registerDevice(deviceId, terminal.devicePublicKey);
  const pad = new VirtualPinPad();
  const padServer: PadServer = serveMock(pad, `partition-pad-${process.pid}-${++rigs}`);
  const config = parseConfig({
    deviceId,
    dataDir: options.dataDir ?? path.join(dir, 'data'),
    keysDir: path.join(dir, 'keys'),
    pinPad: { path: padServer.url },
    broker: { url: proxy.url, reconnectPeriodMs: 100, development: true, ...broker },
    sync: { ackTimeoutMs: 1000 },
    api: { port: 0 },
    authorization: { timeoutMs: 1000 },
    ...options.config,
  });
  const agent = await startAgent({
    config,
    keys: terminal,
    logger: createLogger({ level: 'info', file: path.join(dir, 'agent.log') }),
  });
  await until(() => agent.worker.online && cloud.connected, { what: 'agent and cloud online' });
  return {
    agent,
    cloud,
    proxy,
    async pay(key, body) {
      const card = findTestCard('visa');
      if (card === undefined) throw new Error('no visa test card');
      pad.presentCard(card, { entryMode: 'C' });
      const response = await fetch(`${agent.apiUrl}/v1/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${agent.apiToken}`,
          'content-type': 'application/json',
          'idempotency-key': key,
        },
        body: JSON.stringify(body),
      });
      return { status: response.status, json: (await response.json()) as Json };
    },
    async get(route) {
      const response = await fetch(`${agent.apiUrl}${route}`, {
        headers: { authorization: `Bearer ${agent.apiToken}` },
      });
      return { status: response.status, text: await response.text() };
    },
    log: () => readFileSync(path.join(dir, 'agent.log'), 'utf8'),
    async dispose() {
      await agent.stop();
      await cloud.stop();
      await padServer.stop();
      await proxy.close();
      await aedes.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
