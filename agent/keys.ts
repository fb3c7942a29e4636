/**
 * The key files of a terminal (architecture.md §2, §5). Each file holds one key as base64 text and is
 * written with mode 0600 in a 0700 directory:
 *
 * | file                 | bytes | what |
 * |----------------------|-------|------|
 * | `device-signing.key` | 64    | the device's Ed25519 secret key (signs uplinks) |
 * | `token.key`          | 32    | the tenant's token key (HMAC-SHA-256 of the PAN, PCI DSS 4.0.1 req. 3.5.1.1), wrapped: see below |
 * | `vault.pub`          | 32    | the cloud vault's X25519 public key (card data is sealed to it) |
 * | `cloud-signing.pub`  | 32    | the cloud core's Ed25519 public key (pinned; verifies downlinks) |
 * | `api.token`          | ≥ 32 chars | the bearer token of the local API |
 *
 * Key material never appears in logs or error messages: errors name the file and the problem.
 *
 * **The token key never lies in the clear beside the tokens** (issue 11; docs/security.md): with
 * the token key and a token's first 6 / last 4, about 10⁵ HMACs give back the PAN. So `token.key`
 * holds the key wrapped by a host key-encryption key (KEK) kept outside the data and keys
 * folders:
 *
 * ```
 *  token.key   = "kek1:" base64( nonce (24) ‖ nacl.secretbox(tokenKey, nonce, hostKey) )
 *  host key    = 32 random bytes, base64, found at (first that applies):
 *                $CREDENTIALS_DIRECTORY/pos-agent-host-key   systemd LoadCredential= /
 *                                                            LoadCredentialEncrypted= (TPM2)
 *                $POS_AGENT_HOST_KEY_FILE                    a root-only file of your choice
 *                /etc/pos-agent/host.key                     default, 0600 in a 0700 folder
 * ```
 * The token key itself is unchanged, so tokens stay stable per tenant. A plain (legacy)
 * `token.key` is wrapped at the first `pos-agent run` ({@link protectTokenKey}), or the start is
 * refused with POS517 and the fix.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import { AgentError } from '../common/agent-error.js';
import { b64, ensurePrivateDir, errnoOf, FILES, replaceKeyFile, writeKey } from './key-files.js';
import { readTokenKey } from './token-key.js';

export { ensurePrivateDir } from './key-files.js';
export {
  DEFAULT_HOST_KEY_FILE,
  HOST_KEY_CREDENTIAL,
  protectTokenKey,
  resolveHostKeyFile,
  unwrapTokenKey,
  WRAPPED_TOKEN_KEY_PREFIX,
  wrapTokenKey,
} from './token-key.js';

/** The keys the agent runs with. */
export interface TerminalKeys {
  /** Ed25519 secret key, 64 bytes (tweetnacl layout: seed ‖ public key). */
  deviceSecretKey: Uint8Array;
  /** Ed25519 public key, 32 bytes. */
  devicePublicKey: Uint8Array;
  /** Tenant token key, 32 bytes. */
  tokenKey: Uint8Array;
  /** Vault X25519 public key, 32 bytes. */
  vaultPublicKey: Uint8Array;
  /** Cloud core Ed25519 public key, 32 bytes. */
  cloudPublicKey: Uint8Array;
  /** Bearer token of the local API. */
  apiToken: string;
}

/** The cloud side's secret keys, which only the simulator holds (a real terminal never has them). */
export interface CloudSideKeys {
  /** Vault X25519 secret key, 32 bytes (opens sealed card data). */
  vaultSecretKey: Uint8Array;
  /** Cloud core Ed25519 secret key, 64 bytes (signs downlinks). */
  cloudSecretKey: Uint8Array;
}

/**
 * Reads the key files of `dir`. A wrapped `token.key` is opened with the host key
 * ({@link resolveHostKeyFile}); a plain one is read as it is (legacy: `pos-agent run` wraps it
 * first, {@link protectTokenKey}).
 *
 * @param options.hostKeyFile — the host key file; default {@link resolveHostKeyFile}.
 * @throws AgentError POS502 listing every missing, unreadable or wrong-length file (the host key
 *   or a token key it does not open included), with the fix.
 */
export function loadTerminalKeys(
  dir: string,
  options: { hostKeyFile?: string; env?: NodeJS.ProcessEnv } = {},
): TerminalKeys {
  const problems: string[] = [];
  const read = (name: keyof typeof FILES): Uint8Array => {
    const { file, bytes } = FILES[name];
    const full = path.join(dir, file);
    try {
      const key = new Uint8Array(Buffer.from(readFileSync(full, 'utf8').trim(), 'base64'));
      if (key.length !== bytes)
        problems.push(`${full}: holds ${key.length} bytes, expected ${bytes} (base64 text)`);
      return key;
    } catch (cause) {
      problems.push(`${full}: cannot read (${errnoOf(cause)})`);
      return new Uint8Array(bytes);
    }
  };
  const deviceSecretKey = read('deviceSecretKey');
  const tokenKey = readTokenKey(dir, options, problems);
  const vaultPublicKey = read('vaultPublicKey');
  const cloudPublicKey = read('cloudPublicKey');
  let apiToken = '';
  const tokenFile = path.join(dir, 'api.token');
  try {
    apiToken = readFileSync(tokenFile, 'utf8').trim();
    if (apiToken.length < 32)
      problems.push(`${tokenFile}: the token is shorter than 32 characters`);
  } catch (cause) {
    problems.push(`${tokenFile}: cannot read (${errnoOf(cause)})`);
  }
  if (problems.length > 0) {
    throw new AgentError(
      'POS502',
      `the keys directory ${dir} has ${problems.length} problem(s):\n${problems.map((p, i) => `  ${i + 1}. ${p}`).join('\n')}\n` +
        'Fix: provision the terminal again, or for a development setup run "pos-agent init-dev --dir DIR".',
    );
  }
  return {
    deviceSecretKey,
    devicePublicKey: deviceSecretKey.slice(32),
    tokenKey,
    vaultPublicKey,
    cloudPublicKey,
    apiToken,
  };
}

/**
 * Generates a complete development key set: the terminal's files in `dir`, and the cloud side's
 * secret keys returned (for the simulator). For the demo and `pos-agent init-dev`; production
 * terminals are provisioned with the real cloud's public keys.
 *
 * @throws AgentError POS503 when `dir` cannot be written; refuses to overwrite an existing
 *   `device-signing.key` (POS503) so a provisioned terminal is never clobbered by accident.
 */
export function generateDevelopmentKeys(dir: string): {
  terminal: TerminalKeys;
  cloud: CloudSideKeys;
} {
  ensurePrivateDir(dir);
  if (existsSync(path.join(dir, FILES.deviceSecretKey.file))) {
    throw new AgentError('POS503', `${dir} already holds a device key; choose an empty directory`);
  }
  const device = nacl.sign.keyPair();
  const cloud = nacl.sign.keyPair();
  const vault = nacl.box.keyPair();
  const tokenKey = new Uint8Array(randomBytes(32));
  const apiToken = randomBytes(32).toString('base64url');
  writeTerminalKeys(dir, {
    deviceSecretKey: device.secretKey,
    tokenKey,
    vaultPublicKey: vault.publicKey,
    cloudPublicKey: cloud.publicKey,
    apiToken,
  });
  return {
    terminal: {
      deviceSecretKey: device.secretKey,
      devicePublicKey: device.publicKey,
      tokenKey,
      vaultPublicKey: vault.publicKey,
      cloudPublicKey: cloud.publicKey,
      apiToken,
    },
    cloud: { vaultSecretKey: vault.secretKey, cloudSecretKey: cloud.secretKey },
  };
}

/**
 * Writes the cloud side's secret keys for a development simulator (`sim cloud --keys DIR`).
 * Never part of a terminal's keys directory.
 */
export function writeCloudSideKeys(
  dir: string,
  keys: CloudSideKeys & { devicePublicKeys: Record<string, Uint8Array> },
): void {
  ensurePrivateDir(dir);
  writeKey(path.join(dir, 'vault.key'), b64(keys.vaultSecretKey));
  writeKey(path.join(dir, 'cloud-signing.key'), b64(keys.cloudSecretKey));
  writeKey(
    path.join(dir, 'devices.json'),
    JSON.stringify(
      Object.fromEntries(Object.entries(keys.devicePublicKeys).map(([id, k]) => [id, b64(k)])),
    ),
  );
}

/**
 * Reads what {@link writeCloudSideKeys} wrote.
 *
 * @throws AgentError POS502 when a file is missing or malformed.
 */
export function loadCloudSideKeys(
  dir: string,
): CloudSideKeys & { devicePublicKeys: Map<string, Uint8Array> } {
  try {
    const key = (f: string): Uint8Array =>
      new Uint8Array(Buffer.from(readFileSync(path.join(dir, f), 'utf8').trim(), 'base64'));
    const devices = JSON.parse(readFileSync(path.join(dir, 'devices.json'), 'utf8')) as Record<
      string,
      string
    >;
    return {
      vaultSecretKey: key('vault.key'),
      cloudSecretKey: key('cloud-signing.key'),
      devicePublicKeys: new Map(
        Object.entries(devices).map(([id, k]) => [id, new Uint8Array(Buffer.from(k, 'base64'))]),
      ),
    };
  } catch (cause) {
    throw new AgentError(
      'POS502',
      `cannot read the simulator's cloud keys in ${dir}: ${(cause as Error).message}; run "pos-agent init-dev" first`,
      { cause },
    );
  }
}

/**
 * The TLS options of the MQTT session for an `mqtts://` broker (mutual TLS, architecture.md §5): the
 * pinned CA (the only one trusted: Node's default root store is replaced, not extended), the
 * client certificate and its private key, read from the files named in `broker.caFile`,
 * `certFile` and `keyFile`. Returns `{}` for `mqtt://` (allowed only with `broker.development`,
 * see agent/config.ts).
 *
 * @throws AgentError POS502 naming each unreadable file (never its content).
 */
export function brokerTls(config: {
  broker: {
    url: string;
    caFile?: string | undefined;
    certFile?: string | undefined;
    keyFile?: string | undefined;
  };
}): { tls?: { ca: Buffer; cert: Buffer; key: Buffer; rejectUnauthorized: true } } {
  if (!config.broker.url.startsWith('mqtts://')) return {};
  const problems: string[] = [];
  const read = (field: 'caFile' | 'certFile' | 'keyFile'): Buffer => {
    const file = config.broker[field];
    if (file === undefined) {
      problems.push(`broker.${field} is not set`);
      return Buffer.alloc(0);
    }
    try {
      return readFileSync(file);
    } catch (cause) {
      problems.push(`${file} (broker.${field}): cannot read (${errnoOf(cause)})`);
      return Buffer.alloc(0);
    }
  };
  const ca = read('caFile');
  const cert = read('certFile');
  const key = read('keyFile');
  if (problems.length > 0) {
    throw new AgentError(
      'POS502',
      `the broker's TLS files have ${problems.length} problem(s):\n${problems.map((p, i) => `  ${i + 1}. ${p}`).join('\n')}\n` +
        'Fix: run "pos-agent provision" again with --ca, --cert and --key, or correct the paths in the config.',
    );
  }
  return { tls: { ca, cert, key, rejectUnauthorized: true } };
}

/**
 * Fingerprint of the device's Ed25519 public key for the cloud's device registry: the SHA-256
 * of the 32 key bytes as colon-separated hex pairs (as `ssh-keygen -l` and certificate viewers
 * show it). The first 16 hex digits are the envelope key id (cloud-sync/envelope.ts `keyId`).
 */
export function publicKeyFingerprint(publicKey: Uint8Array): string {
  const hex = createHash('sha256').update(publicKey).digest('hex');
  return `SHA256:${hex.match(/../g)?.join(':') ?? hex}`;
}

/** What {@link writeTerminalKeys} writes; keys as raw bytes. */
export interface ProvisionedKeys {
  deviceSecretKey: Uint8Array;
  tokenKey: Uint8Array;
  vaultPublicKey: Uint8Array;
  cloudPublicKey: Uint8Array;
  apiToken: string;
}

/** The key file names of a terminal, for provisioning and `pos-agent doctor`. */
export const TERMINAL_KEY_FILES: readonly string[] = [
  FILES.deviceSecretKey.file,
  FILES.tokenKey.file,
  FILES.vaultPublicKey.file,
  FILES.cloudPublicKey.file,
  'api.token',
];

/**
 * Writes a terminal's key files into `dir` (created 0700; files 0600). With `force` false, an
 * existing `device-signing.key` is never replaced.
 *
 * @throws AgentError POS503 when `dir` cannot be written or a device key exists without `force`.
 */
export function writeTerminalKeys(dir: string, keys: ProvisionedKeys, force = false): void {
  ensurePrivateDir(dir);
  if (!force && existsSync(path.join(dir, FILES.deviceSecretKey.file))) {
    throw new AgentError(
      'POS503',
      `${dir} already holds a device key; pass --force to replace it (the cloud must then register the new public key)`,
    );
  }
  try {
    writeKey(path.join(dir, FILES.deviceSecretKey.file), b64(keys.deviceSecretKey));
    writeKey(path.join(dir, FILES.tokenKey.file), b64(keys.tokenKey));
    writeKey(path.join(dir, FILES.vaultPublicKey.file), b64(keys.vaultPublicKey));
    writeKey(path.join(dir, FILES.cloudPublicKey.file), b64(keys.cloudPublicKey));
    writeKey(path.join(dir, 'api.token'), keys.apiToken);
  } catch (cause) {
    throw new AgentError(
      'POS503',
      `cannot write the key files in ${dir} (${errnoOf(cause)}): check the directory's owner and free space`,
      { cause },
    );
  }
}

/**
 * Replaces the device signing key file (key rotation by cloud command): written to a temporary
 * file 0600 and renamed over the old one, so a crash leaves either the old or the new key.
 *
 * @throws AgentError POS503 when the file cannot be written.
 */
export function replaceDeviceSigningKey(dir: string, secretKey: Uint8Array): void {
  replaceKeyFile(path.join(dir, FILES.deviceSecretKey.file), b64(secretKey));
}
