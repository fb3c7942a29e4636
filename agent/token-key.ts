/**
 * The token key's protection (issue 11; docs/security.md; the picture is in agent/keys.ts): the
 * host key-encryption key that wraps `token.key`, where it is found, the wrap and unwrap, the
 * read of the token key at start, and {@link protectTokenKey}, which wraps a plain one.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import { AgentError } from '../common/agent-error.js';
import { ensurePrivateDir, errnoOf, FILES, replaceKeyFile } from './key-files.js';

/** Prefix of a wrapped `token.key` (format version 1). */
export const WRAPPED_TOKEN_KEY_PREFIX = 'kek1:';
/** The systemd credential name of the host key (`LoadCredential=pos-agent-host-key:…`). */
export const HOST_KEY_CREDENTIAL = 'pos-agent-host-key';
/** Where the host key lives when neither systemd nor the environment names it. */
export const DEFAULT_HOST_KEY_FILE = '/etc/pos-agent/host.key';

/**
 * The host key-encryption key's file: `$CREDENTIALS_DIRECTORY/pos-agent-host-key` when systemd
 * passes credentials, else `$POS_AGENT_HOST_KEY_FILE`, else {@link DEFAULT_HOST_KEY_FILE}.
 */
export function resolveHostKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CREDENTIALS_DIRECTORY !== undefined && env.CREDENTIALS_DIRECTORY !== '')
    return path.join(env.CREDENTIALS_DIRECTORY, HOST_KEY_CREDENTIAL);
  if (env.POS_AGENT_HOST_KEY_FILE !== undefined && env.POS_AGENT_HOST_KEY_FILE !== '')
    return env.POS_AGENT_HOST_KEY_FILE;
  return DEFAULT_HOST_KEY_FILE;
}

function tokenKeyError(message: string, cause?: unknown): AgentError {
  return new AgentError('POS517', message, cause === undefined ? {} : { cause });
}

/** Reads a host key file: 32 bytes as base64 text. @throws AgentError POS517 */
function readHostKey(file: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = new Uint8Array(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64'));
  } catch (cause) {
    throw tokenKeyError(
      `the host key ${file} cannot be read (${errnoOf(cause)}): the token key is wrapped with it. Fix: restore the host key, or pass it as the systemd credential ${HOST_KEY_CREDENTIAL}, or set POS_AGENT_HOST_KEY_FILE; without it the terminal must be provisioned again`,
      cause,
    );
  }
  if (key.length !== 32)
    throw tokenKeyError(
      `the host key ${file} holds ${key.length} bytes, expected 32 (base64 text)`,
    );
  return key;
}

/**
 * Wraps a token key with the host key: `kek1:` + base64(nonce ‖ nacl.secretbox(...)).
 * @param tokenKey — 32 bytes. @param hostKey — 32 bytes.
 */
export function wrapTokenKey(tokenKey: Uint8Array, hostKey: Uint8Array): string {
  const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
  const box = nacl.secretbox(tokenKey, nonce, hostKey);
  return WRAPPED_TOKEN_KEY_PREFIX + Buffer.concat([nonce, box]).toString('base64');
}

/**
 * Opens a wrapped token key.
 * @throws AgentError POS517 when it is malformed or does not open with this host key.
 */
export function unwrapTokenKey(wrapped: string, hostKey: Uint8Array): Uint8Array {
  const blob = Buffer.from(wrapped.slice(WRAPPED_TOKEN_KEY_PREFIX.length), 'base64');
  const nonce = blob.subarray(0, nacl.secretbox.nonceLength);
  const opened =
    blob.length > nacl.secretbox.nonceLength
      ? nacl.secretbox.open(blob.subarray(nacl.secretbox.nonceLength), nonce, hostKey)
      : null;
  if (opened === null || opened.length !== 32)
    throw tokenKeyError(
      'the wrapped token key does not open with this host key: the host key was replaced or the file altered. Fix: restore the original host key, or provision the terminal again',
    );
  return opened;
}

/**
 * Reads `dir/token.key`: a wrapped one opened with the host key, a plain (legacy) one as it is.
 * A problem is pushed onto `problems` (the caller lists them all) and 32 zero bytes returned.
 */
export function readTokenKey(
  dir: string,
  options: { hostKeyFile?: string; env?: NodeJS.ProcessEnv },
  problems: string[],
): Uint8Array {
  const full = path.join(dir, FILES.tokenKey.file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8').trim();
  } catch (cause) {
    problems.push(`${full}: cannot read (${errnoOf(cause)})`);
    return new Uint8Array(32);
  }
  if (text.startsWith(WRAPPED_TOKEN_KEY_PREFIX)) {
    try {
      const hostKey = readHostKey(options.hostKeyFile ?? resolveHostKeyFile(options.env));
      const key = unwrapTokenKey(text, hostKey);
      hostKey.fill(0);
      return key;
    } catch (error) {
      problems.push(`${full}: ${(error as Error).message}`);
      return new Uint8Array(32);
    }
  }
  const key = new Uint8Array(Buffer.from(text, 'base64'));
  if (key.length !== 32)
    problems.push(`${full}: holds ${key.length} bytes, expected 32 (base64 text)`);
  return key;
}

/** True when `file` is `dir` or inside it (symbolic links resolved where they exist). */
function isInside(file: string, dir: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const relative = path.relative(
    real(dir),
    path.join(real(path.dirname(file)), path.basename(file)),
  );
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * Makes sure `keysDir/token.key` is wrapped with the host key (first start after provisioning,
 * or a terminal provisioned by an older version): creates the host key when it is missing and
 * its place is writable (0600 in a 0700 folder; not in systemd's read-only credentials
 * folder), then rewrites `token.key` wrapped (temporary file + rename). Already wrapped: nothing
 * to do. The token key itself does not change, so tokens stay the same.
 *
 * @param options.dataDir — the data folder; the host key may not lie in it (nor in `keysDir`).
 * @param options.hostKeyFile — default {@link resolveHostKeyFile}.
 * @returns `'wrapped'` when it wrapped a plain key now, `'already'` otherwise.
 * @throws AgentError POS517 when the host key lies inside the data or keys folder, cannot be
 *   created or read (the message names the fix); POS502 when `token.key` is unreadable.
 */
export function protectTokenKey(
  keysDir: string,
  options: { dataDir?: string; hostKeyFile?: string; env?: NodeJS.ProcessEnv } = {},
): 'wrapped' | 'already' {
  const tokenFile = path.join(keysDir, FILES.tokenKey.file);
  let text: string;
  try {
    text = readFileSync(tokenFile, 'utf8').trim();
  } catch (cause) {
    throw new AgentError(
      'POS502',
      `${tokenFile}: cannot read (${errnoOf(cause)}); provision the terminal again`,
      { cause },
    );
  }
  if (text.startsWith(WRAPPED_TOKEN_KEY_PREFIX)) return 'already';
  const hostKeyFile = options.hostKeyFile ?? resolveHostKeyFile(options.env);
  for (const [name, dir] of [
    ['keys', keysDir],
    ['data', options.dataDir],
  ] as const) {
    if (dir !== undefined && isInside(hostKeyFile, dir))
      throw tokenKeyError(
        `the host key ${hostKeyFile} lies inside the ${name} folder ${dir}: whoever copies that folder would get it with the tokens. Fix: set POS_AGENT_HOST_KEY_FILE to a root-only path elsewhere (default ${DEFAULT_HOST_KEY_FILE}) or pass it as the systemd credential ${HOST_KEY_CREDENTIAL}`,
      );
  }
  const tokenKey = new Uint8Array(Buffer.from(text, 'base64'));
  if (tokenKey.length !== 32)
    throw new AgentError(
      'POS502',
      `${tokenFile}: holds ${tokenKey.length} bytes, expected 32 (base64 text); provision the terminal again`,
    );
  if (!existsSync(hostKeyFile)) {
    try {
      ensurePrivateDir(path.dirname(hostKeyFile));
      writeFileSync(
        hostKeyFile,
        `${randomBytes(32).toString('base64')}
`,
        {
          mode: 0o600,
          flag: 'wx',
        },
      );
      chmodSync(hostKeyFile, 0o600);
    } catch (cause) {
      throw tokenKeyError(
        `${tokenFile} holds the token key in the clear and the host key ${hostKeyFile} cannot be created (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}) to wrap it. Fix: start the agent once as root, or create it: "install -d -m 700 ${path.dirname(hostKeyFile)} && head -c 32 /dev/urandom | base64 > ${hostKeyFile} && chmod 600 ${hostKeyFile}", or set POS_AGENT_HOST_KEY_FILE / the systemd credential ${HOST_KEY_CREDENTIAL}`,
        cause,
      );
    }
  }
  const hostKey = readHostKey(hostKeyFile);
  try {
    replaceKeyFile(tokenFile, wrapTokenKey(tokenKey, hostKey));
  } finally {
    tokenKey.fill(0);
    hostKey.fill(0);
  }
  return 'wrapped';
}
