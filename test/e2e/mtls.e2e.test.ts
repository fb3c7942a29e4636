/**
 * Issue 5's acceptance test: a terminal provisioned non-interactively talks to Mosquitto over
 * mutual TLS (`require_certificate true`, `use_identity_as_username true`, an ACL limiting each
 * identity to `pos/v1/<its CN>/#`), payments flow through the agent to the cloud core, and a
 * second device's certificate can neither read nor write the first device's topics. A leak sweep
 * over the database and WAL, the log, the MQTT traffic and the API answers finds no card number
 * and no private key material.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { provision } from '../../agent/commands/provision.js';
import { loadConfig } from '../../agent/config.js';
import { loadTerminalKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { StatusSchema, topics } from '../../cloud-sync/schemas.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { findTestCard } from '../../simulator/test-cards.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import {
  createTestCa,
  opensslAvailable,
  OPENSSL_SKIP_REASON,
  type TestCa,
} from '../helpers/certs.js';
import {
  filesToSweep,
  sqliteValuesToSweep,
  sweepForPans,
  sweepForSecrets,
  type SweepItem,
} from '../helpers/leak-sweep.js';
import { mosquittoAvailable, MOSQUITTO_SKIP_REASON } from '../helpers/mosquitto.js';
import { startTlsMosquitto, type TlsMosquitto } from '../helpers/mosquitto-tls.js';

const missing = [
  ...(mosquittoAvailable() === null ? [MOSQUITTO_SKIP_REASON] : []),
  ...(opensslAvailable() ? [] : [OPENSSL_SKIP_REASON]),
];
if (missing.length > 0) console.warn(`[skipped] mutual TLS end-to-end test: ${missing.join('; ')}`);

const PAYMENTS = 12;
const DEVICE = 'mtls-lane-1';
const OTHER = 'mtls-lane-2';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(missing.length > 0)('end to end over mutual TLS with per-device ACLs', () => {
  let dir: string;
  let ca: TestCa;
  let broker: TlsMosquitto;
  let cloudCore: CloudCore;
  let padServer: PadServer;
  let agent: RunningAgent;
  let configFile: string;
  /** The cloud side's view: subscribed to every device's topics on the back-end listener. */
  let tap: MqttSession;
  const traffic: SweepItem[] = [];
  const apiAnswers: SweepItem[] = [];
  const sessions: MqttSession[] = [];
  const pad = new VirtualPinPad();
  const tokenKey = Buffer.from(nacl.randomBytes(32));

  /** An MQTT session over TLS with the given client certificate. */
  const tlsSession = (clientId: string, cert: { cert: string; key: string }): MqttSession => {
    const session = new MqttSession({
      url: broker.tlsUrl,
      clientId,
      clean: true,
      reconnectPeriodMs: 200,
      tls: {
        ca: readFileSync(ca.cert),
        cert: readFileSync(cert.cert),
        key: readFileSync(cert.key),
      },
    });
    sessions.push(session);
    return session;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-mtls-'));
    ca = createTestCa(dir);
    broker = await startTlsMosquitto(ca);
    const deviceCert = ca.issue(DEVICE);
    const cloud = nacl.sign.keyPair();
    const vault = nacl.box.keyPair();
    writeFileSync(path.join(dir, 'cloud.pub'), Buffer.from(cloud.publicKey).toString('base64'));
    writeFileSync(path.join(dir, 'vault.pub'), Buffer.from(vault.publicKey).toString('base64'));
    writeFileSync(path.join(dir, 'token.key'), tokenKey.toString('base64'));
    padServer = serveMock(pad, 'mtls-pad');
    const result = provision({
      dir: path.join(dir, 'terminal'),
      deviceId: DEVICE,
      tenant: 'acme',
      store: 'store-42',
      broker: broker.tlsUrl,
      pinPad: padServer.url,
      caFile: ca.cert,
      certFile: deviceCert.cert,
      keyFile: deviceCert.key,
      cloudKeyFile: path.join(dir, 'cloud.pub'),
      vaultKeyFile: path.join(dir, 'vault.pub'),
      tokenKeyFile: path.join(dir, 'token.key'),
      apiPort: 0,
    });
    configFile = result.configFile;
    const config = loadConfig(configFile);
    const keys = loadTerminalKeys(config.keysDir);

    cloudCore = await CloudCore.start({
      brokerUrl: broker.cloudUrl,
      clientId: 'cloud-core',
      signer: { secretKey: cloud.secretKey },
      openSealed: (sealed) => openSealedCard(sealed, vault.secretKey),
      reconnectPeriodMs: 200,
    });
    cloudCore.registerDevice(DEVICE, keys.devicePublicKey);
    // The tap is the cloud core's identity on the back-end listener: it sees every topic.
    tap = new MqttSession({ url: broker.cloudUrl, clientId: 'cloud-core-tap', clean: true });
    sessions.push(tap);
    tap.on('message', (topic, payload) =>
      traffic.push({ source: `mqtt ${topic}`, content: Buffer.from(payload) }),
    );
    await tap.subscribe('pos/v1/#');
    tap.connect();
    await tap.whenConnected();

    agent = await startAgent({
      config: { ...config, broker: { ...config.broker, reconnectPeriodMs: 200 } },
      keys,
      logger: createLogger({ file: path.join(dir, 'agent.log') }),
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    for (const s of sessions) await s.end().catch(() => undefined);
    await cloudCore?.stop();
    await padServer?.stop();
    await broker?.dispose();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('provisioned config uses mqtts:// with the pinned CA and the client certificate', () => {
    const config = loadConfig(configFile);
    expect(config.broker.url).toMatch(/^mqtts:\/\//);
    expect(readFileSync(config.broker.caFile as string, 'utf8')).toBe(
      readFileSync(ca.cert, 'utf8'),
    );
  });

  it('runs payments through the agent over mqtts:// to the cloud core', async () => {
    const keys: string[] = [];
    for (let n = 1; n <= PAYMENTS; n++) {
      const card = findTestCard(n % 2 === 0 ? 'visa' : 'mastercard');
      if (card === undefined) throw new Error('test card');
      pad.presentCard(card, { entryMode: 'C' });
      const key = `mtls-${n}-${process.pid}`;
      keys.push(key);
      const response = await fetch(`${agent.apiUrl}/v1/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${agent.apiToken}`,
          'content-type': 'application/json',
          'idempotency-key': key,
        },
        body: JSON.stringify({ amount: 1000 + n, currency: 'EUR' }),
      });
      const text = await response.text();
      apiAnswers.push({ source: `POST /v1/payments #${n}`, content: text });
      expect(response.status, text).toBeLessThan(300);
    }
    const deadline = Date.now() + 30_000;
    while (
      Date.now() < deadline &&
      (agent.store.queueStats().depth > 0 || cloudCore.keys().length < PAYMENTS)
    )
      await sleep(50);
    expect(new Set(cloudCore.keys())).toEqual(new Set(keys));
    expect(agent.store.queueStats()).toMatchObject({ depth: 0, dead: 0 });
    expect(agent.status().link.state).toBe('online');
    expect(traffic.some((t) => t.source === `mqtt pos/v1/${DEVICE}/up/records`)).toBe(true);
  }, 60_000);

  it("a second device's certificate can neither read nor write the first device's topics", async () => {
    const otherCert = ca.issue(OTHER);
    const intruder = tlsSession(OTHER, otherCert);
    const received: string[] = [];
    intruder.on('message', (topic) => received.push(topic));
    intruder.connect();
    await intruder.whenConnected();
    // Mosquitto 2 answers a SUBSCRIBE that the ACL denies with a granted QoS, but never delivers
    // (the ACL is checked per message); either way nothing of the first device may arrive.
    await intruder.subscribe(`pos/v1/${DEVICE}/#`).catch(() => undefined);
    // A downlink topic of its own, which it may read: the marker that proves delivery caught up.
    await intruder.subscribe(`pos/v1/${OTHER}/down/probe`);

    // Forge an uplink on the first device's topic, signed with a key the cloud does not know,
    // and a plain status on its retained status topic.
    const forged = signEnvelope(
      {
        state: 'offline',
        at: new Date().toISOString(),
        version: 'x',
        queue: { depth: 0, oldestAt: null, dead: 0 },
      },
      { secretKey: nacl.sign.keyPair().secretKey },
      StatusSchema,
    );
    const before = traffic.length;
    await intruder.publish(topics('pos/v1', DEVICE).status, forged).catch(() => undefined);
    // A legitimate publish of the second device on its own topic does reach the cloud side:
    // this proves the intruder's connection works, so the silence above is the ACL's doing.
    // (The same connection: the broker makes the certificate CN the client id, so a second
    // connection with this certificate would replace the first.) It is also the positive
    // signal for the absence: the broker forwards one client's publishes to a subscriber in
    // the order they came (MQTT 3.1.1 §4.6), so once the tap has this one, the forged one would
    // have arrived before it.
    await intruder.publish(`pos/v1/${OTHER}/status`, forged);

    // The first device takes another payment meanwhile; its topics carry traffic.
    const card = findTestCard('visa');
    if (card === undefined) throw new Error('test card');
    pad.presentCard(card, { entryMode: 'C' });
    const response = await fetch(`${agent.apiUrl}/v1/payments`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agent.apiToken}`,
        'content-type': 'application/json',
        'idempotency-key': `mtls-after-${process.pid}`,
      },
      body: JSON.stringify({ amount: 777, currency: 'EUR' }),
    });
    apiAnswers.push({ source: 'POST /v1/payments after', content: await response.text() });
    const deadline = Date.now() + 15_000;
    const seen = (source: string) => traffic.slice(before).some((t) => t.source === source);
    while (
      Date.now() < deadline &&
      !(seen(`mqtt pos/v1/${OTHER}/status`) && seen(`mqtt pos/v1/${DEVICE}/up/records`))
    )
      await sleep(50);
    while (Date.now() < deadline && agent.store.queueStats().depth > 0) await sleep(50);

    const after = traffic.slice(before).map((t) => t.source);
    expect(after).toContain(`mqtt pos/v1/${OTHER}/status`);
    expect(after).toContain(`mqtt pos/v1/${DEVICE}/up/records`);
    // The forged publish never reached the cloud side's view of the first device's status...
    const forgedSeen = traffic
      .slice(before)
      .filter((t) => t.source === `mqtt pos/v1/${DEVICE}/status`)
      .some((t) => Buffer.from(t.content).equals(forged));
    expect(forgedSeen).toBe(false);

    // ...and the intruder's subscription received nothing of the first device. The positive
    // signal: the tap (the cloud identity, which may write anywhere) publishes a probe on the
    // first device's topics and then a marker on the intruder's own. Both come from one
    // client, so the broker queues them for the intruder in that order, after every earlier
    // message of the first device (the tap already received those, so the broker had routed
    // them): when the marker arrives, anything of the first device would have come before it.
    await tap.publish(`pos/v1/${DEVICE}/down/probe`, Buffer.from('probe'));
    await tap.publish(`pos/v1/${OTHER}/down/probe`, Buffer.from('marker'));
    while (Date.now() < deadline && !received.includes(`pos/v1/${OTHER}/down/probe`))
      await sleep(20);
    expect(received).toContain(`pos/v1/${OTHER}/down/probe`);
    expect(received.filter((t) => t.startsWith(`pos/v1/${DEVICE}/`))).toEqual([]);
    expect(broker.log()).toContain(OTHER);
  }, 60_000);

  it('nothing leaks: no card number, no private key material, in any file, log, payload or answer', async () => {
    const status = await fetch(`${agent.apiUrl}/v1/status`, {
      headers: { authorization: `Bearer ${agent.apiToken}` },
    });
    apiAnswers.push({ source: 'GET /v1/status', content: await status.text() });
    const config = loadConfig(configFile);
    const db = path.join(config.dataDir, 'agent.db');
    const files = [
      ...filesToSweep([db, `${db}-wal`, `${db}-shm`, path.join(dir, 'agent.log')]),
      ...sqliteValuesToSweep(db),
    ];
    const everything = [...files, ...traffic, ...apiAnswers];
    expect(sweepForPans(everything)).toEqual([]);

    const keys = loadTerminalKeys(config.keysDir);
    expect(
      sweepForSecrets(everything, [
        { name: 'device signing key', value: keys.deviceSecretKey },
        { name: 'device signing key seed', value: keys.deviceSecretKey.subarray(0, 32) },
        { name: 'token key', value: tokenKey },
        { name: 'API token', value: keys.apiToken },
        {
          name: 'TLS client key body',
          value: readFileSync(config.broker.keyFile as string, 'utf8').split('\n')[1] ?? 'x',
        },
      ]),
    ).toEqual([]);
  });
});
