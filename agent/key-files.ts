/**
 * The key files of a terminal as files (agent/keys.ts has the table): their names and sizes,
 * and the few file operations every key goes through — a private folder, a 0600 file, a
 * replacement by temporary file and rename. Shared by keys.ts and token-key.ts.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { AgentError } from '../common/agent-error.js';

/** The terminal's binary key files: name and size in bytes (base64 text in the file). */
export const FILES = {
  deviceSecretKey: { file: 'device-signing.key', bytes: 64 },
  tokenKey: { file: 'token.key', bytes: 32 },
  vaultPublicKey: { file: 'vault.pub', bytes: 32 },
  cloudPublicKey: { file: 'cloud-signing.pub', bytes: 32 },
} as const;

/** A key as the files hold it: base64 text. */
export const b64 = (key: Uint8Array): string => Buffer.from(key).toString('base64');

/** The errno code of a failed file operation, for a message (`ENOENT`), or `error`. */
export function errnoOf(cause: unknown): string {
  return (cause as NodeJS.ErrnoException).code ?? 'error';
}

/** Creates `dir` with mode 0700 (and parents), or tightens an existing one. */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (cause) {
    throw new AgentError('POS503', `cannot create directory ${dir}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** Writes `content` and a newline to `file` with mode 0600 (also when the file existed). */
export function writeKey(file: string, content: string): void {
  writeFileSync(file, `${content}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * Replaces a key file: written to `<file>.new` with mode 0600 and renamed over `file`, so a
 * crash leaves either the old or the new key.
 *
 * @throws AgentError POS503 naming the file and the errno code.
 */
export function replaceKeyFile(file: string, content: string): void {
  const temp = `${file}.new`;
  try {
    writeKey(temp, content);
    renameSync(temp, file);
  } catch (cause) {
    throw new AgentError(
      'POS503',
      `cannot replace ${file} (${errnoOf(cause)}): check the keys directory`,
      { cause },
    );
  }
}
