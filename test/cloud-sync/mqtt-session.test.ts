/**
 * MqttSession against a real broker (aedes in-process): an unacknowledged QoS 1 publish is
 * forgotten when the connection closes — its promise is rejected with POS302 and MQTT.js does not
 * replay it at the next CONNACK (architecture.md §5: never rely on MQTT.js's outgoing store; the sync
 * worker's own resend is the only one).
 */
import { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { waitFor } from './fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

describe('MqttSession: no replay from the outgoing store', () => {
  it('a publish without PUBACK when the broker stops is rejected (POS302) and not sent again after the restart', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const session = new MqttSession({
      url: broker.url,
      clientId: `replay-${process.pid}`,
      reconnectPeriodMs: 50,
    });
    cleanups.push(() => session.end());
    session.connect();
    await session.whenConnected();

    // The broker receives the PUBLISH but never answers it (no PUBACK) before it stops.
    const aedes = broker.aedes;
    if (aedes === undefined) throw new Error('broker not running');
    let held = false;
    aedes.authorizePublish = (_client, _packet, _callback) => {
      held = true; // the callback is never called: no PUBACK
    };
    const stale = session.publish('pos/v1/lane/up/auth', 'stale-auth-request', { qos: 1 });
    const outcome = stale.then(
      () => 'acked',
      (error: { code?: string }) => error.code,
    );
    await waitFor(() => held, 'the broker holding the publish');
    await broker.restart();
    const seen: string[] = [];
    broker.aedes?.on('publish', (packet, client) => {
      if (client !== null) seen.push(packet.payload.toString());
    });
    expect(await outcome).toBe('POS302');

    await session.whenConnected();
    // A fresh publish after the reconnect: MQTT.js would replay its store before it.
    await session.publish('pos/v1/lane/up/auth', 'fresh-auth-request', { qos: 1 });
    await waitFor(() => seen.includes('fresh-auth-request'), 'the fresh publish at the broker');
    expect(seen).toEqual(['fresh-auth-request']);
  });
});

describe('MqttSession: TCP_NODELAY (issue 9)', () => {
  it('turns Nagle off on the socket to the broker, at the first connect and after a reconnect', async () => {
    const broker = await EmbeddedBroker.start();
    cleanups.push(() => broker.stop());
    const port = Number(new URL(broker.url).port);
    const calls: { remotePort: number | undefined; noDelay: boolean | undefined }[] = [];
    const original = Socket.prototype.setNoDelay;
    const spy = vi.spyOn(Socket.prototype, 'setNoDelay').mockImplementation(function (
      this: Socket,
      noDelay?: boolean,
    ) {
      calls.push({ remotePort: this.remotePort, noDelay });
      return original.call(this, noDelay);
    });
    cleanups.push(async () => spy.mockRestore());
    const session = new MqttSession({
      url: broker.url,
      clientId: `nodelay-${process.pid}`,
      reconnectPeriodMs: 50,
    });
    cleanups.push(() => session.end());
    session.connect();
    await session.whenConnected();
    const toBroker = () => calls.filter((c) => c.remotePort === port && c.noDelay === true).length;
    expect(toBroker()).toBe(1);
    await broker.restart();
    await waitFor(() => toBroker() === 2, 'no-delay set again on the new socket');
  });
});
