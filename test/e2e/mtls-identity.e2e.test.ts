/**
 * The broker ties the certificate to the terminal (issue 11 item 4), on a real Mosquitto running
 * the shipped deploy/mosquitto/ configuration: device A's certificate can neither connect as B
 * (take over B's session and force it offline) nor publish or subscribe to B's topics, and the
 * fleet claim certificate reaches its claim topics only.
 *
 * "Nothing arrived" is shown without timing: each denied message is followed, on the same path,
 * by an allowed one; MQTT keeps one publisher's QoS 1 messages in order for a subscriber, so once
 * the allowed one has arrived the denied one would have arrived before it.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import {
  createTestCa,
  opensslAvailable,
  OPENSSL_SKIP_REASON,
  type TestCa,
} from '../helpers/certs.js';
import { mosquittoAvailable, MOSQUITTO_SKIP_REASON } from '../helpers/mosquitto.js';
import { startTlsMosquitto, type TlsMosquitto } from '../helpers/mosquitto-tls.js';
import { until } from '../helpers/wait.js';

const missing = [
  ...(mosquittoAvailable() === null ? [MOSQUITTO_SKIP_REASON] : []),
  ...(opensslAvailable() ? [] : [OPENSSL_SKIP_REASON]),
];
if (missing.length > 0) console.warn(`[skipped] broker identity test: ${missing.join('; ')}`);

const A = 'ident-lane-a';
const B = 'ident-lane-b';
const CLAIM = 'fleet-claim';

describe.skipIf(missing.length > 0)(
  'Mosquitto (shipped config) ties a certificate to one terminal',
  () => {
    let dir: string;
    let ca: TestCa;
    let broker: TlsMosquitto;
    let cloud: MqttSession;
    const sessions: MqttSession[] = [];
    /** Every topic the cloud side saw, in order. */
    const seenByCloud: string[] = [];

    const open = async (
      clientId: string,
      identity: string,
      log: { messages: string[]; disconnects: number },
    ): Promise<MqttSession> => {
      const cert = ca.issue(identity);
      const session = new MqttSession({
        url: broker.tlsUrl,
        clientId,
        clean: true,
        reconnectPeriodMs: 0,
        tls: {
          ca: readFileSync(ca.cert),
          cert: readFileSync(cert.cert),
          key: readFileSync(cert.key),
        },
      });
      sessions.push(session);
      session.on('message', (topic) => log.messages.push(topic));
      session.on('disconnect', () => (log.disconnects += 1));
      session.connect();
      await session.whenConnected();
      return session;
    };
    const publishFromCloud = (topic: string): Promise<void> =>
      cloud.publish(topic, Buffer.from('{}'), { qos: 1 });
    const waitFor = (check: () => boolean): Promise<void> =>
      until(check, { timeoutMs: 10_000, pollMs: 20 });

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'pos-ident-'));
      ca = createTestCa(dir);
      broker = await startTlsMosquitto(ca);
      cloud = new MqttSession({ url: broker.cloudUrl, clientId: 'cloud-core', clean: true });
      sessions.push(cloud);
      cloud.on('message', (topic) => seenByCloud.push(topic));
      await cloud.subscribe('pos/v1/#');
      cloud.connect();
      await cloud.whenConnected();
    }, 30_000);

    afterAll(async () => {
      for (const s of sessions.splice(0)) await s.end().catch(() => undefined);
      await broker?.dispose();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it("device A's certificate cannot connect as B: B keeps its session (control: B's own certificate does replace it)", async () => {
      const b = { messages: [] as string[], disconnects: 0 };
      const bSession = await open(B, B, b);
      await bSession.subscribe(`pos/v1/${B}/down/#`);
      const a = { messages: [] as string[], disconnects: 0 };
      await open(B, A, a); // A's certificate, B's client id
      // B is still connected: a downlink sent after A connected reaches it.
      await publishFromCloud(`pos/v1/${B}/down/commands`);
      await waitFor(() => b.messages.includes(`pos/v1/${B}/down/commands`));
      expect(b.disconnects).toBe(0);
      expect(broker.log()).not.toContain(`Client ${B} already connected`);
      // The broker made the certificate's CN the client id.
      expect(broker.log()).toMatch(new RegExp(`as ${A} \\(`));

      // Control: a second connection with B's own certificate (whatever client id it sends)
      // is B, and replaces B's session — the check above would have seen a takeover.
      await open('anything', B, { messages: [], disconnects: 0 });
      await waitFor(() => b.disconnects > 0);
      expect(broker.log()).toContain(`Client ${B} already connected`);
    });

    it("device A's certificate can neither subscribe to nor publish on B's topics", async () => {
      const a = { messages: [] as string[], disconnects: 0 };
      const aSession = await open(A, A, a);
      await aSession.subscribe(`pos/v1/${B}/#`).catch(() => undefined);
      await aSession.subscribe(`pos/v1/${A}/down/#`);
      await publishFromCloud(`pos/v1/${B}/down/commands`);
      await publishFromCloud(`pos/v1/${A}/down/commands`);
      await waitFor(() => a.messages.includes(`pos/v1/${A}/down/commands`));
      expect(a.messages.filter((t) => t.startsWith(`pos/v1/${B}/`))).toEqual([]);

      const before = seenByCloud.length;
      await aSession.publish(`pos/v1/${B}/up/records`, Buffer.from('{}')).catch(() => undefined);
      await aSession.publish(`pos/v1/${B}/status`, Buffer.from('{}')).catch(() => undefined);
      await aSession.publish(`pos/v1/${A}/up/records`, Buffer.from('{}'));
      await waitFor(() => seenByCloud.slice(before).includes(`pos/v1/${A}/up/records`));
      expect(seenByCloud.slice(before).filter((t) => t.startsWith(`pos/v1/${B}/`))).toEqual([]);
      // A may not write its own downlinks either (only the cloud does).
      const mark = seenByCloud.length;
      await aSession.publish(`pos/v1/${A}/down/commands`, Buffer.from('{}')).catch(() => undefined);
      await aSession.publish(`pos/v1/${A}/status`, Buffer.from('{}'));
      await waitFor(() => seenByCloud.slice(mark).includes(`pos/v1/${A}/status`));
      expect(seenByCloud.slice(mark)).not.toContain(`pos/v1/${A}/down/commands`);
    });

    it('the claim certificate reaches only the claim topics, and cannot take over a terminal', async () => {
      const a = { messages: [] as string[], disconnects: 0 };
      const aSession = await open(A, A, a);
      await aSession.subscribe(`pos/v1/${A}/down/#`);
      const claim = { messages: [] as string[], disconnects: 0 };
      const claimSession = await open(A, CLAIM, claim); // the claim certificate with A's client id
      await claimSession.subscribe(`pos/v1/${A}/#`).catch(() => undefined);
      await claimSession.subscribe(`pos/v1/claims/${A}/response`);
      await publishFromCloud(`pos/v1/${A}/down/commands`);
      await publishFromCloud(`pos/v1/claims/${A}/response`);
      await waitFor(() => claim.messages.includes(`pos/v1/claims/${A}/response`));
      expect(claim.messages.filter((t) => t.startsWith(`pos/v1/${A}/`))).toEqual([]);
      // The terminal kept its session and got its downlink.
      await waitFor(() => a.messages.includes(`pos/v1/${A}/down/commands`));
      expect(a.disconnects).toBe(0);

      const before = seenByCloud.length;
      await claimSession.publish(`pos/v1/${A}/status`, Buffer.from('{}')).catch(() => undefined);
      await claimSession
        .publish(`pos/v1/${A}/up/records`, Buffer.from('{}'))
        .catch(() => undefined);
      await claimSession
        .publish(`pos/v1/claims/${A}/response`, Buffer.from('{}'))
        .catch(() => undefined);
      await claimSession.publish(`pos/v1/claims/${A}/request`, Buffer.from('{}'));
      await waitFor(() => seenByCloud.slice(before).includes(`pos/v1/claims/${A}/request`));
      expect(seenByCloud.slice(before)).toEqual([`pos/v1/claims/${A}/request`]);
    });
  },
);
