/**
 * The whole path for real (issue 2's acceptance test): a virtual PIN pad on a real
 * pseudo-terminal (socat), the agent with its SQLite file and local API, Mosquitto as a child
 * process, and the cloud core simulator. 200 payments are taken while the broker is stopped
 * and started again mid-way; afterwards the cloud core holds exactly 200 distinct idempotency
 * keys, the outbox is fully acknowledged, and no card number is found in the database, its WAL,
 * the log, the MQTT traffic or the API answers.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { hasSocat, servePty, type PadServer } from '../../simulator/pad-server.js';
import { findTestCard } from '../../simulator/test-cards.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import {
  filesToSweep,
  sqliteValuesToSweep,
  sweepForPans,
  sweepForSecrets,
  type SweepItem,
  type SweepSecret,
} from '../helpers/leak-sweep.js';
import {
  MOSQUITTO_SKIP_REASON,
  mosquittoAvailable,
  startMosquitto,
  type MosquittoBroker,
} from '../helpers/mosquitto.js';
import { until } from '../helpers/wait.js';

const PAYMENTS = 200;
const STOP_AT = 70;
const START_AT = 140;
const CARDS = [
  'visa',
  'mastercard',
  'amex',
  'discover',
  'jcb',
  'visa-2',
  'mastercard-2',
  'declined',
] as const;

const missing = [
  ...(mosquittoAvailable() === null ? [MOSQUITTO_SKIP_REASON] : []),
  ...(hasSocat()
    ? []
    : ['socat not found: install it (apt-get install socat) to test over a real pseudo-terminal']),
];
if (missing.length > 0)
  console.warn(`[skipped] end-to-end store-and-forward test: ${missing.join('; ')}`);

describe.skipIf(missing.length > 0)(
  'end to end: pty PIN pad → agent → SQLite → Mosquitto → cloud core',
  () => {
    let dir: string;
    let mosquitto: MosquittoBroker;
    let cloudCore: CloudCore;
    let padServer: PadServer;
    let agent: RunningAgent;
    let tap: MqttSession;
    let secrets: SweepSecret[] = [];
    const traffic: SweepItem[] = [];
    const apiAnswers: SweepItem[] = [];
    const pad = new VirtualPinPad();

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'pos-e2e-'));
      const { terminal, cloud } = generateDevelopmentKeys(path.join(dir, 'keys'));
      secrets = [
        { name: 'device signing key', value: terminal.deviceSecretKey },
        { name: 'device signing key seed', value: terminal.deviceSecretKey.subarray(0, 32) },
        { name: 'token key', value: terminal.tokenKey },
        { name: 'API token', value: terminal.apiToken },
        { name: 'vault secret key', value: cloud.vaultSecretKey },
        { name: 'cloud signing key', value: cloud.cloudSecretKey },
      ];
      mosquitto = await startMosquitto();
      cloudCore = await CloudCore.start({
        brokerUrl: mosquitto.url,
        signer: { secretKey: cloud.cloudSecretKey },
        openSealed: (sealed) => openSealedCard(sealed, cloud.vaultSecretKey),
        reconnectPeriodMs: 200,
      });
      cloudCore.registerDevice('e2e-lane-1', terminal.devicePublicKey);
      tap = new MqttSession({
        url: mosquitto.url,
        clientId: 'e2e-tap',
        clean: false,
        reconnectPeriodMs: 200,
      });
      tap.on('message', (topic, payload) =>
        traffic.push({ source: `mqtt ${topic}`, content: Buffer.from(payload) }),
      );
      await tap.subscribe('#');
      tap.connect();
      await tap.whenConnected();
      padServer = await servePty(pad, { dir });
      const config = parseConfig({
        deviceId: 'e2e-lane-1',
        dataDir: path.join(dir, 'data'),
        keysDir: path.join(dir, 'keys'),
        pinPad: { path: padServer.url },
        broker: { url: mosquitto.url, reconnectPeriodMs: 200, development: true },
        sync: { ackTimeoutMs: 1000, maxMessageBytes: 16_384 },
        api: { port: 0 },
      });
      agent = await startAgent({
        config,
        keys: terminal,
        logger: createLogger({ file: path.join(dir, 'agent.log') }),
      });
    }, 60_000);

    afterAll(async () => {
      await agent?.stop();
      await tap?.end();
      await cloudCore?.stop();
      await padServer?.stop();
      await mosquitto?.dispose();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it('takes 200 payments across a broker outage; the cloud holds each key once and nothing leaks', async () => {
      const keys: string[] = [];
      const declinedKeys = new Set<string>();
      const offlineKeys = new Set<string>();
      for (let n = 1; n <= PAYMENTS; n++) {
        // The agent decides online or offline by its link state (issue 3): wait until it saw the change.
        if (n === STOP_AT) {
          await mosquitto.stop();
          await until(() => !agent.worker.online);
        }
        if (n === START_AT) {
          // Online again means both ends are subscribed: the agent's fresh retained status (Mosquitto
          // keeps no retained messages across this restart) has reached the cloud core. Waiting for
          // the agent's link alone let payment #140 time out under load while the cloud core was
          // still reconnecting, and it was stored offline instead of approved online.
          const restartedAt = new Date().toISOString();
          await mosquitto.start();
          await until(
            () =>
              agent.worker.online && (cloudCore.deviceStatus('e2e-lane-1')?.at ?? '') > restartedAt,
          );
        }
        const cardName = CARDS[n % CARDS.length] as string;
        const card = findTestCard(cardName);
        if (card === undefined) throw new Error(cardName);
        pad.presentCard(card, { entryMode: n % 3 === 0 ? 'S' : 'C' });
        const key = `e2e-${n.toString().padStart(4, '0')}-${process.pid}`;
        keys.push(key);
        const amount = 100 + n;
        // The cloud core simulator declines the test card 4000000000000002 and amounts ending in 51.
        if (cardName === 'declined' || amount % 100 === 51) declinedKeys.add(key);
        const response = await fetch(`${agent.apiUrl}/v1/payments`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${agent.apiToken}`,
            'content-type': 'application/json',
            'idempotency-key': key,
          },
          body: JSON.stringify({
            amount,
            currency: ['EUR', 'USD', 'GBP'][n % 3],
            reference: `E2E-${n}`,
          }),
        });
        const text = await response.text();
        apiAnswers.push({ source: `POST /v1/payments #${n}`, content: text });
        expect(response.status, text).toBe(201);
        // Issue 3: online first; while the broker is down, approved offline by policy.
        const outage = n >= STOP_AT && n < START_AT;
        if (outage) offlineKeys.add(key);
        expect(JSON.parse(text)).toMatchObject({
          state: outage ? 'stored' : declinedKeys.has(key) ? 'declined' : 'approved',
          approval: outage ? 'offline' : declinedKeys.has(key) ? null : 'online',
          idempotencyKey: key,
        });
      }
      const status = await fetch(`${agent.apiUrl}/v1/status`, {
        headers: { authorization: `Bearer ${agent.apiToken}` },
      });
      apiAnswers.push({ source: 'GET /v1/status', content: await status.text() });

      const deadline = Date.now() + 60_000;
      while (
        Date.now() < deadline &&
        (agent.store.queueStats().depth > 0 || cloudCore.keys().length < PAYMENTS)
      ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }

      const cloudKeys = cloudCore.keys();
      expect(cloudKeys).toHaveLength(PAYMENTS);
      expect(new Set(cloudKeys)).toEqual(new Set(keys));
      expect(cloudCore.counters().accepted).toBe(PAYMENTS);
      // Every payment but those the issuer declined online has one outbox record.
      const onlineDeclined = keys.filter((k) => declinedKeys.has(k) && !offlineKeys.has(k));
      expect(agent.store.queueStats()).toMatchObject({
        depth: 0,
        pending: 0,
        inFlight: 0,
        dead: 0,
        acked: PAYMENTS - onlineDeclined.length,
      });

      for (const key of keys) {
        const payment = agent.store.getPaymentByKey(key);
        // An offline approval the issuer declines afterwards is reversed (issue 3).
        expect(payment?.state, key).toBe(
          declinedKeys.has(key) ? (offlineKeys.has(key) ? 'reversed' : 'declined') : 'approved',
        );
        const answer = await fetch(`${agent.apiUrl}/v1/payments/${payment?.id}`, {
          headers: { authorization: `Bearer ${agent.apiToken}` },
        });
        apiAnswers.push({
          source: `GET /v1/payments/${payment?.id}`,
          content: await answer.text(),
        });
      }
      expect(agent.store.verifyChain()).toMatchObject({ ok: true });
      expect(agent.store.checkProjection()).toMatchObject({ ok: true });

      // The database and its WAL while the agent runs (closing checkpoints and removes the WAL),
      // the log, every MQTT payload the tap saw and every API answer.
      const db = path.join(dir, 'data', 'agent.db');
      expect(existsSync(`${db}-wal`)).toBe(true);
      const files = [
        ...filesToSweep([db, `${db}-wal`, `${db}-shm`, path.join(dir, 'agent.log')]),
        ...sqliteValuesToSweep(db),
      ];
      expect(traffic.some((t) => t.source.endsWith('/up/records'))).toBe(true);
      expect(readFileSync(path.join(dir, 'agent.log'), 'utf8')).toContain('payment stored');
      expect(sweepForPans([...files, ...traffic, ...apiAnswers])).toEqual([]);
      expect(sweepForSecrets([...files, ...traffic, ...apiAnswers], secrets)).toEqual([]);
    }, 180_000);
  },
);
