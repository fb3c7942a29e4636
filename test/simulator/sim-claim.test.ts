/**
 * `pos-agent sim claim` (issue 14): the claim service as a command. A terminal's claim request
 * (its new device key and a CSR, with a one-time registration code) is answered with a
 * certificate signed by the fleet CA, the device key lands in the simulator's devices.json so
 * `sim cloud` accepts the terminal, and a reused code is refused. Over the embedded broker: the
 * service does not care how the terminal reached the broker (mutual TLS is provision-claim's test).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateDevelopmentKeys,
  loadCloudSideKeys,
  writeCloudSideKeys,
} from '../../agent/keys.js';
import { simClaim, type SimIo } from '../../agent/sim-commands.js';
import { keyId, openEnvelope, signEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import {
  ClaimRequestSchema,
  ClaimResponseSchema,
  claimTopics,
  type ClaimResponse,
} from '../../cloud-sync/schemas.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import {
  createTestCa,
  opensslAvailable,
  OPENSSL_SKIP_REASON,
  type TestCa,
} from '../helpers/certs.js';
import { until } from '../helpers/wait.js';

const openssl = opensslAvailable();
if (!openssl) console.warn(`[skipped] sim claim: ${OPENSSL_SKIP_REASON}`);

function io(): SimIo & { stop: () => void; text: () => string } {
  const out: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  return {
    out: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream,
    stopped,
    stop,
    text: () => out.join(''),
  };
}

describe.skipIf(!openssl)('pos-agent sim claim', () => {
  let dir: string;
  let ca: TestCa;
  let broker: EmbeddedBroker;
  let cloudPublicKey: Uint8Array;
  const handle = io();
  let running: Promise<void>;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-sim-claim-'));
    ca = createTestCa(dir, 'fleet-ca');
    const { terminal, cloud } = generateDevelopmentKeys(path.join(dir, 'keys'));
    cloudPublicKey = nacl.sign.keyPair.fromSecretKey(cloud.cloudSecretKey).publicKey;
    writeCloudSideKeys(path.join(dir, 'cloud'), {
      ...cloud,
      devicePublicKeys: { 'dev-terminal-1': terminal.devicePublicKey },
    });
    broker = await EmbeddedBroker.start();
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    running = simClaim(
      {
        keys: path.join(dir, 'cloud'),
        broker: broker.url,
        topicPrefix: 'pos/v1',
        caCert: ca.cert,
        caKey: ca.key,
        code: ['REG-0042-3:acme:store-42'],
        days: 30,
      },
      handle,
      () => ready(),
    );
    await isReady;
  });

  afterAll(async () => {
    handle.stop();
    await running;
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends a claim for `deviceId` with a fresh key and CSR; resolves the signed response. */
  async function claim(
    deviceId: string,
    code: string,
  ): Promise<{ response: ClaimResponse; publicKey: Uint8Array }> {
    const keyFile = path.join(dir, `${deviceId}.key`);
    const csrFile = path.join(dir, `${deviceId}.csr`);
    execFileSync('openssl', [
      'ecparam',
      '-name',
      'prime256v1',
      '-genkey',
      '-noout',
      '-out',
      keyFile,
    ]);
    execFileSync('openssl', [
      'req',
      '-new',
      '-key',
      keyFile,
      '-subj',
      `/CN=${deviceId}`,
      '-out',
      csrFile,
    ]);
    const device = nacl.sign.keyPair();
    const session = new MqttSession({
      url: broker.url,
      clientId: deviceId,
      clean: true,
      reconnectPeriodMs: 100,
    });
    const topics = claimTopics('pos/v1', deviceId);
    const answer = new Promise<Buffer>((resolve) =>
      session.on('message', (topic, payload) => {
        if (topic === topics.response) resolve(payload);
      }),
    );
    await session.subscribe(topics.response);
    session.connect();
    await session.whenConnected(10_000);
    await session.publish(
      topics.request,
      signEnvelope(
        {
          deviceId,
          tenant: 'acme',
          store: 'store-42',
          registrationCode: code,
          publicKey: Buffer.from(device.publicKey).toString('base64'),
          csr: readFileSync(csrFile, 'utf8'),
          at: new Date().toISOString(),
        },
        { secretKey: device.secretKey },
        ClaimRequestSchema,
      ),
      { qos: 1 },
    );
    const payload = await answer;
    await session.end();
    const keys = new Map([[keyId(cloudPublicKey), cloudPublicKey]]); // the pinned cloud key
    return {
      response: openEnvelope(payload, { keys }, ClaimResponseSchema),
      publicKey: device.publicKey,
    };
  }

  it('issues a certificate for the device and adds its key to devices.json', async () => {
    const { response, publicKey } = await claim('lane-7', 'REG-0042-3');
    expect(response.status).toBe('accepted');
    const certificate = new X509Certificate(response.certificate as string);
    expect(certificate.subject).toContain('CN=lane-7');
    expect(certificate.checkIssued(new X509Certificate(readFileSync(ca.cert)))).toBe(true);
    expect(handle.text()).toContain('lane-7: claim accepted, certificate issued');
    const devices = loadCloudSideKeys(path.join(dir, 'cloud')).devicePublicKeys;
    expect([...devices.keys()].sort()).toEqual(['dev-terminal-1', 'lane-7']);
    expect(Buffer.from(devices.get('lane-7') as Uint8Array)).toEqual(Buffer.from(publicKey));
  });

  it('refuses a second claim with the same (spent) code, and says why', async () => {
    const { response } = await claim('lane-8', 'REG-0042-3');
    expect(response).toMatchObject({ status: 'rejected' });
    expect(response.reason).toMatch(/unknown or already used registration code/);
    await until(() => handle.text().includes('lane-8: claim refused'));
  });

  it('refuses bad options with POS501 before connecting', async () => {
    const base = {
      keys: path.join(dir, 'cloud'),
      broker: broker.url,
      topicPrefix: 'pos/v1',
      caCert: ca.cert,
      caKey: ca.key,
      days: 30,
    };
    await expect(simClaim({ ...base, code: [] }, io())).rejects.toMatchObject({
      code: 'POS501',
      reason: expect.stringMatching(/--code is required/),
    });
    await expect(simClaim({ ...base, code: ['REG1:acme'] }, io())).rejects.toMatchObject({
      code: 'POS501',
      reason: expect.stringMatching(/--code must be CODE:TENANT:STORE/),
    });
    await expect(
      simClaim({ ...base, code: ['REG-0042-9:acme:s1'], caKey: '/nonexistent.key' }, io()),
    ).rejects.toMatchObject({
      code: 'POS501',
      reason: expect.stringMatching(/--ca-key \/nonexistent.key cannot be read \(ENOENT\)/),
    });
  });
});
