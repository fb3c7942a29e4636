/**
 * The last-resort handler of `pos-agent run` (issue 10): an unhandled rejection or exception is in
 * `agent.log` — written synchronously, before the exit — instead of only on a stderr nobody reads.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../agent/logger.js';
import { installFatalHandler, type FatalTarget } from '../../agent/service.js';
import { syncError } from '../../cloud-sync/errors.js';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
  vi.restoreAllMocks();
});

class FakeProcess extends EventEmitter implements FatalTarget {
  exits: number[] = [];
  exit(code: number): void {
    this.exits.push(code);
  }
}

describe('installFatalHandler', () => {
  it.each(['unhandledRejection', 'uncaughtException'] as const)(
    'writes a %s to the log file before it exits with 70, PAN-shaped digits redacted',
    (kind) => {
      dir = mkdtempSync(path.join(tmpdir(), 'pos-fatal-'));
      const file = path.join(dir, 'agent.log');
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      const target = new FakeProcess();
      const remove = installFatalHandler(createLogger({ file }), target);
      target.emit(
        kind,
        syncError('POS323', 'No authorization response for card 4111111111111111 within 15000 ms'),
      );
      // Read at once: the line must be on disk before exit() runs, not flushed later.
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      const fatal = JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>;
      expect(fatal).toMatchObject({ level: 60, kind, code: 'POS323' });
      expect(String(fatal.msg)).toContain(`fatal ${kind}`);
      expect(JSON.stringify(fatal)).toContain('No authorization response');
      expect(JSON.stringify(fatal)).not.toContain('4111111111111111');
      expect(target.exits).toEqual([70]);
      const written = stderr.mock.calls.map((c) => String(c[0])).join('');
      expect(written).toContain(`pos-agent: fatal ${kind}`);
      expect(written).not.toContain('4111111111111111');
      remove();
      expect(target.listenerCount(kind)).toBe(0);
    },
  );
});
