/**
 * Downlinks bounded (issue 11 item 5): a 2 MB signed command was applied, a command signed for
 * one device was accepted on another's topic, and one valid for 1,000 years was accepted. Now:
 * size over `maxMessageBytes` → POS314 (refused unread), another device or none → POS326,
 * lifetime over `maxCommandLifetimeMs` → POS327; every refusal counted. Over a real broker
 * (aedes in-process) with the real SyncWorker; the guard alone on a manual clock.
 */
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandGuard, checkDownlinkSize } from '../../cloud-sync/commands.js';
import { keyId, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { type Command, CommandSchema, topics } from '../../cloud-sync/schemas.js';
import { SyncWorker } from '../../cloud-sync/sync-worker.js';
import { isAgentError } from '../../common/agent-error.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FIXTURE_NOW, MemoryOutbox, waitFor } from './fixtures.js';

const codeOf = (fn: () => void): string | undefined => {
  try {
    fn();
  } catch (error) {
    return isAgentError(error) ? error.code : 'other';
  }
  return undefined;
};

describe('CommandGuard bounds', () => {
  const command = (over: Partial<Command>, clock: FakeClock): Command => ({
    id: `c-${Math.random()}`,
    deviceId: 'lane-a',
    issuedAt: new Date(clock.now()).toISOString(),
    expiresAt: new Date(clock.now() + 60_000).toISOString(),
    command: { type: 'request_diagnostics' },
    ...over,
  });

  it('refuses a command for another device or for none (POS326), accepts its own', () => {
    const clock = new FakeClock(FIXTURE_NOW);
    const guard = new CommandGuard({ clock, deviceId: 'lane-a' });
    expect(codeOf(() => guard.accept(command({ deviceId: 'lane-b' }, clock)))).toBe('POS326');
    const { deviceId: _omitted, ...unbound } = command({}, clock);
    expect(codeOf(() => guard.accept(unbound))).toBe('POS326');
    expect(codeOf(() => guard.accept(command({}, clock)))).toBeUndefined();
  });

  it('refuses a lifetime over the maximum (POS327): 1,000 years by default, 2 min when set', () => {
    const clock = new FakeClock(FIXTURE_NOW);
    const thousandYears = command(
      { expiresAt: new Date(clock.now() + 1000 * 365 * 86_400_000).toISOString() },
      clock,
    );
    expect(
      codeOf(() => new CommandGuard({ clock, deviceId: 'lane-a' }).accept(thousandYears)),
    ).toBe('POS327');
    const guard = new CommandGuard({ clock, deviceId: 'lane-a', maxLifetimeMs: 120_000 });
    const threeMinutes = command(
      { expiresAt: new Date(clock.now() + 180_000).toISOString() },
      clock,
    );
    expect(codeOf(() => guard.accept(threeMinutes))).toBe('POS327');
    // Control: exactly the maximum is accepted.
    const twoMinutes = command({ expiresAt: new Date(clock.now() + 120_000).toISOString() }, clock);
    expect(codeOf(() => guard.accept(twoMinutes))).toBeUndefined();
    expect(codeOf(() => new CommandGuard({ maxLifetimeMs: 10 }))).toBe('POS330');
  });

  it('checkDownlinkSize refuses one byte over the limit (POS314), not the limit itself', () => {
    expect(codeOf(() => checkDownlinkSize(new Uint8Array(1024), 1024))).toBeUndefined();
    expect(codeOf(() => checkDownlinkSize(new Uint8Array(1025), 1024))).toBe('POS314');
  });
});

describe('SyncWorker refuses unbounded downlinks, counted, over aedes', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a 2 MB signed command (POS314), another device’s (POS326) and a 1,000-year one (POS327)', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const cloudKeys = nacl.sign.keyPair();
    const deviceId = 'bounded-lane-1';
    const session = new MqttSession({
      url: broker.url,
      clientId: deviceId,
      reconnectPeriodMs: 100,
    });
    const worker = new SyncWorker({
      session,
      source: new MemoryOutbox([]),
      deviceId,
      signer: { secretKey: nacl.sign.keyPair().secretKey },
      cloudPublicKeys: new Map([[keyId(cloudKeys.publicKey), cloudKeys.publicKey]]),
      version: '0.0.0-test',
    });
    cleanups.push(() => worker.stop());
    const accepted: string[] = [];
    const refused: string[] = [];
    worker.on('command', (c) => accepted.push(c.id));
    worker.on('rejected-downlink', ({ error }) => refused.push(error.code));
    worker.start();
    session.connect();
    await session.whenConnected();
    const cloud = new MqttSession({ url: broker.url, clientId: 'bounds-cloud', clean: true });
    cleanups.push(() => cloud.end());
    cloud.connect();
    await cloud.whenConnected();

    const now = Date.now();
    const base = {
      deviceId,
      issuedAt: new Date(now - 1000).toISOString(),
      expiresAt: new Date(now + 60_000).toISOString(),
    };
    const send = (command: Command): Promise<void> =>
      cloud.publish(
        topics('pos/v1', deviceId).commands,
        signEnvelope(command, { secretKey: cloudKeys.secretKey }, CommandSchema),
        { qos: 1 },
      );
    // 2 MB: a signed, schema-valid command padded by a huge id-less field the schema strips.
    const huge = { ...base, id: 'huge-1', command: { type: 'request_diagnostics' as const } };
    await cloud.publish(
      topics('pos/v1', deviceId).commands,
      signEnvelope(
        { ...huge, padding: 'x'.repeat(2 * 1024 * 1024) },
        { secretKey: cloudKeys.secretKey },
      ),
      { qos: 1 },
    );
    await send({
      ...base,
      id: 'other-1',
      deviceId: 'bounded-lane-2',
      command: { type: 'request_diagnostics' },
    });
    await send({
      ...base,
      id: 'forever-1',
      expiresAt: new Date(now + 1000 * 365 * 86_400_000).toISOString(),
      command: { type: 'request_diagnostics' },
    });
    await send({ ...base, id: 'good-1', command: { type: 'request_diagnostics' } });
    await waitFor(() => accepted.length + refused.length === 4, 'four downlinks handled');
    expect(refused).toEqual(['POS314', 'POS326', 'POS327']);
    expect(accepted).toEqual(['good-1']);
    expect(worker.stats().rejectedDownlinks).toBe(3);
  });
});
