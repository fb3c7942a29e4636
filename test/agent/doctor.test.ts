/**
 * `pos-agent doctor` on a healthy terminal (provisioned, Mosquitto with mutual TLS running, a
 * PIN pad on tcp://, a database with a payment) and on a broken one (key file readable by
 * others, expired client certificate, broker stopped, damaged database file).
 */
import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
  closeSync,
  readFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { doctor, runDoctor, type DoctorReport } from '../../agent/commands/doctor.js';
import { provision } from '../../agent/commands/provision.js';
import { loadConfig } from '../../agent/config.js';
import { serveTcp, type PadServer } from '../../simulator/pad-server.js';
import { freePort } from '../../simulator/free-port.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
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
if (missing.length > 0) console.warn(`[skipped] doctor tests: ${missing.join('; ')}`);

const capture = (): { out: Writable; text: () => string } => {
  let text = '';
  return {
    out: new Writable({
      write(chunk: Buffer, _e, done) {
        text += chunk.toString();
        done();
      },
    }),
    text: () => text,
  };
};

describe.skipIf(missing.length > 0)('pos-agent doctor', () => {
  let dir: string;
  let ca: TestCa;
  let broker: TlsMosquitto;
  let pad: PadServer;
  let configFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-doctor-'));
    ca = createTestCa(dir);
    broker = await startTlsMosquitto(ca);
    pad = await serveTcp(new VirtualPinPad());
    const cert = ca.issue('doctor-lane-1', { days: 365 });
    writeFileSync(
      path.join(dir, 'cloud.pub'),
      Buffer.from(nacl.sign.keyPair().publicKey).toString('base64'),
    );
    writeFileSync(
      path.join(dir, 'vault.pub'),
      Buffer.from(nacl.box.keyPair().publicKey).toString('base64'),
    );
    writeFileSync(
      path.join(dir, 'token.key'),
      Buffer.from(nacl.randomBytes(32)).toString('base64'),
    );
    configFile = provision({
      dir: path.join(dir, 'terminal'),
      deviceId: 'doctor-lane-1',
      tenant: 'acme',
      store: 'store-42',
      broker: broker.tlsUrl,
      pinPad: pad.url,
      caFile: ca.cert,
      certFile: cert.cert,
      keyFile: cert.key,
      cloudKeyFile: path.join(dir, 'cloud.pub'),
      vaultKeyFile: path.join(dir, 'vault.pub'),
      tokenKeyFile: path.join(dir, 'token.key'),
    }).configFile;
    const config = loadConfig(configFile);
    PaymentStore.open({ path: path.join(config.dataDir, 'agent.db') }).close();
  }, 30_000);

  afterAll(async () => {
    await pad?.stop();
    await broker?.dispose();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('finds nothing wrong on a healthy terminal and exits 0', async () => {
    const { out, text } = capture();
    const status = await runDoctor(configFile, out, { minFreeBytes: 1024 });
    expect(text()).toContain('no problems found');
    expect(text()).toMatch(/TLS handshake with mqtts:\/\/127\.0\.0\.1:\d+ succeeded/);
    expect(text()).toMatch(/ok {3}broker {5}client certificate CN=doctor-lane-1, valid until/);
    // The broker's test certificate is issued for 30 days: within the 30-day warning window.
    expect(text()).toMatch(
      /1\. POS516 \[broker\] broker certificate \(CN=broker\) expires in 29 day/,
    );
    expect(status).toBe(0);
  });

  it('probes every node of a cluster config: a dead node is a warning while another answers, a problem when none does', async () => {
    // Regression: doctor probed only broker.urls[0], so a dead second node went unseen until
    // a failover to it failed.
    const dead = [`mqtts://127.0.0.1:${await freePort()}`, `mqtts://127.0.0.1:${await freePort()}`];
    const withUrls = (urls: string[]): string => {
      const json = JSON.parse(readFileSync(configFile, 'utf8')) as {
        broker: { url?: string; urls?: string[] };
      };
      delete json.broker.url;
      json.broker.urls = urls;
      const file = path.join(
        path.dirname(configFile),
        `cluster-${urls.length}-${urls.indexOf(broker.tlsUrl)}.json`,
      );
      writeFileSync(file, JSON.stringify(json), { mode: 0o600 });
      return file;
    };
    const options = { minFreeBytes: 1024, timeoutMs: 1000 };

    const degraded = await doctor(withUrls([dead[0] as string, broker.tlsUrl]), options);
    const brokerFindings = degraded.filter((f) => f.check === 'broker');
    expect(brokerFindings).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        code: 'POS301',
        message: expect.stringContaining(`broker node unreachable at ${dead[0]}: ECONNREFUSED`),
      }),
    );
    expect(brokerFindings).toContainEqual(
      expect.objectContaining({
        level: 'ok',
        message: `TLS handshake with ${broker.tlsUrl} succeeded (mutual TLS, pinned CA)`,
      }),
    );
    // The client certificate is checked once, not once per node.
    expect(brokerFindings.filter((f) => f.message.startsWith('client certificate'))).toHaveLength(
      1,
    );
    expect(brokerFindings.filter((f) => f.level === 'problem')).toEqual([]);

    const down = await doctor(withUrls(dead), options);
    expect(
      down
        .filter((f) => f.code === 'POS301')
        .map((f) => [f.level, f.message.split(':').slice(0, 3).join(':')]),
    ).toEqual(dead.map((url) => ['problem', `broker node unreachable at ${url}`]));
  });

  it('lists each problem of a broken terminal with its fix and exits 1', async () => {
    const config = loadConfig(configFile);
    chmodSync(path.join(config.keysDir, 'token.key'), 0o644);
    const expired = ca.issue('doctor-lane-1-expired', { expired: true });
    copyFileSync(expired.cert, config.broker.certFile as string);
    copyFileSync(expired.key, config.broker.keyFile as string);
    writeFileSync(path.join(config.dataDir, 'offline-limits.json'), '{"maxCount": 3');
    const db = path.join(config.dataDir, 'agent.db');
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.from('this is not a database header'), 0, 29, 0);
    closeSync(fd);
    await broker.dispose();

    const { out, text } = capture();
    const status = await runDoctor(configFile, out, { minFreeBytes: 1024, timeoutMs: 1000 });
    expect(status).toBe(1);
    const report = text();
    expect(report).toMatch(/\d\. POS\d{3} \[file modes\] key file .*token\.key has mode 0644/);
    expect(report).toContain(`fix: chmod 600 ${path.join(config.keysDir, 'token.key')}`);
    expect(report).toMatch(
      /\d\. POS\d{3} \[broker\] client certificate \(CN=doctor-lane-1-expired\) expired on/,
    );
    expect(report).toMatch(
      /\d\. POS\d{3} \[broker\] broker unreachable at mqtts:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
    );
    expect(report).toMatch(/\d\. POS\d{3} \[database\] .*agent\.db is not an SQLite database/);
    expect(report).toMatch(
      /\d\. POS\d{3} \[database\] .*offline-limits\.json \(offline limits set by the cloud\) is not JSON/,
    );
    const findings = await doctor(configFile, { minFreeBytes: 1024, timeoutMs: 1000 });
    expect(
      findings
        .filter((f) => f.level === 'problem')
        .map((f) => f.check)
        .sort(),
    ).toEqual(['broker', 'broker', 'database', 'file modes']);
    const json = capture();
    await runDoctor(configFile, json.out, { minFreeBytes: 1024, timeoutMs: 1000, json: true });
    const parsed = JSON.parse(json.text()) as DoctorReport;
    expect(parsed).toMatchObject({ version: 1, config: configFile, ok: false, problems: 4 });
    const notOk = parsed.findings.filter((f) => f.level !== 'ok');
    for (const f of notOk) {
      expect(f.code, f.message).toMatch(/^POS[1-5]\d\d$/);
      expect(f.fix, f.message).toBeTruthy();
    }
    expect(new Set(notOk.map((f) => f.code))).toEqual(
      new Set(['POS508', 'POS516', 'POS301', 'POS509', 'POS510']),
    );
  });

  it('reports a config it cannot load, and no secret of the key files', async () => {
    const bad = path.join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ deviceId: 'X', broker: { url: 'mqtt://remote.example:1883' } }),
    );
    chmodSync(bad, 0o600);
    const { out, text } = capture();
    expect(await runDoctor(bad, out)).toBe(1);
    expect(text()).toContain('1. POS501 [config]');
    expect(text()).toContain('deviceId');
  });
});
