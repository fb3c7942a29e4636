import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import nacl from 'tweetnacl';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { provision, type ProvisionOptions } from '../../agent/commands/provision.js';
import { describeProvisioning, runProvision } from '../../agent/commands/provision-command.js';
import { promptMissing } from '../../agent/commands/provision-prompts.js';
import { loadConfig, parseConfig } from '../../agent/config.js';
import { brokerTls, loadTerminalKeys, publicKeyFingerprint } from '../../agent/keys.js';
import { isAgentError } from '../../common/agent-error.js';
import {
  createTestCa,
  opensslAvailable,
  OPENSSL_SKIP_REASON,
  type TestCa,
} from '../helpers/certs.js';

const hasOpenssl = opensslAvailable();
if (!hasOpenssl) console.warn(`[skipped] provisioning tests: ${OPENSSL_SKIP_REASON}`);

const mode = (file: string): number => statSync(file).mode & 0o777;

describe.skipIf(!hasOpenssl)('pos-agent provision', () => {
  let dir: string;
  let ca: TestCa;
  let base: ProvisionOptions;
  const tokenKey = Buffer.alloc(32, 7).toString('base64');

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-provision-'));
    ca = createTestCa(dir);
    const device = ca.issue('lane-0001');
    const cloud = nacl.sign.keyPair();
    const vault = nacl.box.keyPair();
    writeFileSync(path.join(dir, 'cloud.pub'), Buffer.from(cloud.publicKey).toString('base64'));
    writeFileSync(path.join(dir, 'vault.pub'), Buffer.from(vault.publicKey).toString('base64'));
    writeFileSync(path.join(dir, 'token.key'), tokenKey);
    base = {
      dir: path.join(dir, 'terminal'),
      deviceId: 'lane-0001',
      tenant: 'acme',
      store: 'store-42',
      broker: 'mqtts://127.0.0.1:8883',
      pinPad: 'tcp://127.0.0.1:7421',
      caFile: ca.cert,
      certFile: device.cert,
      keyFile: device.key,
      cloudKeyFile: path.join(dir, 'cloud.pub'),
      vaultKeyFile: path.join(dir, 'vault.pub'),
      tokenKeyFile: path.join(dir, 'token.key'),
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a config the agent loads and keys with modes 0600 in a 0700 directory', () => {
    const result = provision(base);
    const config = loadConfig(result.configFile);
    expect(config).toMatchObject({ deviceId: 'lane-0001', tenantId: 'acme', storeId: 'store-42' });
    expect(config.broker.caFile).toBe(path.join(base.dir, 'keys', 'broker-ca.pem'));
    const keys = loadTerminalKeys(config.keysDir);
    expect(publicKeyFingerprint(keys.devicePublicKey)).toBe(result.fingerprint);
    expect(Buffer.from(keys.tokenKey).toString('base64')).toBe(tokenKey);
    expect(brokerTls(config).tls?.cert.toString()).toBe(
      readFileSync(base.certFile as string, 'utf8'),
    );
    expect(mode(config.keysDir)).toBe(0o700);
    expect(mode(base.dir)).toBe(0o700);
    expect(mode(result.configFile)).toBe(0o600);
    for (const file of readdirSync(config.keysDir))
      expect(mode(path.join(config.keysDir, file)), file).toBe(0o600);
  });

  it('prints the device id and fingerprint, and no secret', async () => {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _e, done) {
        out += chunk.toString();
        done();
      },
    });
    const result = await runProvision(
      {
        dir: base.dir,
        deviceId: 'lane-0001',
        tenant: 'acme',
        store: 'store-42',
        broker: base.broker,
        ca: base.caFile,
        cert: base.certFile,
        key: base.keyFile,
        cloudKey: base.cloudKeyFile,
        vaultKey: base.vaultKeyFile,
        tokenKey: base.tokenKeyFile,
        nonInteractive: true,
      },
      new PassThrough(),
      sink,
    );
    expect(out).toContain('provisioned lane-0001');
    expect(out).toContain(result.fingerprint);
    const secret = readFileSync(path.join(result.keysDir, 'device-signing.key'), 'utf8').trim();
    const apiToken = readFileSync(path.join(result.keysDir, 'api.token'), 'utf8').trim();
    for (const s of [secret, tokenKey, apiToken, readFileSync(base.keyFile as string, 'utf8')])
      expect(out).not.toContain(s.trim());
    expect(out).not.toContain('PRIVATE KEY');
  });

  it('refuses to overwrite existing keys without --force, and replaces them with it', () => {
    const first = provision(base);
    const before = readFileSync(path.join(first.keysDir, 'device-signing.key'), 'utf8');
    let error: unknown;
    try {
      provision(base);
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS504')).toBe(true);
    expect((error as Error).message).toContain('--force');
    expect(readFileSync(path.join(first.keysDir, 'device-signing.key'), 'utf8')).toBe(before);
    const second = provision({ ...base, force: true });
    expect(second.fingerprint).not.toBe(first.fingerprint);
  });

  it('lists every problem at once, writes nothing, and never echoes a secret', () => {
    const other = ca.issue('someone-else');
    const expired = ca.issue('lane-0001-old', { expired: true });
    writeFileSync(path.join(dir, 'short.key'), Buffer.alloc(16, 9).toString('base64'));
    const cases: Array<[Partial<ProvisionOptions>, string]> = [
      [{ deviceId: 'Bad Id' }, '--device-id "Bad Id" is not valid'],
      [{ broker: 'mqtt://broker.example:1883' }, 'plaintext'],
      [{ certFile: other.cert, keyFile: other.key }, 'its subject CN is "someone-else"'],
      [{ certFile: expired.cert, keyFile: expired.key }, 'expired on'],
      [{ keyFile: other.key }, 'does not belong to the certificate'],
      [
        { tokenKeyFile: path.join(dir, 'short.key') },
        'expected base64 of 32 bytes, found 16 bytes',
      ],
      [{ caFile: path.join(dir, 'missing.pem') }, 'cannot read (ENOENT)'],
    ];
    for (const [patch, expected] of cases) {
      let error: unknown;
      try {
        provision({ ...base, ...patch });
      } catch (e) {
        error = e;
      }
      expect(isAgentError(error, 'POS504'), expected).toBe(true);
      expect((error as Error).message, expected).toContain(expected);
      expect(existsSync(base.dir), expected).toBe(false);
    }
    let all: unknown;
    try {
      provision({
        dir: base.dir,
        deviceId: 'X',
        broker: 'http://nope',
        tokenKeyFile: path.join(dir, 'short.key'),
      });
    } catch (e) {
      all = e;
    }
    const message = (all as Error).message;
    expect(message).toMatch(/7 problems/);
    for (const flag of [
      '--device-id',
      '--tenant',
      '--store',
      '--broker',
      '--cloud-key',
      '--vault-key',
      '--token-key',
    ])
      expect(message).toContain(flag);
    expect(message).not.toContain(Buffer.alloc(16, 9).toString('base64'));
  });

  it('generates a client key and a CSR with CN = device id for the cloud to sign', () => {
    const { certFile: _cert, keyFile: _key, ...withoutCert } = base;
    const result = provision({ ...withoutCert, generateCsr: true });
    expect(result.csrFile).toBeDefined();
    const subject = execFileSync(
      'openssl',
      ['req', '-in', result.csrFile as string, '-noout', '-subject'],
      {
        encoding: 'utf8',
      },
    );
    expect(subject).toMatch(/CN\s*=\s*lane-0001/);
    expect(mode(path.join(result.keysDir, 'client.key'))).toBe(0o600);
    const signed = ca.signCsr(result.csrFile as string, 'lane-0001-signed');
    expect(readFileSync(signed, 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it('asks for what the flags did not give, refusing each bad answer as it is typed', async () => {
    // A typist: for each question, the answers tried in order; validate decides which is kept.
    const typed: Record<string, string[]> = {
      'Device id': ['Lane 1', 'lane-0001'],
      'Tenant id': ['acme'],
      'Store id': ['store-42'],
      'Broker URL': ['http://broker', base.broker as string],
      'PIN pad path': [''],
      'Broker CA': [path.join(dir, 'no-such-ca.pem'), base.caFile as string],
      'Client certificate': [base.certFile as string],
      'Client key': [base.cloudKeyFile as string, base.keyFile as string],
      'Cloud signing': [base.tokenKeyFile as string],
      'Vault public': [base.vaultKeyFile as string],
      'Tenant token': [base.tokenKeyFile as string],
    };
    const refused: string[] = [];
    const asked: string[] = [];
    const options = await promptMissing(
      { dir: base.dir },
      new PassThrough(),
      new PassThrough(),
      async (q) => {
        asked.push(`${q.message}${q.default !== undefined ? ` [${q.default}]` : ''}`);
        const key = Object.keys(typed).find((k) => q.message.startsWith(k));
        for (const answer of typed[key ?? ''] ?? []) {
          const value = answer === '' ? (q.default ?? '') : answer;
          const ok = q.validate(value);
          if (ok === true) return answer;
          refused.push(`${key ?? ''}: ${ok}`);
        }
        throw new Error(`no valid answer for ${q.message}`);
      },
    );
    expect(refused).toEqual([
      'Device id: use 3–64 characters of a–z, 0–9 and -, e.g. store-0042-lane-3',
      'Broker URL: not a broker URL: give mqtts://host:8883',
      `Broker CA: ${path.join(dir, 'no-such-ca.pem')}: no such file`,
      'Client key: not a PEM private key',
    ]);
    expect(options).toMatchObject({
      deviceId: 'lane-0001',
      pinPad: '/dev/ttyUSB0',
      tenant: 'acme',
    });
    expect(asked).toContain('PIN pad path (pos-agent devices lists them) [/dev/ttyUSB0]');
    expect(provision(options).deviceId).toBe('lane-0001');
  });

  it.skipIf(process.getuid?.() !== 0)(
    '--owner gives the config, keys and data folder to the service user (as root)',
    () => {
      const result = provision({ ...base, owner: 'nobody', dataDir: path.join(dir, 'var-data') });
      const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
      for (const p of [
        base.dir,
        result.configFile,
        result.keysDir,
        path.join(result.keysDir, 'device-signing.key'),
        path.join(result.keysDir, 'client.key'),
        path.join(dir, 'var-data'),
      ])
        expect(statSync(p).uid, p).toBe(nobody);
      expect(loadConfig(result.configFile).dataDir).toBe(path.join(dir, 'var-data'));
    },
  );

  it('says out loud that the PIN pad path is the default when no --pinpad was given', () => {
    const { pinPad: _p, ...withoutPad } = base;
    const result = provision(withoutPad);
    expect(result.pinPadDefaulted).toBe(true);
    expect(loadConfig(result.configFile).pinPad.path).toBe('/dev/ttyUSB0');
    expect(describeProvisioning(result)).toMatch(
      /PIN pad +\/dev\/ttyUSB0 \(the default: no --pinpad was given/,
    );
    // Control: a given path is not called a default.
    rmSync(path.join(base.dir, 'config.json'));
    const given = provision({ ...base, force: true });
    expect(describeProvisioning(given)).not.toMatch(/the default/);
  });

  it('shows the reason under the prompt and keeps asking (real @inquirer/input on streams)', async () => {
    const input = new PassThrough();
    let screen = '';
    let all = '';
    // Each step waits for text on the screen, then types (\x15 = Ctrl-U clears the line).
    const steps: Array<[RegExp, string]> = [
      [/Device id/, 'Lane 1\r'],
      [/3–64 characters/, '\x15lane-0002\r'],
    ];
    const output = new Writable({
      write(chunk: Buffer, _e, done) {
        screen += chunk.toString();
        all += chunk.toString();
        const step = steps[0];
        if (step !== undefined && step[0].test(screen)) {
          steps.shift();
          screen = '';
          setImmediate(() => input.write(step[1]));
        }
        done();
      },
    });
    const { deviceId: _d, ...rest } = base;
    const options = await promptMissing(rest, input, output);
    expect(options.deviceId).toBe('lane-0002');
    expect(all).toContain('use 3–64 characters of a–z, 0–9 and -');
  });
});

describe('broker transport security in the config', () => {
  const config = (broker: Record<string, unknown>): unknown => ({
    deviceId: 'lane-0001',
    dataDir: '/tmp/x',
    keysDir: '/tmp/y',
    pinPad: { path: 'mock://pad' },
    broker,
  });

  it('refuses plaintext mqtt:// unless the config says development, loopback included', () => {
    expect(() => parseConfig(config({ url: 'mqtt://broker.example:1883' }))).toThrow(
      /plaintext mqtt:\/\/ is refused/,
    );
    expect(() => parseConfig(config({ url: 'mqtt://127.0.0.1:1883' }))).toThrow(
      /plaintext mqtt:\/\/ is refused/,
    );
    // Development allows plaintext to loopback only (issue 11).
    expect(() =>
      parseConfig(config({ url: 'mqtt://broker.example:1883', development: true })),
    ).toThrow(/only to loopback/);
    expect(
      parseConfig(config({ url: 'mqtt://127.0.0.1:1883', development: true })).broker.url,
    ).toBe('mqtt://127.0.0.1:1883');
  });

  it('requires the CA, client certificate and key for mqtts://, every missing one listed', () => {
    let error: unknown;
    try {
      parseConfig(config({ url: 'mqtts://broker.example:8883' }));
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS501')).toBe(true);
    for (const field of ['broker.caFile', 'broker.certFile', 'broker.keyFile'])
      expect((error as Error).message).toContain(field);
  });
});
