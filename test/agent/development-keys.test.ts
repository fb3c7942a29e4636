/**
 * `generateDevelopmentKeys` writes the same files as provisioning (one writer, issue 15) and
 * keeps its documented error: a key file that cannot be written is POS503 naming the folder,
 * never a bare EISDIR from node:fs (found when its own copy of the writer was merged into
 * `writeTerminalKeys`: the copy let node:fs errors through).
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateDevelopmentKeys, loadTerminalKeys, TERMINAL_KEY_FILES } from '../../agent/keys.js';
import { isAgentError } from '../../common/agent-error.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'pos-devkeys-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('generateDevelopmentKeys (issue 15)', () => {
  it('writes every terminal key file 0600, and they load back', () => {
    const dir = path.join(root, 'keys');
    const made = generateDevelopmentKeys(dir);
    for (const file of TERMINAL_KEY_FILES) {
      expect(statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
    }
    const loaded = loadTerminalKeys(dir, { hostKeyFile: path.join(root, 'host.key') });
    expect(Buffer.from(loaded.deviceSecretKey)).toEqual(Buffer.from(made.terminal.deviceSecretKey));
    expect(loaded.apiToken).toBe(made.terminal.apiToken);
  });

  it('regression: a key file that cannot be written is POS503 naming the folder, not a bare EISDIR', () => {
    const dir = path.join(root, 'keys');
    mkdirSync(path.join(dir, 'token.key'), { recursive: true });
    let caught: unknown;
    try {
      generateDevelopmentKeys(dir);
    } catch (error) {
      caught = error;
    }
    expect(isAgentError(caught) ? caught.code : caught).toBe('POS503');
    expect((caught as Error).message).toContain(dir);
  });
});
