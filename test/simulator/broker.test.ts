import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { waitFor } from '../cloud-sync/fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(): Promise<EmbeddedBroker> {
  const broker = await EmbeddedBroker.start();
  cleanups.push(() => broker.stop());
  return broker;
}

function session(url: string, clientId: string): MqttSession {
  const s = new MqttSession({ url, clientId, reconnectPeriodMs: 50, connectTimeoutMs: 2000 });
  cleanups.push(() => s.end({ force: true }));
  return s;
}

describe('EmbeddedBroker (aedes, MQTT 3.1.1)', () => {
  it('listens on a free loopback port and carries QoS 1 messages', async () => {
    const broker = await started();
    expect(broker.port).toBeGreaterThan(0);
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const sub = session(broker.url, 'sub-1');
    const got: string[] = [];
    sub.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
    await sub.subscribe('t/#');
    sub.connect();
    await sub.whenConnected();
    const pub = session(broker.url, 'pub-1');
    pub.connect();
    await pub.whenConnected();
    await pub.publish('t/a', 'hello');
    await waitFor(() => got.length === 1, 'the message');
    expect(got).toEqual(['t/a=hello']);
  });

  it('stop() closes every client socket, also one that never sent CONNECT', async () => {
    const broker = await started();
    const raw = connect(broker.port, '127.0.0.1');
    await new Promise((resolve) => raw.once('connect', resolve));
    const rawClosed = new Promise((resolve) => raw.once('close', resolve));
    const client = session(broker.url, 'c-1');
    client.connect();
    await client.whenConnected();
    const disconnected = new Promise((resolve) => client.once('disconnect', resolve));
    await broker.stop();
    await Promise.all([rawClosed, disconnected]);
    expect(client.connected).toBe(false);
    expect(broker.running).toBe(false);
    await expect(client.publish('t', 'x')).rejects.toThrow(/POS302/);
  });

  it('restarts on the same port; clients reconnect and retained messages survive', async () => {
    const broker = await started();
    const port = broker.port;
    const client = session(broker.url, 'c-2');
    client.connect();
    await client.whenConnected();
    await client.publish('r/1', 'kept', { retain: true });
    await broker.restart(100);
    expect(broker.port).toBe(port);
    await client.whenConnected(5000);
    const reader = session(broker.url, 'reader');
    const got: string[] = [];
    reader.on('message', (_t, payload) => got.push(payload.toString()));
    await reader.subscribe('r/#');
    reader.connect();
    await waitFor(() => got.length === 1, 'the retained message');
    expect(got).toEqual(['kept']);
  });

  it('delivers the last will when a client drops without DISCONNECT (MQTT 3.1.1 §3.1.2.5)', async () => {
    const broker = await started();
    const watcher = session(broker.url, 'watcher');
    const got: string[] = [];
    watcher.on('message', (_t, p) => got.push(p.toString()));
    await watcher.subscribe('status/#');
    watcher.connect();
    await watcher.whenConnected();
    const device = new MqttSession({ url: broker.url, clientId: 'dev-will', reconnectPeriodMs: 0 });
    device.setWill(() => ({ topic: 'status/dev-will', payload: 'offline' }));
    device.connect();
    await device.whenConnected();
    cleanups.push(() => device.end());
    // Link loss as the broker sees it: its socket to the device dies without a DISCONNECT.
    const aedes = broker.aedes as unknown as {
      clients: Record<string, { conn: { destroy(): void } }>;
    };
    aedes.clients['dev-will']?.conn.destroy();
    await waitFor(() => got.includes('offline'), 'the last will', 5000);
  });
});
