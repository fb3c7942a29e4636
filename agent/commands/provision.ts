/**
 * `pos-agent provision`: what a field tech runs once on a new terminal (architecture.md §1 users, issue 5).
 *
 * ```
 * DIR/config.json          0600  the agent's config (broker mqtts:// with the TLS files below)
 * DIR/keys/            0700
 *   device-signing.key     0600  NEW Ed25519 secret key of the device (signs uplinks)
 *   token.key              0600  the tenant's token key (HMAC of the PAN; never leaves the terminal)
 *   vault.pub              0600  the vault's X25519 public key (pinned; card data is sealed to it)
 *   cloud-signing.pub      0600  the cloud core's Ed25519 public key (pinned; verifies downlinks)
 *   api.token              0600  NEW bearer token of the local API
 *   broker-ca.pem          0600  the CA of the broker's certificate (pinned)
 *   client.pem / client.key 0600 the client certificate and its key (mutual TLS), or
 *   client.key + client.csr      a generated key and a CSR for the cloud to sign (--generate-csr)
 * DIR/data/            0700  the SQLite database (created at first start); --data-dir chooses
 *                            another (the Debian package: /var/lib/pos-agent)
 * ```
 *
 * `DIR` defaults to the directory of the config file the other commands use (`$POS_AGENT_CONFIG`,
 * else `/etc/pos-agent`), so `doctor`, `queue` and `run` find it without `--config`. Every default
 * that matters is said in the output: the PIN pad path when no `--pinpad` was given.
 *
 * Every value is validated before anything is written, and every problem is listed at once
 * (POS504). Existing keys are never overwritten without `--force`. Secrets — the token key, the
 * client key, the device secret key — are read from files (never from the command line, where
 * `ps` would show them) and never appear in the output, logs or error messages: errors name the
 * file and the problem only.
 *
 * Interactive mode (stdin is a TTY and `--non-interactive` is not given): every value not given
 * as a flag is asked for, with a default where one makes sense, and each answer is checked as it
 * is typed (@inquirer/input): a bad device id, broker URL, PIN pad path or key file is refused on
 * the spot with the reason, and only that answer is typed again.
 *
 * This file validates and writes; the prompts are agent/commands/provision-prompts.ts,
 * registration by claim agent/commands/provision-claim.ts, the CLI action and its output
 * agent/commands/provision-command.ts.
 */
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import { AgentError } from '../../common/agent-error.js';
import { keyId } from '../../cloud-sync/envelope.js';
import { AgentConfigSchema, CONFIG_DEFAULTS, type AgentConfigInput } from '../config.js';
import {
  ensurePrivateDir,
  publicKeyFingerprint,
  TERMINAL_KEY_FILES,
  writeTerminalKeys,
} from '../keys.js';

/** The answers of a provisioning run. Paths are files to read; nothing secret is a value. */
export interface ProvisionOptions {
  /** Directory to write `config.json`, `keys/` and `data/` into. */
  dir: string;
  /** Device id: the MQTT client id, the `{d}` of the topics and the CN of the client certificate. */
  deviceId?: string;
  tenant?: string;
  store?: string;
  /** `mqtts://host:port` (or `mqtt://` with `development`). */
  broker?: string;
  /** PIN pad path: `/dev/…`, `tcp://host:port` or `mock://name`. Default `/dev/ttyUSB0`. */
  pinPad?: string;
  /** PEM file of the broker's CA (pinned). */
  caFile?: string;
  /** PEM file of the client certificate (CN = device id). */
  certFile?: string;
  /** PEM file of the client certificate's private key. */
  keyFile?: string;
  /** Instead of cert/key: generate a P-256 key and a CSR (CN = device id) with openssl. */
  generateCsr?: boolean;
  /** File holding the cloud core's Ed25519 public key (base64 of 32 bytes). */
  cloudKeyFile?: string;
  /** File holding the vault's X25519 public key (base64 of 32 bytes). */
  vaultKeyFile?: string;
  /** File holding the tenant token key (base64 of 32 bytes). */
  tokenKeyFile?: string;
  /** Local API port. Default: the schema's `api.port` ({@link CONFIG_DEFAULTS}). */
  apiPort?: number;
  /** Directory of the database. Default `DIR/data`. */
  dataDir?: string;
  /**
   * Give the written folders and files to this user and its group (the Debian package's service
   * user `pos-agent`), so a root shell can provision for the service. Needs root.
   */
  owner?: string;
  /** Allow plaintext `mqtt://` (a development setup). */
  development?: boolean;
  /** Replace existing keys and config. */
  force?: boolean;
}

/** What was provisioned; printed for the cloud's device registry. */
export interface ProvisionResult {
  deviceId: string;
  configFile: string;
  keysDir: string;
  /** SHA-256 fingerprint of the device's Ed25519 public key. */
  fingerprint: string;
  /** Envelope key id (first 16 hex digits of the fingerprint). */
  kid: string;
  /** Base64 of the device's Ed25519 public key, to register in the cloud. */
  publicKey: string;
  /** Path of the CSR when `generateCsr`. */
  csrFile?: string;
  /** The PIN pad path written to the config. */
  pinPad: string;
  /** True when no PIN pad was given and the default `/dev/ttyUSB0` was written. */
  pinPadDefaulted: boolean;
  /** The database directory written to the config (absolute). */
  dataDir: string;
}

/** The PIN pad path written when none is given: the first USB-serial adapter. */
export const DEFAULT_PIN_PAD = '/dev/ttyUSB0';

/** A device, tenant or store id: 1–64 characters of a–z, 0–9 and -. */
export const ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Reads a base64 key file of `bytes` bytes; a problem is pushed instead of thrown. */
export function readKeyFile(
  file: string | undefined,
  flag: string,
  bytes: number,
  problems: string[],
): Uint8Array | undefined {
  if (file === undefined) {
    problems.push(`${flag} is missing: give the file with the key (base64 of ${bytes} bytes)`);
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (cause) {
    problems.push(
      `${flag} ${file}: cannot read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
    );
    return undefined;
  }
  const key = Buffer.from(text, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || key.length !== bytes) {
    problems.push(
      `${flag} ${file}: expected base64 of ${bytes} bytes, found ${/^[A-Za-z0-9+/]+={0,2}$/.test(text) ? `${key.length} bytes` : 'text that is not base64'}; ask the cloud team for the right file`,
    );
    return undefined;
  }
  return new Uint8Array(key);
}

/** Reads a PEM X.509 certificate file; a problem is pushed instead of thrown. */
export function readCert(
  file: string | undefined,
  flag: string,
  problems: string[],
): X509Certificate | undefined {
  if (file === undefined) return undefined;
  try {
    return new X509Certificate(readFileSync(file));
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    problems.push(
      `${flag} ${file}: ${code?.startsWith('E') === true && code !== 'ERR_OSSL_PEM_NO_START_LINE' ? `cannot read (${code})` : 'not a PEM X.509 certificate'}`,
    );
    return undefined;
  }
}

/**
 * Validates every answer and lists every problem; writes nothing.
 *
 * @returns the problems (empty when all is well) and the parsed keys.
 */
export function validateProvisioning(
  options: ProvisionOptions,
  now: number = Date.now(),
): {
  problems: string[];
  keys?: { cloud: Uint8Array; vault: Uint8Array; token: Uint8Array };
} {
  const problems: string[] = [];
  const o = options;
  if (o.deviceId === undefined || !/^[a-z0-9][a-z0-9-]{2,63}$/.test(o.deviceId))
    problems.push(
      `--device-id ${o.deviceId === undefined ? 'is missing' : `"${o.deviceId}" is not valid`}: use 3–64 characters of a–z, 0–9 and -, e.g. store-0042-lane-3`,
    );
  if (o.tenant === undefined || !ID.test(o.tenant))
    problems.push(
      `--tenant ${o.tenant === undefined ? 'is missing' : `"${o.tenant}" is not valid`}: use 1–64 characters of a–z, 0–9 and -`,
    );
  if (o.store === undefined || !ID.test(o.store))
    problems.push(
      `--store ${o.store === undefined ? 'is missing' : `"${o.store}" is not valid`}: use 1–64 characters of a–z, 0–9 and -`,
    );
  const tls = o.broker?.startsWith('mqtts://') === true;
  if (o.broker === undefined) problems.push('--broker is missing: give mqtts://host:8883');
  else if (!/^mqtts?:\/\/[^/\s]+(:\d{1,5})?\/?$/.test(o.broker))
    problems.push(`--broker "${o.broker}" is not a broker URL: give mqtts://host:8883`);
  else if (!tls && o.development !== true)
    problems.push(
      `--broker ${o.broker} is plaintext: use mqtts:// (mutual TLS), or pass --development for a development setup`,
    );
  if (tls) {
    if (o.caFile === undefined)
      problems.push("--ca is missing: give the PEM file of the broker's CA");
    const ca = readCert(o.caFile, '--ca', problems);
    if (o.generateCsr === true) {
      if (o.certFile !== undefined || o.keyFile !== undefined)
        problems.push('--generate-csr and --cert/--key exclude each other: choose one');
    } else {
      if (o.certFile === undefined)
        problems.push(
          '--cert is missing: give the client certificate (PEM), or pass --generate-csr',
        );
      if (o.keyFile === undefined)
        problems.push('--key is missing: give the private key of the client certificate (PEM)');
      const cert = readCert(o.certFile, '--cert', problems);
      if (cert !== undefined) {
        if (Date.parse(cert.validTo) <= now)
          problems.push(
            `--cert ${o.certFile}: expired on ${new Date(cert.validTo).toISOString()}; ask the cloud team for a new certificate`,
          );
        if (Date.parse(cert.validFrom) > now)
          problems.push(
            `--cert ${o.certFile}: not valid before ${new Date(cert.validFrom).toISOString()}; check the terminal clock`,
          );
        const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
        if (o.deviceId !== undefined && cn !== o.deviceId)
          problems.push(
            `--cert ${o.certFile}: its subject CN is "${cn ?? ''}", not the device id "${o.deviceId}"; the broker's ACL uses the CN as the user name, so ask for a certificate issued to ${o.deviceId}`,
          );
        if (ca !== undefined && !cert.checkIssued(ca))
          problems.push(
            `--cert ${o.certFile}: not issued by the CA in --ca ${o.caFile ?? ''}; check that both come from the same fleet`,
          );
        else if (ca !== undefined && !cert.verify(ca.publicKey))
          problems.push(`--cert ${o.certFile}: its signature does not verify with --ca`);
        if (o.keyFile !== undefined) {
          try {
            const key = createPrivateKey(readFileSync(o.keyFile));
            if (!cert.checkPrivateKey(key))
              problems.push(
                `--key ${o.keyFile}: does not belong to the certificate in --cert; give the matching key`,
              );
          } catch (cause) {
            const code = (cause as NodeJS.ErrnoException).code;
            problems.push(
              `--key ${o.keyFile}: ${code === 'ENOENT' || code === 'EACCES' ? `cannot read (${code})` : 'not a PEM private key'}`,
            );
          }
        }
      }
    }
  }
  const cloud = readKeyFile(o.cloudKeyFile, '--cloud-key', 32, problems);
  const vault = readKeyFile(o.vaultKeyFile, '--vault-key', 32, problems);
  const token = readKeyFile(o.tokenKeyFile, '--token-key', 32, problems);
  if (o.pinPad !== undefined) {
    const parsed = AgentConfigSchema.shape.pinPad.safeParse({ path: o.pinPad });
    if (!parsed.success)
      problems.push(
        `--pinpad "${o.pinPad}": must be a serial device path (/dev/ttyUSB0), tcp://host:port or mock://name`,
      );
  }
  const keysDir = path.join(path.resolve(o.dir), 'keys');
  if (o.force !== true) {
    const existing = [
      ...TERMINAL_KEY_FILES.map((file) => path.join(keysDir, file)),
      path.join(path.resolve(o.dir), 'config.json'),
    ].filter((file) => existsSync(file));
    if (existing.length > 0)
      problems.push(
        `${path.resolve(o.dir)} is provisioned already (${existing.map((f) => path.basename(f)).join(', ')} exist): pass --force to replace the keys and config (the cloud must then register the new public key)`,
      );
  }
  if (cloud === undefined || vault === undefined || token === undefined) return { problems };
  return { problems, keys: { cloud, vault, token } };
}

/**
 * Provisions the terminal in `options.dir` (see the file header).
 *
 * @throws AgentError POS504 listing every invalid value (nothing is written); POS505 when
 *   openssl fails for `generateCsr`; POS503 when a directory or file cannot be written.
 */
export function provision(options: ProvisionOptions, now: number = Date.now()): ProvisionResult {
  const { problems, keys } = validateProvisioning(options, now);
  if (problems.length > 0 || keys === undefined) {
    throw new AgentError(
      'POS504',
      `provisioning refused, nothing was written; ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p, i) => `  ${i + 1}. ${p}`).join('\n')}\n`,
      { details: { problems } },
    );
  }
  const dir = path.resolve(options.dir);
  const keysDir = path.join(dir, 'keys');
  const deviceId = options.deviceId as string;
  const dataDir = path.resolve(dir, options.dataDir ?? 'data');
  ensurePrivateDir(dir);
  ensurePrivateDir(keysDir);
  ensurePrivateDir(dataDir);

  const brokerUrl = options.broker as string;
  const broker: NonNullable<AgentConfigInput['broker']> = { url: brokerUrl };
  let csrFile: string | undefined;
  if (brokerUrl.startsWith('mqtts://')) {
    copyPrivate(options.caFile as string, path.join(keysDir, 'broker-ca.pem'));
    broker.caFile = 'keys/broker-ca.pem';
    broker.certFile = 'keys/client.pem';
    broker.keyFile = 'keys/client.key';
    if (options.generateCsr === true) {
      csrFile = path.join(keysDir, 'client.csr');
      generateKeyAndCsr(path.join(keysDir, 'client.key'), csrFile, options);
    } else {
      copyPrivate(options.certFile as string, path.join(keysDir, 'client.pem'));
      copyPrivate(options.keyFile as string, path.join(keysDir, 'client.key'));
    }
  }
  if (options.development === true) broker.development = true;

  const device = nacl.sign.keyPair();
  writeTerminalKeys(
    keysDir,
    {
      deviceSecretKey: device.secretKey,
      tokenKey: keys.token,
      vaultPublicKey: keys.vault,
      cloudPublicKey: keys.cloud,
      apiToken: randomBytes(32).toString('base64url'),
    },
    options.force === true,
  );
  device.secretKey.fill(0);
  keys.token.fill(0);

  const config: AgentConfigInput = {
    deviceId,
    ...(options.tenant !== undefined ? { tenantId: options.tenant } : {}),
    ...(options.store !== undefined ? { storeId: options.store } : {}),
    dataDir: options.dataDir === undefined ? 'data' : dataDir,
    keysDir: 'keys',
    pinPad: { path: options.pinPad ?? DEFAULT_PIN_PAD },
    broker,
    // The port is written even when defaulted: the POS app and `pos-agent open` read it here.
    api: { port: options.apiPort ?? CONFIG_DEFAULTS.api.port },
    log: { file: 'agent.log' },
  };
  const configFile = path.join(dir, 'config.json');
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(configFile, 0o600);
  if (options.owner !== undefined) giveTo(options.owner, [dir, configFile, keysDir, dataDir]);
  return {
    deviceId,
    configFile,
    keysDir,
    fingerprint: publicKeyFingerprint(device.publicKey),
    kid: keyId(device.publicKey),
    publicKey: Buffer.from(device.publicKey).toString('base64'),
    ...(csrFile !== undefined ? { csrFile } : {}),
    pinPad: options.pinPad ?? DEFAULT_PIN_PAD,
    pinPadDefaulted: options.pinPad === undefined,
    dataDir,
  };
}

/**
 * Hands folders (with the files directly in them) to `user` and its primary group.
 * @throws AgentError POS503 unknown user, or not allowed (not root).
 */
function giveTo(user: string, paths: string[]): void {
  let uid: number, gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  } catch (cause) {
    throw new AgentError(
      'POS503',
      `--owner ${user}: no such user; install the Debian package (it creates pos-agent) or name an existing user`,
      { cause },
    );
  }
  try {
    for (const p of paths) {
      chownSync(p, uid, gid);
      if (statSync(p).isDirectory())
        for (const name of readdirSync(p)) {
          const child = path.join(p, name);
          if (statSync(child).isFile()) chownSync(child, uid, gid);
        }
    }
  } catch (cause) {
    throw new AgentError(
      'POS503',
      `--owner ${user}: cannot change the owner (${(cause as NodeJS.ErrnoException).code ?? 'error'}); run provision as root (sudo)`,
      { cause },
    );
  }
}

function copyPrivate(from: string, to: string): void {
  copyFileSync(from, to);
  chmodSync(to, 0o600);
}

/** A P-256 key and a CSR with CN = device id, O = tenant, OU = store (openssl req). */
function generateKeyAndCsr(keyFile: string, csrFile: string, options: ProvisionOptions): void {
  try {
    execFileSync(
      'openssl',
      ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    chmodSync(keyFile, 0o600);
    execFileSync(
      'openssl',
      [
        'req',
        '-new',
        '-key',
        keyFile,
        '-subj',
        `/CN=${options.deviceId ?? ''}/O=${options.tenant ?? ''}/OU=${options.store ?? ''}`,
        '-out',
        csrFile,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (cause) {
    throw new AgentError(
      'POS505',
      `openssl could not generate the client key and CSR (${(cause as NodeJS.ErrnoException).code ?? 'failed'}): install openssl, or give --cert and --key`,
      { cause },
    );
  }
}
