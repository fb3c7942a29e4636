/**
 * Cloud commands end to end over a real broker (aedes in-process): the cloud core simulator
 * signs commands, the agent's SyncWorker verifies them and agent/cloud-commands.ts applies them
 * and answers on up/command-results. Tampered, expired, replayed and wrongly signed commands are
 * refused with their code and nothing is applied; tampered and wrongly signed uplinks are refused
 * by the cloud core.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyOfflineLimitOverrides,
  loadOfflineLimitOverrides,
  OFFLINE_LIMITS_FILE,
  SEEN_COMMANDS_FILE,
} from '../../agent/command-files.js';
import { CloudCommands } from '../../agent/cloud-commands.js';
import { generateDevelopmentKeys, loadTerminalKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import type { Logger } from '../../agent/logger.js';
import { keyId, openEnvelope, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import {
  type Command,
  type CommandResult,
  CommandResultSchema,
  CommandSchema,
  StatusSchema,
  topics,
} from '../../cloud-sync/schemas.js';
import { SyncWorker } from '../../cloud-sync/sync-worker.js';
import type { AgentError } from '../../common/agent-error.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { makeRecord } from './fixtures.js';

const DEVICE = 'cmd-lane-1';

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('cloud commands: signed, expiring, applied once, answered upstream', () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let cloud: CloudCore;
  let cloudKeys: { cloudSecretKey: Uint8Array };
  let session: MqttSession;
  let listener: MqttSession;
  let store: PaymentStore;
  let worker: SyncWorker;
  let commands: CloudCommands;
  let logger: Logger;
  let devicePublicKeys: Map<string, Uint8Array>;
  const results: CommandResult[] = [];
  const uplinkKids: string[] = [];
  const refusedDownlinks: AgentError[] = [];

  beforeEach(async () => {
    results.length = 0;
    uplinkKids.length = 0;
    refusedDownlinks.length = 0;
    dir = mkdtempSync(path.join(tmpdir(), 'pos-commands-'));
    const keysDir = path.join(dir, 'keys');
    const { terminal, cloud: cloudSide } = generateDevelopmentKeys(keysDir);
    cloudKeys = cloudSide;
    devicePublicKeys = new Map([[keyId(terminal.devicePublicKey), terminal.devicePublicKey]]);
    broker = await EmbeddedBroker.start();
    cloud = await CloudCore.start({
      brokerUrl: broker.url,
      signer: { secretKey: cloudSide.cloudSecretKey },
    });
    cloud.registerDevice(DEVICE, terminal.devicePublicKey);
    // The cloud's command console: verifies each result with the device keys it knows.
    listener = new MqttSession({ url: broker.url, clientId: 'cmd-console', clean: true });
    listener.on('message', (topic, payload) => {
      const kid = (JSON.parse(payload.toString()) as { kid: string }).kid;
      uplinkKids.push(`${topic.split('/').slice(3).join('/')} ${kid}`);
      if (topic.endsWith('/up/command-results'))
        results.push(openEnvelope(payload, { keys: devicePublicKeys }, CommandResultSchema));
    });
    await listener.subscribe(`pos/v1/${DEVICE}/#`);
    listener.connect();
    await listener.whenConnected();

    store = PaymentStore.open({ path: path.join(dir, 'agent.db') });
    session = new MqttSession({ url: broker.url, clientId: DEVICE, reconnectPeriodMs: 100 });
    worker = new SyncWorker({
      session,
      source: store,
      deviceId: DEVICE,
      signer: { secretKey: terminal.deviceSecretKey },
      cloudPublicKeys: new Map([[keyId(terminal.cloudPublicKey), terminal.cloudPublicKey]]),
      version: '0.0.0-test',
      statusThrottleMs: 0,
    });
    worker.on('rejected-downlink', ({ error }) => refusedDownlinks.push(error));
    logger = createLogger({ file: path.join(dir, 'agent.log'), level: 'info' });
    commands = new CloudCommands({
      source: worker,
      publish: (topic, payload) => session.publish(topic, payload),
      deviceSecretKey: terminal.deviceSecretKey,
      keysDir,
      dataDir: dir,
      logger,
      diagnostics: () => ({ status: { deviceId: DEVICE, queue: store.queueStats() } }),
    });
    worker.start();
    session.connect();
    await session.whenConnected();
  });

  afterEach(async () => {
    await worker.stop();
    await session.end();
    await listener.end();
    await cloud.stop();
    await broker.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const signed = (command: Command, secretKey = cloudKeys.cloudSecretKey): Buffer =>
    signEnvelope(command, { secretKey }, CommandSchema);
  const fresh = (body: Command['command'], id = `cmd-${Math.random()}`): Command => ({
    id,
    deviceId: DEVICE,
    issuedAt: new Date(Date.now() - 1000).toISOString(),
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    command: body,
  });
  const commandTopic = topics('pos/v1', DEVICE).commands;

  it('set_log_level changes the logger level and reports applied', async () => {
    const sent = await cloud.sendCommand(DEVICE, { type: 'set_log_level', level: 'debug' });
    await until(() => results.some((r) => r.id === sent.id), 'the result');
    expect(logger.level).toBe('debug');
    expect(results.find((r) => r.id === sent.id)).toMatchObject({
      status: 'applied',
      type: 'set_log_level',
    });
  });

  it('set_offline_limits merges into the overrides file, which wins over the config offline section', async () => {
    await cloud.sendCommand(DEVICE, {
      type: 'set_offline_limits',
      limits: { perTransactionLimitMinor: { EUR: 5000 }, maxCount: 20 },
    });
    const live: Array<Record<string, unknown>> = [];
    commands.on('offline-limits', (limits) => live.push(limits));
    const second = await cloud.sendCommand(DEVICE, {
      type: 'set_offline_limits',
      limits: { maxCount: 30, perTransactionLimitMinor: { USD: 3000 } },
    });
    await until(() => results.some((r) => r.id === second.id), 'the result');
    const overrides = loadOfflineLimitOverrides(dir);
    expect(overrides).toEqual({
      perTransactionLimitMinor: { EUR: 5000, USD: 3000 },
      maxCount: 30,
    });
    expect(live.at(-1)).toEqual(overrides);
    const mode = (await import('node:fs')).statSync(path.join(dir, OFFLINE_LIMITS_FILE)).mode;
    expect(mode & 0o777).toBe(0o600);
    // Merged over the config's offline section: a cloud value wins, the rest stays.
    const policy = {
      perTransactionLimitMinor: { EUR: 10_000, GBP: 10_000 },
      totalLimitMinor: { EUR: 500_000 },
      maxCount: 500,
      forwardingDeadlineHours: 72,
      warningBeforeDeadlineHours: 12,
    };
    expect(applyOfflineLimitOverrides(policy, overrides)).toEqual({
      perTransactionLimitMinor: { EUR: 5000, GBP: 10_000, USD: 3000 },
      totalLimitMinor: { EUR: 500_000 },
      maxCount: 30,
      forwardingDeadlineHours: 72,
      warningBeforeDeadlineHours: 12,
    });
  });

  it('request_diagnostics answers status and a summary, signed by the device', async () => {
    const sent = await cloud.sendCommand(DEVICE, { type: 'request_diagnostics' });
    await until(() => results.some((r) => r.id === sent.id), 'the result');
    const result = results.find((r) => r.id === sent.id);
    expect(result?.status).toBe('applied');
    expect(result?.data?.status).toMatchObject({ deviceId: DEVICE });
  });

  it('rotate_signing_key: the new key is announced under the old one, then signs every uplink', async () => {
    const oldKid = [...devicePublicKeys.keys()][0] as string;
    const before = readFileSync(path.join(dir, 'keys', 'device-signing.key'), 'utf8');
    const sent = await cloud.sendCommand(DEVICE, { type: 'rotate_signing_key' });
    await until(() => results.some((r) => r.id === sent.id), 'the announcement');
    const announcement = results.find((r) => r.id === sent.id);
    // It verified with the OLD key (the console only knows that one so far).
    expect(announcement?.data?.previousKid).toBe(oldKid);
    const newKey = new Uint8Array(Buffer.from(announcement?.data?.publicKey as string, 'base64'));
    const newKid = keyId(newKey);
    expect(announcement?.data?.kid).toBe(newKid);
    expect(readFileSync(path.join(dir, 'keys', 'device-signing.key'), 'utf8')).not.toBe(before);
    expect(keyId(loadTerminalKeys(path.join(dir, 'keys')).devicePublicKey)).toBe(newKid);

    // The cloud learns the new key from the announcement; the next uplinks use it.
    devicePublicKeys.set(newKid, newKey);
    cloud.registerDevice(DEVICE, newKey);
    uplinkKids.length = 0;
    const diag = await cloud.sendCommand(DEVICE, { type: 'request_diagnostics' });
    await until(() => results.some((r) => r.id === diag.id), 'a result under the new key');
    expect(uplinkKids.filter((u) => u.startsWith('up/command-results'))).toEqual([
      `up/command-results ${newKid}`,
    ]);
  });

  it('refuses a tampered command (POS311): not applied, counted, not answered', async () => {
    const envelope = JSON.parse(
      signed(fresh({ type: 'set_log_level', level: 'info' })).toString(),
    ) as { body: string };
    envelope.body = envelope.body.replace('"info"', '"trace"');
    await cloud.publishRaw(commandTopic, JSON.stringify(envelope));
    await until(() => commands.counters().refused.POS311 === 1, 'the refusal');
    expect(logger.level).toBe('info');
    expect(refusedDownlinks.map((e) => e.code)).toEqual(['POS311']);
    expect(results).toEqual([]);
  });

  it('refuses a command signed by another key (POS312 unknown key id, POS311 under the pinned id)', async () => {
    const rogue = nacl.sign.keyPair();
    await cloud.publishRaw(
      commandTopic,
      signed(fresh({ type: 'set_log_level', level: 'trace' }), rogue.secretKey),
    );
    // Same key id as the pinned cloud key, but signed by the rogue key.
    await cloud.publishRaw(
      commandTopic,
      signEnvelope(
        fresh({ type: 'set_log_level', level: 'trace' }),
        { secretKey: rogue.secretKey, kid: keyId(cloudKeys.cloudSecretKey.subarray(32)) },
        CommandSchema,
      ),
    );
    await until(() => refusedDownlinks.length === 2, 'both refusals');
    expect(refusedDownlinks.map((e) => e.code).sort()).toEqual(['POS311', 'POS312']);
    expect(logger.level).toBe('info');
    expect(commands.counters()).toMatchObject({ applied: 0, refused: { POS311: 1, POS312: 1 } });
    expect(results).toEqual([]);
  });

  it('refuses an expired command (POS320) and reports it refused; nothing applied', async () => {
    const expired: Command = {
      id: 'cmd-expired-1',
      issuedAt: new Date(Date.now() - 120_000).toISOString(),
      expiresAt: new Date(Date.now() - 60_000).toISOString(),
      command: { type: 'set_log_level', level: 'trace' },
    };
    await cloud.publishRaw(commandTopic, signed(expired));
    await until(() => results.some((r) => r.id === 'cmd-expired-1'), 'the refusal result');
    expect(results.find((r) => r.id === 'cmd-expired-1')).toMatchObject({
      status: 'refused',
      code: 'POS320',
      type: 'set_log_level',
    });
    expect(logger.level).toBe('info');
    expect(commands.counters()).toMatchObject({ applied: 0, refused: { POS320: 1 } });
  });

  it('applies a command once and refuses its replay (POS321)', async () => {
    const command = fresh({ type: 'set_offline_limits', limits: { maxCount: 7 } }, 'cmd-once');
    await cloud.publishRaw(commandTopic, signed(command));
    await until(() => results.some((r) => r.id === 'cmd-once'), 'the first result');
    // The replay carries other limits in a fresh file: if it were applied, the file would change.
    rmSync(path.join(dir, OFFLINE_LIMITS_FILE));
    await cloud.publishRaw(commandTopic, signed(command));
    await until(() => results.filter((r) => r.id === 'cmd-once').length === 2, 'the refusal');
    expect(results.filter((r) => r.id === 'cmd-once').map((r) => r.status)).toEqual([
      'applied',
      'refused',
    ]);
    expect(results.at(-1)?.code).toBe('POS321');
    expect(existsSync(path.join(dir, OFFLINE_LIMITS_FILE))).toBe(false);
  });

  it('after a restart on the same data dir, a replay of an applied, still-valid command is refused (POS321)', async () => {
    const command = fresh({ type: 'set_log_level', level: 'debug' }, 'cmd-restart');
    await cloud.publishRaw(commandTopic, signed(command));
    await until(() => results.some((r) => r.id === 'cmd-restart'), 'the first result');
    expect(logger.level).toBe('debug');
    const file = path.join(dir, SEEN_COMMANDS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Restart: a new session, worker and CloudCommands (fresh memory) on the same data dir.
    await worker.stop();
    await session.end();
    const terminal = loadTerminalKeys(path.join(dir, 'keys'));
    session = new MqttSession({ url: broker.url, clientId: DEVICE, reconnectPeriodMs: 100 });
    worker = new SyncWorker({
      session,
      source: store,
      deviceId: DEVICE,
      signer: { secretKey: terminal.deviceSecretKey },
      cloudPublicKeys: new Map([[keyId(terminal.cloudPublicKey), terminal.cloudPublicKey]]),
      version: '0.0.0-test',
      statusThrottleMs: 0,
    });
    logger.level = 'info';
    commands = new CloudCommands({
      source: worker,
      publish: (topic, payload) => session.publish(topic, payload),
      deviceSecretKey: terminal.deviceSecretKey,
      keysDir: path.join(dir, 'keys'),
      dataDir: dir,
      logger,
      diagnostics: () => ({ status: {} }),
    });
    worker.start();
    session.connect();
    await session.whenConnected();
    await cloud.publishRaw(commandTopic, signed(command));
    await until(() => results.filter((r) => r.id === 'cmd-restart').length === 2, 'the refusal');
    expect(results.filter((r) => r.id === 'cmd-restart').map((r) => r.status)).toEqual([
      'applied',
      'refused',
    ]);
    expect(results.at(-1)?.code).toBe('POS321');
    expect(logger.level).toBe('info');
    // A new command is still accepted, and the expired ids are pruned from the file.
    const next = await cloud.sendCommand(DEVICE, { type: 'request_diagnostics' });
    await until(() => results.some((r) => r.id === next.id), 'the next result');
    const ids = (JSON.parse(readFileSync(file, 'utf8')) as { id: string }[]).map((e) => e.id);
    expect(ids).toEqual(expect.arrayContaining(['cmd-restart', next.id]));
  });

  it('a command whose handling throws is logged; the queue stays alive for the next one', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // A 'result' listener that throws for the first command: #apply and its failure report throw.
      commands.on('result', (result) => {
        if (result.id === 'cmd-throws') throw new Error('listener bug');
      });
      await cloud.publishRaw(
        commandTopic,
        signed(fresh({ type: 'set_log_level', level: 'warn' }, 'cmd-throws')),
      );
      await cloud.publishRaw(
        commandTopic,
        signed(fresh({ type: 'set_log_level', level: 'debug' }, 'cmd-after')),
      );
      await until(() => results.some((r) => r.id === 'cmd-after'), 'the next command applied');
      await commands.idle();
      expect(logger.level).toBe('debug');
      expect(unhandled).toEqual([]);
      expect(commands.counters().failed).toBeGreaterThan(0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('the cloud core refuses tampered and wrongly signed uplinks, and applies none', async () => {
    const refused: string[] = [];
    cloud.on('refused', ({ error }) => refused.push(error.code));
    const deviceKeys = loadTerminalKeys(path.join(dir, 'keys'));
    const t = topics('pos/v1', DEVICE);
    const batch = { batch: 'b-forged', records: [makeRecord(1)] };
    const good = JSON.parse(
      signEnvelope(batch, { secretKey: deviceKeys.deviceSecretKey }).toString(),
    ) as { body: string };
    good.body = good.body.replace('"amountMinor":1100', '"amountMinor":1');
    await cloud.publishRaw(t.records, JSON.stringify(good));
    await cloud.publishRaw(
      t.records,
      signEnvelope(batch, { secretKey: nacl.sign.keyPair().secretKey }),
    );
    const status = signEnvelope(
      {
        state: 'online',
        at: new Date().toISOString(),
        version: 'x',
        queue: { depth: 0, oldestAt: null, dead: 0 },
      },
      { secretKey: nacl.sign.keyPair().secretKey, kid: keyId(deviceKeys.devicePublicKey) },
      StatusSchema,
    );
    await cloud.publishRaw(t.status, status);
    await until(() => refused.length === 3, 'three refusals');
    expect(refused.sort()).toEqual(['POS311', 'POS311', 'POS312']);
    expect(cloud.keys()).toEqual([]);
  });
});

describe('loadOfflineLimitOverrides: the overrides file is validated', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-overrides-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const load = (content: string): { overrides: object; warnings: object[] } => {
    writeFileSync(path.join(dir, OFFLINE_LIMITS_FILE), content);
    const warnings: object[] = [];
    const overrides = loadOfflineLimitOverrides(dir, { warn: (fields) => warnings.push(fields) });
    return { overrides, warnings };
  };

  it('a value of the wrong type is ignored with a POS507 warning; the config caps stay on', () => {
    for (const content of [
      '{"maxCount":"x"}',
      '{"maxCount":50,"perTransactionLimitMinor":{"EUR":-1}}',
      '{"unknownLimit":1}',
      '[1,2]',
      'not json',
    ]) {
      const { overrides, warnings } = load(content);
      expect(overrides, content).toEqual({});
      expect(warnings, content).toEqual([expect.objectContaining({ code: 'POS507' })]);
      const policy = {
        perTransactionLimitMinor: { EUR: 10_000 },
        totalLimitMinor: { EUR: 500_000 },
        maxCount: 500,
        forwardingDeadlineHours: 72,
      };
      expect(applyOfflineLimitOverrides(policy, overrides).maxCount).toBe(500);
    }
  });

  it('a valid file is applied without warning; a missing file is silent', () => {
    expect(load('{"maxCount":30,"totalLimitMinor":{"EUR":1000}}')).toEqual({
      overrides: { maxCount: 30, totalLimitMinor: { EUR: 1000 } },
      warnings: [],
    });
    rmSync(path.join(dir, OFFLINE_LIMITS_FILE));
    const warnings: object[] = [];
    expect(loadOfflineLimitOverrides(dir, { warn: (f) => warnings.push(f) })).toEqual({});
    expect(warnings).toEqual([]);
  });
});
