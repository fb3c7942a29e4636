/**
 * A complete agent on the simulator for the payment scenario tests of issue 3: aedes in-process,
 * the cloud core simulator, the virtual PIN pad over mock://, a fresh SQLite file per rig.
 */
import { mkdtempSync, rmSync } from 'node:fs';
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
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { payThroughApi } from '../helpers/pay.js';
import { until } from '../helpers/wait.js';

/** A complete agent on the simulator; `offline` overrides the config's offline section. */
export interface Rig {
  agent: RunningAgent;
  cloud: CloudCore;
  broker: EmbeddedBroker;
  pad: VirtualPinPad;
  pay(
    key: string,
    body: { amount: number; currency: string; offline?: string },
    card?: string,
  ): Promise<{ status: number; json: Record<string, unknown> }>;
  waitFor(condition: () => boolean, timeoutMs?: number): Promise<void>;
  dispose(): Promise<void>;
  /** The device id and its Ed25519 public key (to open the agent's uplink envelopes). */
  deviceId: string;
  devicePublicKey: Uint8Array;
  /**
   * Any request to the local API over HTTP. `token: null` sends no Authorization header;
   * `rawBody` is sent as is (for non-JSON bodies). Every answer's text is kept in `answers`.
   */
  request(
    method: string,
    route: string,
    options?: {
      body?: unknown;
      rawBody?: string;
      headers?: Record<string, string>;
      token?: string | null;
    },
  ): Promise<{ status: number; json: Record<string, unknown>; text: string }>;
  /** The text of every answer `request` got, for the leak sweep. */
  answers: string[];
}

let rigCount = 0;

/** Starts broker, cloud core, virtual pad and agent in a fresh temporary directory. */
export async function startRig(overrides: Record<string, unknown> = {}): Promise<Rig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-late-'));
  const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
  const broker = await EmbeddedBroker.start();
  const cloud = await CloudCore.start({
    brokerUrl: broker.url,
    signer: { secretKey: cloudKeys.cloudSecretKey },
    openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
    reconnectPeriodMs: 100,
  });
  const deviceId = 'late-lane-1';
  cloud.registerDevice(deviceId, terminal.devicePublicKey);
  const pad = new VirtualPinPad();
  const padServer: PadServer = serveMock(pad, `late-pad-${process.pid}-${++rigCount}`);
  const config = parseConfig({
    deviceId,
    dataDir: path.join(dir, 'data'),
    keysDir: path.join(dir, 'keys'),
    pinPad: { path: padServer.url },
    broker: { url: broker.url, reconnectPeriodMs: 100, development: true },
    sync: { ackTimeoutMs: 1000 },
    api: { port: 0 },
    ...overrides,
  });
  const agent = await startAgent({
    config,
    keys: terminal,
    logger: createLogger({ level: 'silent', file: path.join(dir, 'agent.log') }),
  });
  const waitFor = (condition: () => boolean, timeoutMs = 20_000): Promise<void> =>
    until(condition, { timeoutMs, pollMs: 20 });
  await waitFor(() => agent.worker.online && cloud.connected);
  const answers: string[] = [];
  return {
    deviceId,
    devicePublicKey: terminal.devicePublicKey,
    answers,
    async request(method, route, options = {}) {
      const token = options.token === undefined ? agent.apiToken : options.token;
      const headers: Record<string, string> = { ...options.headers };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let body: string | undefined = options.rawBody;
      if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(`${agent.apiUrl}${route}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
      const text = await response.text();
      answers.push(text);
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // not JSON: the caller looks at text
      }
      return { status: response.status, json, text };
    },
    agent,
    cloud,
    broker,
    pad,
    waitFor,
    async pay(key, body, card = 'visa') {
      const { status, json } = await payThroughApi(agent, pad, key, body, card);
      return { status, json };
    },
    async dispose() {
      await agent.stop();
      await cloud.stop();
      await padServer.stop();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
