/**
 * The cloud core simulator's durable ledger (issue 10, fault 7): its dedupe table lived in
 * memory, so a restarted cloud core would have charged a resent key a second time. With a ledger
 * file, a record resent to a NEW cloud core process on the same file is answered `duplicate` with
 * the original outcome, and the key is charged once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { keyId, openEnvelope, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { type Acks, AcksSchema, topics } from '../../cloud-sync/schemas.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudBook } from '../../simulator/cloud-book.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { CloudLedger } from '../../simulator/cloud-ledger.js';
import { makeRecord } from '../cloud-sync/fixtures.js';
import { until } from '../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('CloudCore with a ledger file', () => {
  it('a restarted cloud core answers a resent key duplicate with the original outcome: charged once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-ledger-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const ledgerFile = path.join(dir, 'ledger.db');
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const cloudKeys = nacl.sign.keyPair();
    const device = nacl.sign.keyPair();
    const deviceId = 'ledger-lane-1';
    const startCloud = async (file: string | undefined): Promise<CloudCore> => {
      const cloud = await CloudCore.start({
        brokerUrl: broker.url,
        signer: { secretKey: cloudKeys.secretKey },
        ...(file === undefined ? {} : { ledgerFile: file }),
      });
      cloud.registerDevice(deviceId, device.publicKey);
      return cloud;
    };
    const t = topics('pos/v1', deviceId);
    const acks: Acks[] = [];
    const agent = new MqttSession({ url: broker.url, clientId: deviceId, clean: true });
    cleanups.push(() => agent.end());
    agent.on('message', (_topic, payload) =>
      acks.push(
        openEnvelope(
          payload,
          { keys: new Map([[keyId(cloudKeys.publicKey), cloudKeys.publicKey]]) },
          AcksSchema,
        ),
      ),
    );
    await agent.subscribe(t.acks);
    agent.connect();
    await agent.whenConnected();
    const record = makeRecord(1);
    const send = (batch: string): Promise<void> =>
      agent.publish(
        t.records,
        signEnvelope({ batch, records: [record] }, { secretKey: device.secretKey }),
      );

    const first = await startCloud(ledgerFile);
    await send('b-1');
    await until(() => acks.length === 1, { what: 'the first ack' });
    expect(acks[0]?.results[0]).toMatchObject({ key: record.key, status: 'accepted' });
    const outcome = acks[0]?.results[0]?.outcome;
    expect(first.charges()).toEqual([record.key]);
    await first.stop();

    // Control: without the file, a restarted cloud core has forgotten the key and applies it again.
    const forgetful = await startCloud(undefined);
    await send('b-2');
    await until(() => acks.length === 2, { what: 'the forgetful ack' });
    expect(acks[1]?.results[0]?.status).toBe('accepted');
    await forgetful.stop();

    const restarted = await startCloud(ledgerFile);
    cleanups.push(() => restarted.stop());
    await send('b-3');
    await until(() => acks.length === 3, { what: 'the ack after the restart' });
    expect(acks[2]?.results[0]).toMatchObject({ key: record.key, status: 'duplicate', outcome });
    expect(restarted.charges()).toEqual([record.key]);
    expect(restarted.records().get(record.key)?.count).toBe(2);
  });
});

describe('several cloud core instances on one shared ledger file (issue 16)', () => {
  const ledgerDir = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-shared-ledger-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'ledger.db');
  };

  it("a key is claimed by exactly one instance; the other reads the winner's entry", () => {
    const file = ledgerDir();
    const a = new CloudLedger<{ by: string }, unknown>(file, { shared: true });
    const b = new CloudLedger<{ by: string }, unknown>(file, { shared: true });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    expect(b.entries.get('k-1')).toBeUndefined();
    expect(a.entries.claim('k-1', { by: 'a' })).toBe(true);
    expect(b.entries.claim('k-1', { by: 'b' })).toBe(false);
    expect(b.entries.get('k-1')).toEqual({ by: 'a' });
    expect([...b.entries.keys()]).toEqual(['k-1']);
  });

  it('a record applied by one instance is a duplicate at the other, with the first outcome: charged once', () => {
    const file = ledgerDir();
    const a = new CloudBook({ ledgerFile: file, sharedLedger: true });
    const b = new CloudBook({ ledgerFile: file, sharedLedger: true });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const record = makeRecord(1);
    const first = a.applyRecord('shared-lane-1', record);
    expect(first).toMatchObject({ key: record.key, status: 'accepted' });
    const second = b.applyRecord('shared-lane-1', record);
    expect(second).toMatchObject({ key: record.key, status: 'duplicate', outcome: first.outcome });
    expect(a.counters).toMatchObject({ accepted: 1, duplicates: 0 });
    expect(b.counters).toMatchObject({ accepted: 0, duplicates: 1 });
    expect(b.charges()).toEqual([record.key]);
    expect(b.records().get(record.key)?.count).toBe(2);
  });

  it('control: unshared instances on one file each charge the key (why the group shares it)', () => {
    const file = ledgerDir();
    const a = new CloudBook({ ledgerFile: file });
    const b = new CloudBook({ ledgerFile: file });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const record = makeRecord(1);
    expect(a.applyRecord('shared-lane-1', record).status).toBe('accepted');
    expect(b.applyRecord('shared-lane-1', record).status).toBe('accepted');
  });
});

describe('CloudLedger.transaction: one commit per up/records message (issue 9)', () => {
  const ledgerDir = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-ledger-tx-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'ledger.db');
  };

  it('keeps a message’s bookings out of the file until they commit together', () => {
    const file = ledgerDir();
    const writer = new CloudLedger<{ n: number }, unknown>(file, { shared: true });
    const reader = new CloudLedger<{ n: number }, unknown>(file, { shared: true });
    cleanups.push(
      () => writer.close(),
      () => reader.close(),
    );
    writer.transaction(() => {
      writer.entries.set('k1', { n: 1 });
      writer.entries.set('k2', { n: 2 });
      // Not committed yet: another connection does not see them.
      expect(reader.entries.get('k1')).toBeUndefined();
    });
    expect(reader.entries.get('k1')).toEqual({ n: 1 });
    expect(reader.entries.get('k2')).toEqual({ n: 2 });
  });

  it('writes none of a message’s bookings when it fails half way', () => {
    const file = ledgerDir();
    const ledger = new CloudLedger<{ n: number }, unknown>(file);
    cleanups.push(() => ledger.close());
    expect(() =>
      ledger.transaction(() => {
        ledger.entries.set('k3', { n: 3 });
        throw new Error('fails half way');
      }),
    ).toThrow('fails half way');
    const reopened = new CloudLedger<{ n: number }, unknown>(file);
    cleanups.push(() => reopened.close());
    expect(reopened.entries.has('k3')).toBe(false);
  });

  it('CloudBook.applyRecords books every record of a message, durable for a new instance', () => {
    const file = ledgerDir();
    const book = new CloudBook({ ledgerFile: file });
    cleanups.push(() => book.close());
    const records = [makeRecord(1), makeRecord(2), makeRecord(3)];
    const results = book.applyRecords('batch-lane-1', records);
    expect(results.map((r) => [r.key, r.status])).toEqual(records.map((r) => [r.key, 'accepted']));
    const restarted = new CloudBook({ ledgerFile: file });
    cleanups.push(() => restarted.close());
    expect(restarted.applyRecords('batch-lane-1', records).map((r) => r.status)).toEqual([
      'duplicate',
      'duplicate',
      'duplicate',
    ]);
    expect(restarted.charges().sort()).toEqual(records.map((r) => r.key).sort());
  });
});
