/**
 * MqttSession with several endpoints (issue 16): after a lost connection it reconnects to the
 * NEXT endpoint, round robin, after the backoff of common/backoff.ts, with the same client id
 * and a persistent session; the endpoint in use and the failovers are in `health()`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MqttSession, endpointOptions } from '../../cloud-sync/mqtt-session.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { waitFor } from './fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

describe('MqttSession: failover between endpoints', () => {
  it('parses an endpoint URL into MQTT.js options', () => {
    expect(endpointOptions('mqtt://127.0.0.1:1884')).toEqual({
      protocol: 'mqtt',
      host: '127.0.0.1',
      hostname: '127.0.0.1',
      port: 1884,
    });
    expect(endpointOptions('mqtts://[::1]')).toMatchObject({ host: '::1', port: 8883 });
  });

  it('skips a dead first endpoint, fails over when its node stops, keeps the client id and session', async () => {
    const a = await EmbeddedBroker.start();
    const b = await EmbeddedBroker.start({ joinCluster: a });
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    // A port nobody listens on: the first endpoint is down from the start.
    const dead = await EmbeddedBroker.start();
    const deadUrl = dead.url;
    await dead.stop();
    const clientIds: string[] = [];
    const onClient = (client: { id: string }): number => clientIds.push(client.id);
    a.aedes?.on('client', onClient);
    b.aedes?.on('client', onClient);
    const session = new MqttSession({
      urls: [deadUrl, a.url, b.url],
      clientId: 'lane-failover',
      reconnectPeriodMs: 20,
      reconnectMaxMs: 40,
    });
    cleanups.push(() => session.end());
    const failovers: { from: string; to: string }[] = [];
    session.on('failover', (info) => failovers.push(info));
    const received: string[] = [];
    session.on('message', (_topic, payload) => received.push(payload.toString()));
    await session.subscribe('pos/v1/lane-failover/down/#');
    session.connect();
    await session.whenConnected();
    expect(session.url).toBe(a.url);
    expect(session.health()).toMatchObject({ endpoint: a.url, failovers: 0 });
    expect(session.health().reconnectAttempts).toBeGreaterThanOrEqual(1);

    await a.stop();
    await waitFor(() => session.connected && session.url === b.url, 'failover to b');
    await waitFor(() => failovers.length === 1, 'the failover event');
    expect(failovers[0]).toMatchObject({ from: a.url, to: b.url });
    expect(session.health()).toMatchObject({
      endpoint: b.url,
      endpoints: [deadUrl, a.url, b.url],
      failovers: 1,
      lastFailover: { from: a.url, to: b.url },
    });
    expect(new Set(clientIds)).toEqual(new Set(['lane-failover']));

    // Subscribed again on the new node: a message published there reaches the session.
    const publisher = new MqttSession({ url: b.url, clientId: 'cloud-pub', clean: true });
    cleanups.push(() => publisher.end());
    publisher.connect();
    await publisher.whenConnected();
    await publisher.publish('pos/v1/lane-failover/down/acks', 'after-failover');
    await waitFor(() => received.includes('after-failover'), 'the downlink via b');
  });

  it('keeps trying a single dead endpoint with backoff', async () => {
    const dead = await EmbeddedBroker.start();
    const url = dead.url;
    await dead.stop();
    const session = new MqttSession({
      urls: [url],
      clientId: 'lane-backoff',
      reconnectPeriodMs: 30,
      reconnectMaxMs: 60,
      reconnectJitterRatio: 0.5,
      random: () => 0,
    });
    cleanups.push(() => session.end());
    session.connect();
    await waitFor(() => session.health().reconnectAttempts >= 3, 'three attempts');
    expect(session.connected).toBe(false);
  });
});
