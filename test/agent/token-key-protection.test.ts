/**
 * Tokens a stolen disk cannot reverse (issue 11 item 3): the token key lies in keys/token.key
 * only wrapped by a host key kept outside the data and keys folders; a plain (legacy) key is
 * wrapped on the first start, tokens stay the same, and the data and keys folders alone cannot
 * recompute a token.
 */
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  generateDevelopmentKeys,
  loadTerminalKeys,
  protectTokenKey,
  resolveHostKeyFile,
  unwrapTokenKey,
  wrapTokenKey,
} from '../../agent/keys.js';
import { isAgentError } from '../../common/agent-error.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'pos-tokenkey-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (error) {
    return isAgentError(error) ? error.code : String(error);
  }
  return undefined;
};

/** The token of the Visa test card through the real card boundary. */
function tokenOf(tokenKey: Uint8Array): string {
  const boundary = new CardBoundary({ tokenKey, vaultPublicKey: nacl.box.keyPair().publicKey });
  const result = boundary.tokenize({
    entryMode: 'swipe',
    track2: Buffer.from(';4111111111111111=30121010000000000?'),
  });
  if (!result.ok) throw result.error;
  return result.card.token;
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile());
}

describe('token key wrapped by a host key outside the data and keys folders', () => {
  it('wraps a plain token.key on first start; tokens stay the same; the file no longer holds the key', () => {
    const keysDir = path.join(root, 'keys');
    const dataDir = path.join(root, 'data');
    mkdirSync(dataDir);
    const hostKeyFile = path.join(root, 'etc', 'host.key');
    const { terminal } = generateDevelopmentKeys(keysDir);
    const before = tokenOf(terminal.tokenKey);
    const plain = Buffer.from(terminal.tokenKey);

    expect(protectTokenKey(keysDir, { dataDir, hostKeyFile })).toBe('wrapped');
    expect(statSync(hostKeyFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(hostKeyFile)).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(keysDir, 'token.key')).mode & 0o777).toBe(0o600);
    const onDisk = readFileSync(path.join(keysDir, 'token.key'));
    expect(onDisk.toString()).toMatch(/^kek1:/);
    for (const form of [
      plain,
      Buffer.from(plain.toString('base64')),
      Buffer.from(plain.toString('hex')),
    ])
      expect(onDisk.includes(form)).toBe(false);

    const loaded = loadTerminalKeys(keysDir, { hostKeyFile });
    expect(Buffer.from(loaded.tokenKey)).toEqual(plain);
    expect(tokenOf(loaded.tokenKey)).toBe(before);
    // Idempotent: a second start changes nothing.
    expect(protectTokenKey(keysDir, { dataDir, hostKeyFile })).toBe('already');
  });

  it('a copy of the data and keys folders alone cannot recompute tokens', () => {
    const keysDir = path.join(root, 'keys');
    const dataDir = path.join(root, 'data');
    mkdirSync(dataDir);
    const hostKeyFile = path.join(root, 'etc', 'host.key');
    const { terminal } = generateDevelopmentKeys(keysDir);
    const plain = Buffer.from(terminal.tokenKey);
    protectTokenKey(keysDir, { dataDir, hostKeyFile });

    // The thief's copy: data + keys, not the host key.
    const stolen = path.join(root, 'stolen');
    cpSync(keysDir, path.join(stolen, 'keys'), { recursive: true });
    cpSync(dataDir, path.join(stolen, 'data'), { recursive: true });
    for (const file of filesUnder(stolen)) {
      const content = readFileSync(file);
      for (const form of [
        plain,
        Buffer.from(plain.toString('base64')),
        Buffer.from(plain.toString('hex')),
      ])
        expect(content.includes(form)).toBe(false);
    }
    const missingHostKey = path.join(root, 'elsewhere', 'host.key');
    expect(
      codeOf(() => loadTerminalKeys(path.join(stolen, 'keys'), { hostKeyFile: missingHostKey })),
    ).toBe('POS502');
    // Control: with the host key the same folder does open.
    expect(
      Buffer.from(loadTerminalKeys(path.join(stolen, 'keys'), { hostKeyFile }).tokenKey),
    ).toEqual(plain);
  });

  it('refuses a host key inside the keys or data folder (POS517), and a wrong host key', () => {
    const keysDir = path.join(root, 'keys');
    const dataDir = path.join(root, 'data');
    mkdirSync(dataDir);
    generateDevelopmentKeys(keysDir);
    expect(
      codeOf(() =>
        protectTokenKey(keysDir, { dataDir, hostKeyFile: path.join(keysDir, 'host.key') }),
      ),
    ).toBe('POS517');
    expect(
      codeOf(() =>
        protectTokenKey(keysDir, { dataDir, hostKeyFile: path.join(dataDir, 'sub', 'host.key') }),
      ),
    ).toBe('POS517');
    const wrapped = wrapTokenKey(new Uint8Array(32).fill(7), new Uint8Array(32).fill(1));
    expect(codeOf(() => unwrapTokenKey(wrapped, new Uint8Array(32).fill(2)))).toBe('POS517');
    expect(Buffer.from(unwrapTokenKey(wrapped, new Uint8Array(32).fill(1)))).toEqual(
      Buffer.alloc(32, 7),
    );
  });

  it('refuses to start with a plain key when the host key cannot be created (POS517, names the fix)', () => {
    const keysDir = path.join(root, 'keys');
    generateDevelopmentKeys(keysDir);
    // A path under a regular file can never be created, whoever runs the test (root included).
    const blocker = path.join(root, 'blocker');
    cpSync(path.join(keysDir, 'api.token'), blocker);
    let error: unknown;
    try {
      protectTokenKey(keysDir, { hostKeyFile: path.join(blocker, 'host.key') });
    } catch (caught) {
      error = caught;
    }
    expect(isAgentError(error) ? error.code : error).toBe('POS517');
    expect((error as Error).message).toContain('POS_AGENT_HOST_KEY_FILE');
    expect(readFileSync(path.join(keysDir, 'token.key'), 'utf8')).not.toMatch(/^kek1:/);
  });

  it('finds the host key in the systemd credentials folder first, then POS_AGENT_HOST_KEY_FILE', () => {
    expect(
      resolveHostKeyFile({ CREDENTIALS_DIRECTORY: '/run/credentials/pos-agent.service' }),
    ).toBe('/run/credentials/pos-agent.service/pos-agent-host-key');
    expect(resolveHostKeyFile({ POS_AGENT_HOST_KEY_FILE: '/srv/k' })).toBe('/srv/k');
    expect(resolveHostKeyFile({})).toBe('/etc/pos-agent/host.key');
  });
});
