/**
 * Card readers end to end (issue 4), the real agent
 * (startAgent: SQLite store, MQTT sync, local API) with a virtual PIN pad on mock://, a virtual
 * vendor-HID MSR and a keyboard-wedge reader behind the node-hid interface, and a virtual serial
 * reader on tcp://; the embedded broker (aedes) and the cloud core simulator.
 *
 * Each payment starts with POST /v1/payments; PaymentService reads the card through
 * `agent.cardInput` (racing the PIN pad against every reader), authorizes it online, and the
 * cloud core acknowledges its record. `/v1/status` is read through the local API.
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
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { VirtualHidBackend, VirtualHidReader } from '../../simulator/virtual-hid-reader.js';
import {
  serveSerialReaderTcp,
  VirtualSerialReader,
} from '../../simulator/virtual-serial-reader.js';
import { filesToSweep, sqliteValuesToSweep, sweepForPans } from '../helpers/leak-sweep.js';
import { until } from '../helpers/wait.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';

describe('card readers end to end: reader → card input → store → broker → cloud core', () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let cloud: CloudCore;
  let padServer: PadServer;
  let serialServer: { url: string; stop(): Promise<void> };
  let uninstallHid: () => void;
  let agent: RunningAgent;
  const pad = new VirtualPinPad();
  const hidBackend = new VirtualHidBackend();
  const msr = hidBackend.add(new VirtualHidReader({ mode: 'msr', serialNumber: 'E2EMSR' }));
  const wedge = hidBackend.add(
    new VirtualHidReader({
      mode: 'wedge',
      vendorId: 0x0acd,
      productId: 0x3810,
      serialNumber: 'E2EKB',
    }),
  );
  const serial = new VirtualSerialReader();
  const devices = { 'usb-msr': msr, 'usb-wedge': wedge, 'serial-msr': serial } as const;
  let n = 0;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-readers-e2e-'));
    const keys = generateDevelopmentKeys(path.join(dir, 'keys'));
    broker = await EmbeddedBroker.start();
    const brokerUrl = `mqtt://127.0.0.1:${broker.port}`;
    cloud = await CloudCore.start({
      brokerUrl,
      signer: { secretKey: keys.cloud.cloudSecretKey },
      openSealed: (sealed) => openSealedCard(sealed, keys.cloud.vaultSecretKey),
      reconnectPeriodMs: 200,
    });
    cloud.registerDevice('readers-lane-1', keys.terminal.devicePublicKey);
    padServer = serveMock(pad, `readers-e2e-pad-${process.pid}`);
    serialServer = await serveSerialReaderTcp(serial);
    uninstallHid = hidBackend.install();
    const config = parseConfig({
      deviceId: 'readers-lane-1',
      dataDir: path.join(dir, 'data'),
      keysDir: path.join(dir, 'keys'),
      pinPad: { path: padServer.url },
      cardReaders: [
        {
          name: 'usb-msr',
          kind: 'hid-msr',
          path: msr.hidPath,
          reconnectInitialDelayMs: 20,
          reconnectMaxDelayMs: 100,
        },
        {
          name: 'usb-wedge',
          kind: 'wedge',
          path: wedge.hidPath,
          reconnectInitialDelayMs: 20,
          reconnectMaxDelayMs: 100,
        },
        {
          name: 'serial-msr',
          kind: 'serial',
          path: serialServer.url,
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
    await until(() => serial.connected);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    uninstallHid?.();
    await serialServer?.stop();
    await padServer?.stop();
    await cloud?.stop();
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function status(): Promise<{ devices: { name: string; state: string }[] }> {
    const response = await fetch(`${agent.apiUrl}/v1/status`, {
      headers: { authorization: `Bearer ${agent.apiToken}` },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { devices: { name: string; state: string }[] };
  }

  /**
   * Takes a payment the way the POS app does: POST /v1/payments, then, once every connected
   * reader is armed for it, `present()` (a swipe on a reader, or an unplug).
   */
  async function pay(
    amountMinor: number,
    present: () => void,
  ): Promise<{ key: string; status: number; body: Record<string, unknown> }> {
    const key = `readers-e2e-${++n}-${process.pid}`;
    const answer = fetch(`${agent.apiUrl}/v1/payments`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agent.apiToken}`,
        'content-type': 'application/json',
        'idempotency-key': key,
      },
      body: JSON.stringify({ amount: amountMinor, currency: 'EUR' }),
    });
    await until(
      () =>
        agent.cardReaders.some((r) => r.armed) &&
        agent.cardReaders.filter((r) => r.state === 'connected').every((r) => r.armed),
    );
    present();
    const response = await answer;
    return {
      key,
      status: response.status,
      body: (await response.json()) as Record<string, unknown>,
    };
  }

  it.each(['usb-msr', 'usb-wedge', 'serial-msr'] as const)(
    '%s: a swipe feeds the payment in progress through the local API, the PIN pad read is canceled, the cloud acknowledges',
    async (name) => {
      const amount = 1000 + n;
      const canceledBefore = pad.received.filter((m) => m.id === '40').length;
      const {
        key,
        status: code,
        body,
      } = await pay(amount, () => devices[name].swipe('mastercard'));
      expect(code, JSON.stringify(body)).toBe(201);
      expect(body).toMatchObject({
        idempotencyKey: key,
        card: { brand: 'mastercard', last4: '4444', entryMode: 'swipe' },
      });
      expect(pad.received.filter((m) => m.id === '40').length).toBe(canceledBefore + 1);
      await until(() => cloud.records().get(key)?.status === 'accepted');
      await until(() => agent.store.queueStats().depth === 0);
      expect(cloud.records().get(key)).toMatchObject({
        status: 'accepted',
        outcome: 'approved',
        amountMinor: amount,
      });
      expect(agent.store.getPaymentByKey(key)?.state).toBe('approved');
    },
    30_000,
  );

  it('a swipe with no payment in progress is discarded with a prompt, and nothing is stored', async () => {
    const prompts: string[] = [];
    agent.cardInput.on('prompt', (p) => prompts.push(`${p.source}: ${p.text}`));
    const before = agent.store.listPayments({ limit: 1000 }).length;
    msr.swipe('visa');
    wedge.swipe('visa');
    expect(prompts).toEqual([
      'usb-msr: No payment in progress: card ignored',
      'usb-wedge: No payment in progress: card ignored',
    ]);
    expect(agent.store.listPayments({ limit: 1000 }).length).toBe(before);
  });

  it('a reader unplugged mid-payment fails that payment as reader_disconnected; after the replug a payment goes through', async () => {
    const failed = await pay(777, () => msr.unplug());
    expect(failed.status).toBe(422);
    expect(failed.body).toMatchObject({ error: { code: 'POS420' } });
    expect(JSON.stringify(failed.body)).toContain('reader_disconnected');
    const down = await status();
    expect(down.devices).toContainEqual({
      name: 'usb-msr',
      path: msr.hidPath,
      state: 'disconnected',
    });
    expect(down.devices).toContainEqual({
      name: 'usb-wedge',
      path: wedge.hidPath,
      state: 'connected',
    });
    msr.replug();
    await until(() => agent.cardReaders.find((r) => r.name === 'usb-msr')?.state === 'connected');
    expect((await status()).devices).toContainEqual({
      name: 'usb-msr',
      path: msr.hidPath,
      state: 'connected',
    });
    const again = await pay(778, () => msr.swipe('visa'));
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    await until(() => cloud.records().get(again.key)?.status === 'accepted');
    expect(cloud.records().get(again.key)).toMatchObject({ outcome: 'approved' });
  }, 30_000);

  it('no test PAN in the log or the database files', () => {
    const db = path.join(dir, 'data/agent.db');
    const files = filesToSweep([path.join(dir, 'agent.log'), db, `${db}-wal`]);
    expect(files.length).toBeGreaterThanOrEqual(2);
    expect(sweepForPans([...files, ...sqliteValuesToSweep(db)])).toEqual([]);
  });
});
