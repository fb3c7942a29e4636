/**
 * Registration by claim over MQTT: a terminal holding only the fleet's claim certificate and a
 * one-time registration code gets its own client certificate from the cloud (the simulator's
 * ClaimService), then runs over mutual TLS with it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../agent/agent.js';
import { type ProvisionOptions } from '../../agent/commands/provision.js';
import { provisionByClaim } from '../../agent/commands/provision-claim.js';
import { loadConfig } from '../../agent/config.js';
import { loadTerminalKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { isAgentError } from '../../common/agent-error.js';
import { ClaimService } from '../../simulator/claim-service.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import {
  createTestCa,
  opensslAvailable,
  OPENSSL_SKIP_REASON,
  type TestCa,
} from '../helpers/certs.js';
import { mosquittoAvailable, MOSQUITTO_SKIP_REASON } from '../helpers/mosquitto.js';
import { startTlsMosquitto, type TlsMosquitto } from '../helpers/mosquitto-tls.js';

const missing = [
  ...(mosquittoAvailable() === null ? [MOSQUITTO_SKIP_REASON] : []),
  ...(opensslAvailable() ? [] : [OPENSSL_SKIP_REASON]),
];
if (missing.length > 0) console.warn(`[skipped] registration by claim: ${missing.join('; ')}`);

describe.skipIf(missing.length > 0)('pos-agent provision: registration by claim over MQTT', () => {
  let dir: string;
  let ca: TestCa;
  let broker: TlsMosquitto;
  let claims: ClaimService;
  let cloudCore: CloudCore;
  let pad: PadServer;
  let claimCert: { cert: string; key: string };
  const cloud = nacl.sign.keyPair();
  const codes = new Map([
    ['REG-0042-3', { tenant: 'acme', store: 'store-42' }],
    ['REG-0042-4', { tenant: 'acme', store: 'store-42' }],
  ]);
  const registered = new Map<string, Uint8Array>();

  const options = (deviceId: string): ProvisionOptions => ({
    dir: path.join(dir, deviceId),
    deviceId,
    tenant: 'acme',
    store: 'store-42',
    broker: broker.tlsUrl,
    pinPad: pad.url,
    caFile: ca.cert,
    cloudKeyFile: path.join(dir, 'cloud.pub'),
    vaultKeyFile: path.join(dir, 'vault.pub'),
    tokenKeyFile: path.join(dir, 'token.key'),
    apiPort: 0,
  });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-claim-'));
    ca = createTestCa(dir);
    broker = await startTlsMosquitto(ca);
    claimCert = ca.issue('fleet-claim');
    pad = serveMock(new VirtualPinPad(), 'claim-pad');
    writeFileSync(path.join(dir, 'cloud.pub'), Buffer.from(cloud.publicKey).toString('base64'));
    writeFileSync(
      path.join(dir, 'vault.pub'),
      Buffer.from(nacl.box.keyPair().publicKey).toString('base64'),
    );
    writeFileSync(
      path.join(dir, 'token.key'),
      Buffer.from(nacl.randomBytes(32)).toString('base64'),
    );
    cloudCore = await CloudCore.start({
      brokerUrl: broker.cloudUrl,
      clientId: 'cloud-core',
      signer: { secretKey: cloud.secretKey },
    });
    claims = await ClaimService.start({
      brokerUrl: broker.cloudUrl,
      clientId: 'cloud-claims',
      signer: { secretKey: cloud.secretKey },
      ca: { cert: ca.cert, key: ca.key },
      codes,
      onRegistered: (deviceId, publicKey) => {
        registered.set(deviceId, publicKey);
        cloudCore.registerDevice(deviceId, publicKey);
      },
    });
  }, 30_000);

  afterAll(async () => {
    await claims?.stop();
    await cloudCore?.stop();
    await pad?.stop();
    await broker?.dispose();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('gets a client certificate for its CSR, and the agent then runs over mutual TLS with it', async () => {
    const result = await provisionByClaim(options('claim-lane-3'), {
      certFile: claimCert.cert,
      keyFile: claimCert.key,
      registrationCode: 'REG-0042-3',
    });
    const certificate = new X509Certificate(readFileSync(result.certificateFile));
    expect(certificate.subject).toContain('CN=claim-lane-3');
    expect(certificate.checkIssued(new X509Certificate(readFileSync(ca.cert)))).toBe(true);
    expect(statSync(result.certificateFile).mode & 0o777).toBe(0o600);
    const config = loadConfig(result.configFile);
    const keys = loadTerminalKeys(config.keysDir);
    expect(
      Buffer.from(registered.get('claim-lane-3') ?? []).equals(Buffer.from(keys.devicePublicKey)),
    ).toBe(true);
    expect(codes.has('REG-0042-3')).toBe(false);

    const agent = await startAgent({
      config: { ...config, broker: { ...config.broker, reconnectPeriodMs: 200 } },
      keys,
      logger: createLogger({ file: path.join(dir, 'claim-agent.log') }),
    });
    try {
      const deadline = Date.now() + 10_000;
      while (agent.status().link.state !== 'online' && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 25));
      expect(agent.status().link.state).toBe('online');
    } finally {
      await agent.stop();
    }
  }, 30_000);

  it('is refused with a used or unknown registration code (POS505), and says what was kept', async () => {
    for (const [deviceId, code] of [
      ['claim-lane-5', 'REG-0042-3'],
      ['claim-lane-6', 'REG-9999-9'],
    ] as const) {
      let error: unknown;
      try {
        await provisionByClaim(options(deviceId), {
          certFile: claimCert.cert,
          keyFile: claimCert.key,
          registrationCode: code,
          timeoutMs: 5000,
        });
      } catch (e) {
        error = e;
      }
      expect(isAgentError(error, 'POS505'), deviceId).toBe(true);
      expect((error as Error).message).toContain('unknown or already used registration code');
      expect(existsSync(path.join(dir, deviceId, 'keys', 'client.pem'))).toBe(false);
      expect(registered.has(deviceId)).toBe(false);
    }
  }, 30_000);

  it('refuses to start without a claim certificate or with plaintext, writing nothing', async () => {
    let error: unknown;
    try {
      await provisionByClaim(
        { ...options('claim-lane-7'), broker: 'mqtt://127.0.0.1:1883', development: true },
        {
          certFile: path.join(dir, 'nope.pem'),
          keyFile: claimCert.key,
          registrationCode: 'REG-0042-4',
        },
      );
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS504')).toBe(true);
    expect((error as Error).message).toContain('--claim-cert');
    expect((error as Error).message).toContain('needs mqtts://');
    expect(existsSync(path.join(dir, 'claim-lane-7'))).toBe(false);
  });
});
