/**
 * Runs the real `pos-agent` command line in a child process, for tests of what a user sees:
 * exit codes, stderr, help text. `agent/cli.ts` is bundled once per test process with esbuild
 * (vitest's own TypeScript compiler; about a second, against half a minute for `tsc`), into
 * `node_modules/.cache/` so the bundle resolves the project's node_modules like `dist/` does.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(import.meta.dirname, '../..');
let bundled: Promise<string> | undefined;

/** Bundles agent/cli.ts (once) and returns the path of the bundle. */
export function cliBundle(): Promise<string> {
  bundled ??= (async () => {
    const dir = path.join(ROOT, 'node_modules/.cache/pos-agent-cli-test');
    mkdirSync(dir, { recursive: true });
    // Bundles of test processes that are gone (a worker may be killed before its exit hook).
    for (const name of readdirSync(dir)) {
      const pid = Number(/^cli-(\d+)\.mjs$/.exec(name)?.[1]);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
      } catch {
        rmSync(path.join(dir, name), { force: true });
      }
    }
    const outfile = path.join(dir, `cli-${process.pid}.mjs`);
    await build({
      entryPoints: [path.join(ROOT, 'agent/cli.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'error',
    });
    process.once('exit', () => rmSync(outfile, { force: true }));
    return outfile;
  })();
  return bundled;
}

/** What a CLI run printed and how it ended. */
export interface CliRun {
  /** The exit code (null when killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `pos-agent ...args` to completion. `killAfterMs` ends a command that would run until
 * stopped (a hang then shows as `code: null`, not as a stuck test).
 */
export async function runCli(
  args: readonly string[],
  options: { killAfterMs?: number; env?: Record<string, string> } = {},
): Promise<CliRun> {
  const file = await cliBundle();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file, ...args],
      {
        cwd: ROOT,
        timeout: options.killAfterMs ?? 60_000,
        killSignal: 'SIGKILL',
        env: { ...process.env, ...options.env },
      },
      (error, stdout, stderr) => {
        const code =
          error === null
            ? 0
            : typeof (error as { code?: unknown }).code === 'number'
              ? ((error as { code: number }).code as number)
              : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** True when a text contains a JavaScript stack trace line (`    at fn (file:line:col)`). */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+[:(]/m.test(text);
}
