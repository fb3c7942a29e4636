/**
 * An encrypting (SRED) HID card reader end to end (issue 4 item 2): the real agent (startAgent:
 * SQLite store, MQTT sync, local API) with a virtual PIN pad on mock:// and a virtual SRED HID
 * reader behind the node-hid interface sending project SRED reports
 * (drivers/readers/sred-hid-report.ts); the embedded broker (aedes) and the cloud core simulator.
 *
 * The payment starts with POST /v1/payments; the swipe's KSN and ciphertext must reach the cloud
 * exactly as the reader sent them (passed through unopened, no sealed card data), and the cloud
 * core decides on first 6 / last 4 (it has no key for the reader's ciphertext).
 */
import { Buffer } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { filesToSweep, sqliteValuesToSweep } from '../helpers/leak-sweep.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { TEST_PANS } from '../../simulator/test-cards.js';
import { VirtualHidBackend, VirtualHidReader } from '../../simulator/virtual-hid-reader.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { until } from '../helpers/wait.js';

/** The KSN and encrypted track 2 of a project SRED report, as upper-case hex. */
function sredOf(report: Buffer): { ksnHex: string; ciphertextHex: string } {
  return {
    ksnHex: report.subarray(343, 353).toString('hex').toUpperCase(),
    ciphertextHex: report
      .subarray(119, 119 + (report[4] ?? 0))
      .toString('hex')
      .toUpperCase(),
  };
}

describe('SRED HID reader end to end: masked data + KSN + ciphertext through to the cloud core, unopened', () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let cloud: CloudCore;
  let padServer: PadServer;
  let uninstallHid: () => void;
  let agent: RunningAgent;
  const pad = new VirtualPinPad();
  const hidBackend = new VirtualHidBackend();
  const sred = hidBackend.add(new VirtualHidReader({ mode: 'sred', serialNumber: 'E2ESRED' }));
  /** Bodies of every signed message the agent published on up/auth and up/records. */
  const upBodies: { topic: string; body: Record<string, unknown> }[] = [];
  let n = 0;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-sred-e2e-'));
    const keys = generateDevelopmentKeys(path.join(dir, 'keys'));
    broker = await EmbeddedBroker.start();
    broker.aedes?.on('publish', (packet) => {
      if (!/\/up\/(auth|records)$/.test(packet.topic)) return;
      const envelope = JSON.parse(Buffer.from(packet.payload).toString('utf8')) as {
        body: string;
      };
      upBodies.push({
        topic: packet.topic,
        body: JSON.parse(envelope.body) as Record<string, unknown>,
      });
    });
    const brokerUrl = `mqtt://127.0.0.1:${broker.port}`;
    cloud = await CloudCore.start({
      brokerUrl,
      signer: { secretKey: keys.cloud.cloudSecretKey },
      openSealed: (sealed) => openSealedCard(sealed, keys.cloud.vaultSecretKey),
      reconnectPeriodMs: 200,
    });
    cloud.registerDevice('sred-lane-1', keys.terminal.devicePublicKey);
    padServer = serveMock(pad, `sred-e2e-pad-${process.pid}`);
    uninstallHid = hidBackend.install();
    const config = parseConfig({
      deviceId: 'sred-lane-1',
      dataDir: path.join(dir, 'data'),
      keysDir: path.join(dir, 'keys'),
      pinPad: { path: padServer.url },
      cardReaders: [
        {
          name: 'usb-sred',
          kind: 'hid-msr',
          path: sred.hidPath,
          reconnectInitialDelayMs: 20,
          reconnectMaxDelayMs: 100,
        },
      ],
      broker: { url: brokerUrl, reconnectPeriodMs: 200, development: true },
      sync: { ackTimeoutMs: 1000 },
      api: { port: 0 },
    });
    agent = await startAgent({
      config,
      keys: keys.terminal,
      logger: createLogger({ file: path.join(dir, 'agent.log') }),
    });
    await until(() => agent.cardReaders.every((r) => r.state === 'connected'));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    uninstallHid?.();
    await padServer?.stop();
    await cloud?.stop();
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The outbox records of one payment the agent sent on up/records. */
  function recordsFor(key: string): Record<string, unknown>[] {
    return upBodies
      .filter((m) => m.topic.endsWith('/up/records'))
      .flatMap((m) => m.body.records as Record<string, unknown>[])
      .filter((r) => r.key === key);
  }

  /** POST /v1/payments, then a swipe on the SRED reader once it is armed; returns what it sent. */
  async function pay(
    amountMinor: number,
    card: string,
    offline?: 'force_offline',
  ): Promise<{ key: string; status: number; body: Record<string, unknown>; report: Buffer }> {
    const key = `sred-e2e-${++n}-${process.pid}`;
    const answer = fetch(`${agent.apiUrl}/v1/payments`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agent.apiToken}`,
        'content-type': 'application/json',
        'idempotency-key': key,
      },
      body: JSON.stringify({
        amount: amountMinor,
        currency: 'EUR',
        ...(offline === undefined ? {} : { offline }),
      }),
    });
    await until(() => agent.cardReaders.every((r) => r.armed));
    const sentBefore = sred.sent.length;
    expect(sred.swipe(card)).toBe(1);
    const report = sred.sent[sentBefore] ?? Buffer.alloc(0);
    const response = await answer;
    return {
      key,
      status: response.status,
      body: (await response.json()) as Record<string, unknown>,
      report,
    };
  }

  it('a swipe is stored and sent with the reader’s KSN and ciphertext and no sealed data; the cloud core approves on first 6 / last 4', async () => {
    const { key, status, body, report } = await pay(2500, 'mastercard');
    expect(status, JSON.stringify(body)).toBe(201);
    expect(body).toMatchObject({
      idempotencyKey: key,
      card: { brand: 'mastercard', first6: '555555', last4: '4444', entryMode: 'swipe' },
    });
    await until(() => cloud.records().get(key)?.status === 'accepted');
    await until(() => agent.store.queueStats().depth === 0);
    expect(cloud.records().get(key)).toMatchObject({
      status: 'accepted',
      outcome: 'approved',
      amountMinor: 2500,
    });
    expect(agent.store.getPaymentByKey(key)?.state).toBe('approved');

    const expected = sredOf(report);
    expect(expected.ksnHex).toMatch(/^FFFF9876543210E[0-9A-F]{5}$/);
    // up/auth asks the cloud to authorize with the reader's own KSN and ciphertext, unopened.
    const auth = upBodies.filter((m) => m.topic.endsWith('/up/auth') && m.body.key === key);
    expect(auth.length).toBe(1);
    expect(auth[0]?.body.sred).toEqual(expected);
    expect(auth[0]?.body).not.toHaveProperty('sealed');
    // Authorized online: the record that follows carries no card secret at all.
    const records = recordsFor(key);
    expect(records.length).toBeGreaterThan(0);
    for (const record of records) {
      expect(record).not.toHaveProperty('sred');
      expect(record).not.toHaveProperty('sealed');
    }
  }, 30_000);

  it('stored offline (store-and-forward): the record read back from SQLite and sent on up/records carries sred and no sealed data; the cloud core accepts it', async () => {
    const { key, status, body, report } = await pay(2700, 'visa', 'force_offline');
    expect(status, JSON.stringify(body)).toBe(201);
    expect(body).toMatchObject({ state: 'stored', card: { first6: '411111', last4: '1111' } });
    await until(() => cloud.records().get(key)?.status === 'accepted');
    expect(cloud.records().get(key)).toMatchObject({ outcome: 'approved', amountMinor: 2700 });
    expect(upBodies.some((m) => m.topic.endsWith('/up/auth') && m.body.key === key)).toBe(false);
    const records = recordsFor(key);
    expect(records.length).toBeGreaterThan(0);
    for (const record of records) {
      expect(record.sred).toEqual(sredOf(report));
      expect(record).not.toHaveProperty('sealed');
    }
  }, 30_000);

  it('the declined test card read through SRED is declined by the cloud core on first 6 / last 4', async () => {
    const { key, body } = await pay(2600, '4000000000000002');
    await until(() => cloud.records().get(key) !== undefined);
    expect(cloud.records().get(key), JSON.stringify(body)).toMatchObject({
      status: 'accepted',
      outcome: 'declined',
    });
    await until(() => agent.store.getPaymentByKey(key)?.state === 'declined');
  }, 30_000);

  it('no test PAN in the log, the database files or the MQTT payloads', () => {
    // The reader's KSN and ciphertexts are opaque hex that may contain a Luhn-valid-looking run
    // of digits; they are cut out before the Luhn scan (the test PANs are looked for everywhere).
    const opaque = sred.sent.flatMap((r) => Object.values(sredOf(r)));
    const scan = (text: string): void => {
      for (const pan of TEST_PANS) expect(text).not.toContain(pan);
      let rest = text;
      for (const hex of opaque) rest = rest.split(hex).join(' ');
      expect(findPanShapedRuns(rest)).toEqual([]);
    };
    // SQLite files: the exact test PANs in their raw bytes (adjacent columns can form digit runs
    // that no value holds), the Luhn scan on every stored value.
    const db = path.join(dir, 'data/agent.db');
    for (const item of [...filesToSweep([db, `${db}-wal`]), ...sqliteValuesToSweep(db)]) {
      const text =
        typeof item.content === 'string' ? item.content : item.content.toString('latin1');
      if (typeof item.content === 'string') scan(text);
      else for (const pan of TEST_PANS) expect(text).not.toContain(pan);
    }
    for (const f of ['agent.log']) {
      let text: string;
      try {
        text = readFileSync(path.join(dir, f)).toString('latin1');
      } catch {
        continue;
      }
      scan(text);
    }
    scan(JSON.stringify(upBodies));
    expect(upBodies.length).toBeGreaterThan(0);
  });
});
