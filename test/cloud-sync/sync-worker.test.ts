/**
 * The sync worker against real brokers (STYLE habit 3): aedes in-process and Mosquitto as a child
 * process, with the simulator's cloud core on the other side and an in-memory outbox.
 */
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { keyId, openEnvelope, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { RecordsBatchSchema, StatusSchema, topics } from '../../cloud-sync/schemas.js';
import { SyncWorker, type SyncWorkerOptions } from '../../cloud-sync/sync-worker.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { MOSQUITTO_SKIP_REASON, mosquittoAvailable, startMosquitto } from '../helpers/mosquitto.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FIXTURE_NOW, MemoryOutbox, makeRecord, waitFor } from './fixtures.js';

interface TestBroker {
  url: string;
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

const brokers: { name: string; available: boolean; start(): Promise<TestBroker> }[] = [
  {
    name: 'aedes (embedded)',
    available: true,
    async start() {
      const broker = await EmbeddedBroker.start();
      return { url: broker.url, restart: (ms) => broker.restart(ms), stop: () => broker.stop() };
    },
  },
  {
    name: 'Mosquitto',
    available: mosquittoAvailable() !== null,
    async start() {
      const broker = await startMosquitto();
      return { url: broker.url, restart: (ms) => broker.restart(ms), stop: () => broker.dispose() };
    },
  },
];
if (mosquittoAvailable() === null)
  console.warn(`skipping Mosquitto sync tests: ${MOSQUITTO_SKIP_REASON}`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

let deviceCounter = 0;

/** Broker + cloud core + device session + worker over a MemoryOutbox with `count` records. */
async function harness(
  broker: TestBroker,
  count: number,
  options: Partial<SyncWorkerOptions> = {},
): Promise<{
  outbox: MemoryOutbox;
  worker: SyncWorker;
  cloud: CloudCore;
  session: MqttSession;
  tap: { topic: string; payload: Buffer }[];
  deviceId: string;
  cloudKeys: nacl.SignKeyPair;
  deviceKeyLookup: (kid: string) => Uint8Array | undefined;
}> {
  const deviceId = `lane-${process.pid}-${++deviceCounter}`;
  const deviceKeys = nacl.sign.keyPair();
  const cloudKeys = nacl.sign.keyPair();
  const cloud = await CloudCore.start({
    brokerUrl: broker.url,
    signer: { secretKey: cloudKeys.secretKey },
    reconnectPeriodMs: 100,
    clientId: `cloud-${deviceId}`,
  });
  cleanups.push(() => cloud.stop());
  cloud.registerDevice(deviceId, deviceKeys.publicKey);

  const tap: { topic: string; payload: Buffer }[] = [];
  const tapSession = new MqttSession({
    url: broker.url,
    clientId: `tap-${deviceId}`,
    clean: true,
    reconnectPeriodMs: 100,
  });
  cleanups.push(() => tapSession.end());
  tapSession.on('message', (topic, payload) => tap.push({ topic, payload }));
  await tapSession.subscribe('#');
  tapSession.connect();
  await tapSession.whenConnected();

  const outbox = new MemoryOutbox(Array.from({ length: count }, (_, i) => makeRecord(i + 1)));
  const session = new MqttSession({
    url: broker.url,
    clientId: deviceId,
    reconnectPeriodMs: 100,
    keepaliveSeconds: 5,
  });
  cleanups.push(() => session.end());
  const worker = new SyncWorker({
    session,
    source: outbox,
    deviceId,
    signer: { secretKey: deviceKeys.secretKey },
    cloudPublicKeys: new Map([[keyId(cloudKeys.publicKey), cloudKeys.publicKey]]),
    version: '0.1.0-test',
    maxMessageBytes: 8192,
    maxInFlightBatches: 4,
    ackTimeoutMs: 300,
    maxBackoffMs: 1000,
    statusThrottleMs: 50,
    drainTimeoutMs: 0,
    ...options,
  });
  cleanups.push(() => worker.stop({ drainTimeoutMs: 0 }));
  const deviceKeyLookup = (kid: string): Uint8Array | undefined =>
    kid === keyId(deviceKeys.publicKey) ? deviceKeys.publicKey : undefined;
  return { outbox, worker, cloud, session, tap, deviceId, cloudKeys, deviceKeyLookup };
}

function expectExactlyOnce(outbox: MemoryOutbox, cloud: CloudCore, count: number): void {
  expect(outbox.violations).toEqual([]);
  expect(outbox.count('acked')).toBe(count);
  for (const row of outbox.rows.values()) expect(row.applied).toBe(1);
  expect(cloud.counters().accepted).toBe(count);
  expect(cloud.records().size).toBe(count);
  for (const entry of cloud.records().values()) expect(entry.status).toBe('accepted');
}

for (const kind of brokers) {
  describe.skipIf(!kind.available)(`SyncWorker over ${kind.name}`, () => {
    it('drains 500 records in batches ≤ maxMessageBytes, each key acked exactly once', async () => {
      const broker = await kind.start();
      cleanups.push(() => broker.stop());
      const { outbox, worker, cloud, session, tap, deviceId, deviceKeyLookup } = await harness(
        broker,
        500,
      );
      const acked: string[] = [];
      worker.on('acked', (results) => acked.push(...results.map((r) => r.key)));
      worker.start();
      session.connect();
      await waitFor(() => outbox.count('acked') === 500, '500 records acked');

      expectExactlyOnce(outbox, cloud, 500);
      expect(acked).toHaveLength(500);
      const uplinks = tap.filter((m) => m.topic === topics('pos/v1', deviceId).records);
      expect(uplinks.length).toBeGreaterThan(500 / 20); // it really batched under the 8 KiB limit
      for (const message of uplinks) expect(message.payload.length).toBeLessThanOrEqual(8192);
      // First sends of the batches, in publish order, carry seq 1..500 in order.
      const seen = new Set<string>();
      const seqs: number[] = [];
      for (const message of uplinks) {
        const batch = openEnvelope(message.payload, { keys: deviceKeyLookup }, RecordsBatchSchema);
        if (seen.has(batch.batch)) continue;
        seen.add(batch.batch);
        seqs.push(...batch.records.map((r) => r.seq));
      }
      expect(seqs).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
      expect(worker.stats().maxInFlightSeen).toBeLessThanOrEqual(4);
      // Every result applied once, in at least one and at most one commit per batch.
      const { acksApplied, ackCommits, batches } = worker.stats();
      expect(acksApplied).toBe(500);
      expect(ackCommits).toBeGreaterThanOrEqual(1);
      expect(ackCommits).toBeLessThanOrEqual(batches);
      // After the first (full) batch the worker asks only for about what fits, not 1000 rows.
      expect(outbox.limits[0]).toBe(1000);
      expect(Math.max(...outbox.limits.slice(1))).toBeLessThan(100);
      // The retained status says online with an empty queue once drained.
      await waitFor(() => cloud.deviceStatus(deviceId)?.queue.depth === 0, 'status depth 0', 5000);
      expect(cloud.deviceStatus(deviceId)?.state).toBe('online');
    });

    it('lost acks: the batch is resent after ackTimeoutMs, the cloud answers duplicate, one effect', async () => {
      const broker = await kind.start();
      cleanups.push(() => broker.stop());
      const { outbox, worker, cloud, session } = await harness(broker, 60);
      cloud.setFaults({ dropAcks: 3 });
      worker.start();
      session.connect();
      await waitFor(() => outbox.count('acked') === 60, '60 records acked');
      expectExactlyOnce(outbox, cloud, 60);
      expect(cloud.counters().acksDropped).toBe(3);
      expect(cloud.counters().duplicates).toBeGreaterThan(0);
      expect(worker.stats().resends).toBeGreaterThanOrEqual(3);
      // The agent learns the ORIGINAL outcome even from a duplicate answer.
      const duplicates = [...outbox.rows.values()].filter((r) => r.result?.status === 'duplicate');
      expect(duplicates.length).toBeGreaterThan(0);
      for (const row of duplicates) expect(row.result?.outcome).toBe('approved');
    });

    it('duplicated and reordered acks are applied once', async () => {
      const broker = await kind.start();
      cleanups.push(() => broker.stop());
      const { outbox, worker, cloud, session } = await harness(broker, 120);
      cloud.setFaults({ duplicateAcks: true, reorderWindow: 3, reorderFlushMs: 50 });
      worker.start();
      session.connect();
      await waitFor(() => outbox.count('acked') === 120, '120 records acked');
      expectExactlyOnce(outbox, cloud, 120);
      expect(worker.stats().unknownBatchAcks).toBeGreaterThan(0);
    });

    it('broker restart mid-drain: everything is acked, once', async () => {
      const broker = await kind.start();
      cleanups.push(() => broker.stop());
      const { outbox, worker, cloud, session } = await harness(broker, 300, {
        maxPublishesPerSecond: 40,
      });
      const states: string[] = [];
      let ackedWhenOffline: number | undefined;
      let ackedWhenBackOnline: number | undefined;
      worker.on('state', (state) => {
        states.push(state);
        if (state === 'offline') ackedWhenOffline = outbox.count('acked');
        else if (ackedWhenOffline !== undefined) ackedWhenBackOnline = outbox.count('acked');
      });
      // The restart starts synchronously inside the ack callback that crosses 60 acked records,
      // not after a poll: however slow the machine, the broker goes down while most of the 300
      // records are still pending or in flight (the rate cap keeps the rest ≥ 0.4 s away).
      let ackedAtRestart: number | undefined;
      let restarted: Promise<void> | undefined;
      worker.on('acked', () => {
        if (restarted !== undefined || outbox.count('acked') < 60) return;
        ackedAtRestart = outbox.count('acked');
        restarted = broker.restart(300);
      });
      worker.start();
      session.connect();
      await waitFor(() => restarted !== undefined, 'the first 60 acks');
      await restarted;
      await waitFor(
        () => outbox.count('acked') === 300,
        '300 records acked after the restart',
        20_000,
      );
      expectExactlyOnce(outbox, cloud, 300);
      expect(states).toEqual(['online', 'offline', 'online']);
      // The broker really went down mid-drain: records were outstanding when the link dropped,
      // and the rest were acked only after the reconnect.
      expect(ackedAtRestart).toBeGreaterThanOrEqual(60);
      expect(ackedAtRestart).toBeLessThan(300);
      expect(ackedWhenOffline).toBeLessThan(300);
      expect(ackedWhenBackOnline).toBe(ackedWhenOffline);
    });

    it('a downlink with a bad signature is ignored, counted, and never applied', async () => {
      const broker = await kind.start();
      cleanups.push(() => broker.stop());
      const { outbox, worker, cloud, session, deviceId, cloudKeys } = await harness(broker, 10);
      const refused: string[] = [];
      worker.on('rejected-downlink', ({ error }) => refused.push(error.code));
      cloud.setFaults({ dropAcks: true });
      const sent = new Promise<{ batchId: string; records: number }>((resolve) =>
        worker.once('batch-sent', (event) => resolve(event)),
      );
      worker.start();
      session.connect();
      const { batchId, records } = await sent;
      // The first batch holds the first `records` records in seq order.
      const inBatch = [...outbox.rows.values()]
        .sort((a, b) => a.record.seq - b.record.seq)
        .slice(0, records);
      const forgedAcks = {
        batch: batchId,
        results: inBatch.map((r) => ({ key: r.record.key, status: 'accepted' as const })),
      };
      const attacker = nacl.sign.keyPair();
      const acksTopic = topics('pos/v1', deviceId).acks;
      // Signed by another key under the cloud's key id; and one with an unknown key id.
      await cloud.publishRaw(
        acksTopic,
        signEnvelope(forgedAcks, {
          kid: keyId(cloudKeys.publicKey),
          secretKey: attacker.secretKey,
        }),
      );
      await cloud.publishRaw(
        acksTopic,
        signEnvelope(forgedAcks, { secretKey: attacker.secretKey }),
      );
      await cloud.publishRaw(acksTopic, 'not an envelope');
      await waitFor(() => refused.length === 3, 'three refused downlinks');
      expect(refused.sort()).toEqual(['POS310', 'POS311', 'POS312']);
      expect(worker.stats().rejectedDownlinks).toBe(3);
      expect(outbox.count('acked')).toBe(0);
      cloud.clearFaults();
      await waitFor(() => outbox.count('acked') === 10, 'the real acks after the resend');
      expectExactlyOnce(outbox, cloud, 10);
    });

    it('the in-flight window never exceeds maxInFlightBatches', async () => {
      const broker = await kind.start();
      cleanups.push(() => broker.stop());
      const { outbox, worker, cloud, session } = await harness(broker, 200, {
        maxInFlightBatches: 2,
        maxRecordsPerBatch: 5,
        ackTimeoutMs: 2000,
        maxBackoffMs: 4000,
      });
      cloud.setFaults({ ackDelayMs: 20 });
      worker.start();
      session.connect();
      await waitFor(() => outbox.count('acked') === 200, '200 records acked');
      expectExactlyOnce(outbox, cloud, 200);
      expect(worker.stats().batches).toBe(40);
      expect(worker.stats().maxInFlightSeen).toBe(2);
    });
  });
}

describe('SyncWorker over aedes: timing, status, authorization, commands', () => {
  it('resends exactly at the backoff computed with the injected clock and random', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const clock = new FakeClock(FIXTURE_NOW);
    const { outbox, worker, cloud, session, tap } = await harness(broker, 5, {
      clock,
      random: () => 0.5,
      ackTimeoutMs: 1000,
      jitterRatio: 0.2,
      maxBackoffMs: 60_000,
    });
    cloud.setFaults({ dropAcks: true });
    const sent: number[] = [];
    worker.on('batch-sent', ({ attempt }) => sent.push(attempt));
    worker.start();
    session.connect();
    await waitFor(() => sent.length === 1, 'the first publish');
    // A resend is published synchronously from the timer that FakeClock.advance fires, so the
    // publish count is exact right after advance(); no sleep needed, nothing to wait out.
    clock.advance(1099); // first wait: 1000 · (1 + 0.2 · 0.5) = 1100 ms
    expect(worker.stats().publishes).toBe(1);
    expect(clock.pending()).toContain(1); // the resend timer, armed at exactly 1100 ms
    clock.advance(1);
    expect(worker.stats()).toMatchObject({ publishes: 2, resends: 1 });
    await waitFor(() => sent.length === 2, 'the first resend');
    clock.advance(2199); // second wait: 2000 · 1.1 = 2200 ms
    expect(worker.stats().publishes).toBe(2);
    expect(clock.pending()).toContain(1);
    clock.advance(1);
    expect(worker.stats()).toMatchObject({ publishes: 3, resends: 2 });
    await waitFor(() => sent.length === 3, 'the second resend');
    // The broker relayed exactly those three publishes of the batch.
    const uplinks = (): number => tap.filter((m) => m.topic === worker.topics.records).length;
    await waitFor(() => uplinks() >= 3, 'three uplinks at the tap');
    expect(uplinks()).toBe(3);
    expect(sent).toEqual([1, 2, 3]);
    cloud.clearFaults();
    clock.advance(4400);
    await waitFor(() => outbox.count('acked') === 5, 'acked after the faults clear');
    expectExactlyOnce(outbox, cloud, 5);
  });

  it('a silent cloud gets only the oldest batch again (a probe); the held batches follow once it answers', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const clock = new FakeClock(FIXTURE_NOW);
    const { outbox, worker, cloud, session } = await harness(broker, 100, {
      clock,
      random: () => 0,
      ackTimeoutMs: 1000,
      jitterRatio: 0,
      maxBackoffMs: 8000,
    });
    cloud.setFaults({ dropAcks: true });
    const sent: { batchId: string; attempt: number }[] = [];
    worker.on('batch-sent', ({ batchId, attempt }) => sent.push({ batchId, attempt }));
    worker.start();
    session.connect();
    await waitFor(() => sent.length === 4, 'four batches in flight');
    const first = sent[0]!.batchId;
    // One silent minute, the clock advanced in steps of 100 ms.
    for (let t = 0; t < 60_000; t += 100) clock.advance(100);
    await waitFor(() => sent.length === worker.stats().publishes, 'every publish PUBACKed');
    const resent = sent.filter((s) => s.attempt > 1);
    // 1 s, 3 s, 7 s, then every 8 s: 9 probes, all of the oldest batch.
    expect(resent.map((s) => s.batchId)).toEqual(Array.from({ length: 9 }, () => first));
    expect(worker.stats().resends).toBe(9);
    // The cloud answers again: every record is acked, each applied once.
    cloud.clearFaults();
    for (let t = 0; t < 30_000 && outbox.count('acked') < 100; t += 100) {
      clock.advance(100);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => outbox.count('acked') === 100, 'every record acked');
    expectExactlyOnce(outbox, cloud, 100);
  });

  it('a store error while reading the outbox is logged, nothing is sent, the retry sends it', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const clock = new FakeClock(FIXTURE_NOW);
    const errors: string[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (_fields: object, message: string) => errors.push(message),
    };
    const { outbox, worker, cloud, session } = await harness(broker, 0, {
      clock,
      logger,
      ackTimeoutMs: 1000,
    });
    let failures = 1;
    const nextPending = outbox.nextPending.bind(outbox);
    outbox.nextPending = (limit, afterSeq) => {
      if (failures > 0 && outbox.count('pending') > 0) {
        failures -= 1;
        throw new Error('SQLITE_IOERR: disk I/O error');
      }
      return nextPending(limit, afterSeq);
    };
    worker.start();
    session.connect();
    await waitFor(() => worker.online, 'online');
    outbox.add(makeRecord(1));
    worker.notify(); // the pump runs from a microtask: a throw there would crash the process
    await waitFor(
      () => errors.some((m) => m.includes('could not be read')),
      'the logged store error',
    );
    expect(failures).toBe(0);
    expect(worker.stats().publishes).toBe(0);
    expect(outbox.count('pending')).toBe(1);
    clock.advance(1000);
    await waitFor(() => outbox.count('acked') === 1, 'the record acked after the retry');
    expectExactlyOnce(outbox, cloud, 1);
  });

  it('polls the outbox every pollIntervalMs while online: a record made pending without notify() is sent (B15)', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const clock = new FakeClock(FIXTURE_NOW);
    const { outbox, worker, cloud, session } = await harness(broker, 0, {
      clock,
      pollIntervalMs: 1000,
    });
    await expect(harness(broker, 0, { pollIntervalMs: 99 })).rejects.toThrow(
      /pollIntervalMs is 99 ms, must be a number ≥ 100 ms/,
    );
    worker.start();
    session.connect();
    await waitFor(() => worker.online, 'online');
    clock.advance(50); // the status throttle; the poll timer is armed from the CONNACK
    // `pos-agent queue --retry` from another process: pending in the store, no notify().
    outbox.add(makeRecord(1));
    // The pump runs synchronously from the timer FakeClock.advance fires: counts are exact.
    clock.advance(949);
    expect(worker.stats().publishes).toBe(0);
    expect(outbox.count('pending')).toBe(1);
    clock.advance(1);
    expect(worker.stats().publishes).toBe(1);
    expect(worker.stats().inFlightBatches).toBe(1);
    await waitFor(() => outbox.count('acked') === 1, 'the polled record acked');
    expectExactlyOnce(outbox, cloud, 1);
    // Re-armed after each run.
    outbox.add(makeRecord(2));
    clock.advance(1000);
    expect(worker.stats().publishes).toBe(2);
    await waitFor(() => outbox.count('acked') === 2, 'the second polled record acked');
    // stop() clears the poll timer (and every other timer of the worker).
    await worker.stop({ drainTimeoutMs: 0 });
    expect(clock.pending()).toEqual([]);
  });

  it('publishes a signed retained status; the last will says offline when the link dies', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const { worker, cloud, session, deviceId, outbox, deviceKeyLookup } = await harness(broker, 3);
    cloud.setFaults({ dropAcks: true });
    worker.start();
    session.connect();
    await waitFor(() => cloud.deviceStatus(deviceId)?.state === 'online', 'online status');
    expect(cloud.deviceStatus(deviceId)?.version).toBe('0.1.0-test');
    expect(outbox.queueStats().depth).toBe(3);
    // Kill the device's socket on the broker side: no DISCONNECT, so the will is published.
    const aedes = broker.aedes as unknown as {
      clients: Record<string, { conn: { destroy(): void } }>;
    };
    aedes.clients[deviceId]?.conn.destroy();
    await waitFor(() => cloud.deviceStatus(deviceId)?.state === 'offline', 'offline will');
    expect(cloud.deviceStatus(deviceId)?.queue.depth).toBe(3);
    // The retained message is the signed will: a late subscriber sees it and can verify it.
    const late = new MqttSession({ url: broker.url, clientId: `late-${deviceId}`, clean: true });
    cleanups.push(() => late.end());
    const retained: Buffer[] = [];
    late.on('message', (_t, payload) => retained.push(payload));
    await late.subscribe(topics('pos/v1', deviceId).status);
    late.connect();
    await waitFor(() => retained.length > 0, 'the retained status');
    const status = openEnvelope(
      retained[0] ?? Buffer.alloc(0),
      { keys: deviceKeyLookup },
      StatusSchema,
    );
    expect(['online', 'offline']).toContain(status.state);
  });

  it('notify() drains after the pending microtasks: a payment answer goes out before its record is read', async () => {
    // Regression (issue 9, POST p50): the drain ran in a microtask queued by notify(), ahead of
    // the API answer's own promise continuations, so every answer waited for a read, pack, sign
    // and publish. The drain now runs in the event loop's check phase (setImmediate).
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const { outbox, worker, cloud, session } = await harness(broker, 0);
    worker.start();
    session.connect();
    await waitFor(() => worker.online, 'online');
    await new Promise((resolve) => setImmediate(resolve));
    const reads = outbox.limits.length;
    outbox.add(makeRecord(1));
    worker.notify();
    // What an answer's continuations are: microtasks. None of them may find the drain done.
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(outbox.limits.length).toBe(reads);
    await new Promise((resolve) => setImmediate(resolve));
    expect(outbox.limits.length).toBeGreaterThan(reads);
    await waitFor(() => cloud.counters().accepted === 1, 'the record accepted');
  });

  it('authorizes online; a lost response times out with POS323', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const { worker, cloud, session } = await harness(broker, 0);
    worker.start();
    session.connect();
    await session.whenConnected();
    const { key, payment, card } = makeRecord(7);
    const approved = await worker.authorize({ key, payment, card }, { timeoutMs: 2000 });
    expect(approved).toMatchObject({ key, outcome: 'approved' });
    const declinedRecord = makeRecord(8, {
      payment: { ...makeRecord(8).payment, amountMinor: 1051 },
    });
    await expect(
      worker.authorize(
        { key: declinedRecord.key, payment: declinedRecord.payment, card },
        { timeoutMs: 2000 },
      ),
    ).resolves.toMatchObject({ outcome: 'declined', declineCode: '51' });
    cloud.setFaults({ dropAuthResponses: true });
    const lost = makeRecord(9);
    await expect(
      worker.authorize({ key: lost.key, payment: lost.payment, card }, { timeoutMs: 200 }),
    ).rejects.toThrow(/POS323/);
    // The cloud did decide; the stored record later gets the same outcome as a duplicate.
    expect(cloud.records().get(lost.key)?.outcome).toBe('approved');
  });

  it('authorize while the link is down answers POS325 (not sent, not ambiguous); nothing reaches the cloud later', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const { worker, cloud, session, tap } = await harness(broker, 0);
    worker.start();
    const { key, payment, card } = makeRecord(11);
    const error = await worker.authorize({ key, payment, card }, { timeoutMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(error?.code).toBe('POS325');
    session.connect();
    await session.whenConnected();
    // Observable: the worker's status reaches the tap after the connect; no up/auth before it.
    await waitFor(() => tap.some((m) => m.topic.endsWith('/status')), 'the online status');
    expect(tap.filter((m) => m.topic.endsWith('/up/auth'))).toEqual([]);
    expect(cloud.records().has(key)).toBe(false);
  });

  it('accepts a fresh command once; a replay is refused (POS321) and counted', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const { worker, cloud, session, deviceId, cloudKeys } = await harness(broker, 0);
    const commands: string[] = [];
    const refused: string[] = [];
    worker.on('command', (c) => commands.push(`${c.id}:${c.command.type}`));
    worker.on('rejected-downlink', ({ error }) => refused.push(error.code));
    worker.start();
    session.connect();
    await session.whenConnected();
    const sent = await cloud.sendCommand(deviceId, { type: 'set_log_level', level: 'debug' });
    await waitFor(() => commands.length === 1, 'the command');
    expect(commands).toEqual([`${sent.id}:set_log_level`]);
    const replay = signEnvelope(sent, { secretKey: cloudKeys.secretKey });
    await cloud.publishRaw(topics('pos/v1', deviceId).commands, replay);
    const expired = signEnvelope(
      {
        id: 'old-1',
        issuedAt: '2020-01-01T00:00:00.000Z',
        expiresAt: '2020-01-01T00:01:00.000Z',
        command: { type: 'request_diagnostics' },
      },
      { secretKey: cloudKeys.secretKey },
    );
    await cloud.publishRaw(topics('pos/v1', deviceId).commands, expired);
    await waitFor(() => refused.length === 2, 'two refusals');
    expect(refused).toEqual(['POS321', 'POS320']);
    expect(commands).toHaveLength(1);
  });
});
