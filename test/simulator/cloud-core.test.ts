/**
 * The cloud core simulator against the embedded broker: decisions from sealed card data (sealed
 * with the drivers' real sealing code), dedupe with the original outcome, refusals, and the PCI
 * rule that it never logs a PAN.
 */
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { keyId, openEnvelope, signBody, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { type Acks, AcksSchema, type OutboxRecord, topics } from '../../cloud-sync/schemas.js';
import {
  buildSealedPlaintext,
  openSealedCard,
  sealToVault,
} from '../../drivers/boundary/sealed-card.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { freePort } from '../../simulator/free-port.js';
import type { Clock } from '../../common/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FIXTURE_NOW, makeRecord, waitFor } from '../cloud-sync/fixtures.js';
import { sweepForPans } from '../helpers/leak-sweep.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const vault = nacl.box.keyPair();
function sealed(pan: string): string {
  const plaintext = buildSealedPlaintext({ pan: Buffer.from(pan), expiryYY: 28, expiryMM: 12 });
  return sealToVault(plaintext, vault.publicKey);
}

/** A record with sealed data the vault can open (PAN 4111 1111 1111 1111). */
function sealedRecord(seq: number, overrides: Partial<OutboxRecord> = {}): OutboxRecord {
  return makeRecord(seq, { sealed: sealed('4111111111111111'), ...overrides });
}

async function setup(options: { clock?: Clock; ledgerFile?: string } = {}) {
  const broker = await EmbeddedBroker.start();
  cleanups.push(() => broker.stop());
  const cloudKeys = nacl.sign.keyPair();
  const logLines: string[] = [];
  const log = (fields: object, message: string): void => {
    logLines.push(`${message} ${JSON.stringify(fields)}`);
  };
  const cloud = await CloudCore.start({
    brokerUrl: broker.url,
    signer: { secretKey: cloudKeys.secretKey },
    openSealed: (s) => openSealedCard(s, vault.secretKey),
    logger: { debug: log, info: log, warn: log, error: log },
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.ledgerFile === undefined ? {} : { ledgerFile: options.ledgerFile }),
  });
  cleanups.push(() => cloud.stop());
  const device = nacl.sign.keyPair();
  const deviceId = 'store-1.lane-1';
  cloud.registerDevice(deviceId, device.publicKey);
  const t = topics('pos/v1', deviceId);
  const acks: Acks[] = [];
  const raw: Buffer[] = [];
  const agent = new MqttSession({ url: broker.url, clientId: deviceId, clean: true });
  cleanups.push(() => agent.end());
  agent.on('message', (_topic, payload) => {
    raw.push(payload);
    acks.push(
      openEnvelope(
        payload,
        { keys: new Map([[keyId(cloudKeys.publicKey), cloudKeys.publicKey]]) },
        AcksSchema,
      ),
    );
  });
  await agent.subscribe(t.acks);
  agent.connect();
  await agent.whenConnected();
  const send = async (batch: string, records: OutboxRecord[], key = device.secretKey) => {
    await agent.publish(t.records, signEnvelope({ batch, records }, { secretKey: key }));
  };
  return { broker, cloud, cloudKeys, device, deviceId, t, acks, raw, agent, send, logLines };
}

/**
 * A ledger file in a fresh folder (removed after the test), and `whileLocked(send)`: another
 * connection holds the file's write lock (as a second cloud core instance would) while `send`
 * runs and until the core has logged its failed commit (after its 5 s busy timeout).
 */
function lockableLedger(prefix: string): {
  ledgerFile: string;
  whileLocked: (send: () => Promise<void>, logLines: string[]) => Promise<void>;
} {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const ledgerFile = path.join(dir, 'ledger.db');
  return {
    ledgerFile,
    async whileLocked(send, logLines) {
      const other = new Database(ledgerFile);
      other.exec('BEGIN IMMEDIATE');
      try {
        await send();
        await waitFor(
          () => logLines.some((l) => l.startsWith('cloud core ledger commit failed')),
          'the failed commit',
          10_000,
        );
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
    },
  };
}

describe('CloudCore simulator', () => {
  it('approves, declines the declined test card (05) and amounts ending in 51, and acks signed', async () => {
    const { cloud, acks, send, logLines, raw } = await setup();
    const good = makeRecord(1, { sealed: sealed('4111111111111111') });
    const declinedCard = makeRecord(2, {
      sealed: sealed('4000000000000002'),
      card: { ...makeRecord(2).card, first6: '400000', last4: '0002' },
    });
    const poor = makeRecord(3, {
      sealed: sealed('5555555555554444'),
      payment: { ...makeRecord(3).payment, amountMinor: 2051 },
    });
    await send('b1', [good, declinedCard, poor]);
    await waitFor(() => acks.length === 1, 'the ack');
    expect(acks[0]).toEqual({
      batch: 'b1',
      results: [
        {
          key: good.key,
          status: 'accepted',
          outcome: 'approved',
          authCode: expect.stringMatching(/^[0-9A-F]{6}$/),
        },
        { key: declinedCard.key, status: 'accepted', outcome: 'declined', declineCode: '05' },
        { key: poor.key, status: 'accepted', outcome: 'declined', declineCode: '51' },
      ],
    });
    expect(cloud.counters()).toMatchObject({
      batches: 1,
      records: 3,
      accepted: 3,
      approved: 1,
      declined: 2,
    });
    // PCI: no PAN in the logs nor in the acks, though the cloud core opened all three.
    expect(logLines.length).toBeGreaterThan(0);
    expect(
      sweepForPans([
        ...logLines.map((l, i) => ({ source: `log ${i}`, content: l })),
        ...raw.map((r, i) => ({ source: `ack ${i}`, content: r })),
      ]),
    ).toEqual([]);
  });

  it('without sealed data, the declined card is matched by first 6 and last 4', async () => {
    const { acks, send } = await setup();
    const record = makeRecord(1, {
      card: { ...makeRecord(1).card, first6: '400000', last4: '0002' },
    });
    delete record.sealed;
    await send('b1', [record]);
    await waitFor(() => acks.length === 1, 'the ack');
    expect(acks[0]?.results[0]).toMatchObject({ outcome: 'declined', declineCode: '05' });
  });

  it('dedupes by idempotency key: a second arrival is duplicate with the ORIGINAL outcome', async () => {
    const { cloud, acks, send } = await setup();
    const declined = sealedRecord(1, { payment: { ...makeRecord(1).payment, amountMinor: 151 } });
    await send('b1', [declined]);
    await send('b1', [declined]);
    await send('b2', [declined, sealedRecord(2)]);
    await waitFor(() => acks.length === 3, 'three acks');
    expect(acks.map((a) => a.results[0]?.status)).toEqual(['accepted', 'duplicate', 'duplicate']);
    for (const a of acks)
      expect(a.results[0]).toMatchObject({ outcome: 'declined', declineCode: '51' });
    expect(acks[2]?.results[1]).toMatchObject({ status: 'accepted', outcome: 'approved' });
    const entry = cloud.records().get(declined.key);
    expect(entry).toMatchObject({ count: 3, status: 'accepted', outcome: 'declined' });
    expect(cloud.counters()).toMatchObject({ accepted: 2, duplicates: 2 });
    expect(cloud.keys()).toEqual([declined.key, makeRecord(2).key]);
  });

  it('a ledger commit that fails answers nothing, so the batch is resent and booked once', async () => {
    // Regression: the failure (SQLITE_BUSY after the 5 s busy timeout when another instance holds
    // the shared ledger's write lock) was treated as a refused message and settled: an AMQP
    // delivery was acknowledged with nothing booked.
    const { ledgerFile, whileLocked } = lockableLedger('pos-cloud-busy-');
    const { cloud, acks, send, logLines } = await setup({ ledgerFile });
    await whileLocked(() => send('b1', [sealedRecord(1)]), logLines);
    expect(acks).toEqual([]);
    expect(cloud.records().size).toBe(0);
    await send('b1', [sealedRecord(1)]);
    await waitFor(() => acks.length === 1, 'the ack of the resend');
    expect(acks[0]?.results[0]).toMatchObject({ status: 'accepted' });
    expect(cloud.counters()).toMatchObject({ accepted: 1, duplicates: 0 });
  }, 20_000);

  it('an authorization whose ledger commit fails is not answered; asked again, it is decided once', async () => {
    // Regression: authorize() ran outside a ledger transaction (another instance's void of the
    // key could be overwritten) and a failed commit was settled as a refusal.
    const { ledgerFile, whileLocked } = lockableLedger('pos-cloud-busy-auth-');
    const { broker, cloud, agent, device, t, logLines } = await setup({ ledgerFile });
    // The device's session parses what it receives as acks: the responses are watched apart.
    const responses: Buffer[] = [];
    const watcher = new MqttSession({ url: broker.url, clientId: 'auth-watcher', clean: true });
    cleanups.push(() => watcher.end());
    watcher.on('message', (_topic, payload) => void responses.push(payload));
    await watcher.subscribe(t.authResponse);
    watcher.connect();
    await watcher.whenConnected();
    const { key, payment, card } = makeRecord(7);
    const ask = (): Promise<void> =>
      agent.publish(t.auth, signEnvelope({ key, payment, card }, { secretKey: device.secretKey }));
    await whileLocked(ask, logLines);
    expect(responses).toEqual([]);
    expect(cloud.records().has(key)).toBe(false);
    await ask();
    await waitFor(() => responses.length === 1, 'the authorization response');
    expect(cloud.records().get(key)).toMatchObject({ count: 1 });
  }, 20_000);

  it('a start that fails (no broker) closes the ledger file it opened', async () => {
    // Regression: start() ended the session but left the ledger's SQLite handle open.
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-cloud-nostart-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const ledgerFile = path.join(dir, 'ledger.db');
    const openFiles = (): string[] =>
      readdirSync('/proc/self/fd').flatMap((fd) => {
        try {
          return [readlinkSync(`/proc/self/fd/${fd}`)];
        } catch {
          return [];
        }
      });
    await expect(
      CloudCore.start({
        brokerUrl: `mqtt://127.0.0.1:${await freePort()}`,
        signer: { secretKey: nacl.sign.keyPair().secretKey },
        ledgerFile,
        reconnectPeriodMs: 100,
        connectTimeoutMs: 500,
      }),
    ).rejects.toThrow();
    expect(existsSync(ledgerFile)).toBe(true);
    expect(openFiles().filter((f) => f.startsWith(ledgerFile))).toEqual([]);
  });

  it('refuses unsigned, unregistered and other-device signatures, without acking', async () => {
    const { cloud, acks, agent, t, send } = await setup();
    const refused: string[] = [];
    cloud.on('refused', ({ error }) => refused.push(error.code));
    const intruder = nacl.sign.keyPair();
    await send('b1', [makeRecord(1)], intruder.secretKey); // unknown key id
    const otherDevice = nacl.sign.keyPair();
    cloud.registerDevice('store-1.lane-2', otherDevice.publicKey);
    await send('b2', [makeRecord(2)], otherDevice.secretKey); // lane-2 signing for lane-1
    await agent.publish(t.records, 'plain text');
    await waitFor(() => refused.length === 3, 'three refusals');
    expect(refused).toEqual(['POS312', 'POS312', 'POS310']);
    expect(acks).toEqual([]);
    expect(cloud.counters().refused).toBe(3);
    expect(cloud.records().size).toBe(0);
  });

  it('a signed batch that fails the schema gets its keys rejected, so they go dead', async () => {
    const { cloud, acks, agent, t, device } = await setup();
    const body = JSON.stringify({ batch: 'b9', records: [{ ...makeRecord(1), seq: 0 }] });
    await agent.publish(t.records, signBody(body, { secretKey: device.secretKey }));
    await waitFor(() => acks.length === 1, 'the rejection');
    expect(acks[0]?.results[0]).toMatchObject({
      key: makeRecord(1).key,
      status: 'rejected',
      code: 'POS313',
    });
    expect(cloud.counters().rejected).toBe(1);
  });

  it('rejects a record whose sealed data cannot be opened with the vault key', async () => {
    const { acks, send } = await setup();
    const otherVault = nacl.box.keyPair();
    const plaintext = buildSealedPlaintext({
      pan: Buffer.from('4111111111111111'),
      expiryYY: 28,
      expiryMM: 1,
    });
    await send('b1', [makeRecord(1, { sealed: sealToVault(plaintext, otherVault.publicKey) })]);
    await waitFor(() => acks.length === 1, 'the ack');
    expect(acks[0]?.results[0]).toMatchObject({ status: 'rejected', code: 'sealed_unreadable' });
  });

  it('fault switches: drop the next N, delay, duplicate, reorder within a window', async () => {
    const { cloud, acks, send } = await setup();
    cloud.setFaults({ dropAcks: 2 });
    await send('d1', [makeRecord(1)]);
    await send('d2', [makeRecord(2)]);
    await send('d3', [makeRecord(3)]);
    await waitFor(() => acks.length === 1, 'the third ack');
    expect(acks.map((a) => a.batch)).toEqual(['d3']);
    expect(cloud.counters().acksDropped).toBe(2);

    cloud.setFaults({ duplicateAcks: true });
    await send('x1', [makeRecord(4)]);
    await waitFor(() => acks.length === 3, 'the duplicated ack');
    expect(acks.slice(1).map((a) => a.batch)).toEqual(['x1', 'x1']);

    cloud.clearFaults();
    cloud.setFaults({ reorderWindow: 3, reorderFlushMs: 5000 });
    await send('r1', [makeRecord(5)]);
    await send('r2', [makeRecord(6)]);
    await send('r3', [makeRecord(7)]);
    await waitFor(() => acks.length === 6, 'the reordered acks');
    expect(acks.slice(3).map((a) => a.batch)).toEqual(['r3', 'r2', 'r1']);
  });

  it('fault switch ackDelayMs: the ack leaves only when the injected clock has moved that far', async () => {
    const clock = new FakeClock(FIXTURE_NOW);
    const { cloud, cloudKeys, t, acks, send } = await setup({ clock });
    cloud.setFaults({ ackDelayMs: 300 });
    await send('l1', [sealedRecord(8)]);
    await waitFor(() => cloud.counters().accepted === 1, 'the record decided');
    expect(clock.pending()).toEqual([300]);
    // A barrier behind any ack sent at once: the cloud's session publishes in order and the
    // broker keeps one client's QoS 1 order on a topic (MQTT 3.1.1 §4.6), so once the barrier
    // arrives, an undelayed ack would have arrived before it.
    const barrier = signEnvelope(
      { batch: 'barrier', results: [] },
      { secretKey: cloudKeys.secretKey },
    );
    await cloud.publishRaw(t.acks, barrier);
    await waitFor(() => acks.some((a) => a.batch === 'barrier'), 'the barrier');
    expect(acks.map((a) => a.batch)).toEqual(['barrier']);
    clock.advance(299);
    await cloud.publishRaw(t.acks, barrier);
    await waitFor(() => acks.filter((a) => a.batch === 'barrier').length === 2, 'barrier 2');
    expect(acks.map((a) => a.batch)).toEqual(['barrier', 'barrier']);
    clock.advance(1);
    await waitFor(() => acks.length === 3, 'the late ack');
    expect(acks[2]).toMatchObject({ batch: 'l1', results: [{ status: 'accepted' }] });
  });
});
