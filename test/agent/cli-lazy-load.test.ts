/**
 * `pos-agent --help` and `--version` load no native module (issue 15): the version comes from
 * agent/version.ts, every command module is imported by its action, and the sim subcommands are
 * registered only when `sim` is the command. Checked by what the process loaded, not by a timing:
 * test/fixtures/native-load-guard.mjs records every `.node` addon opened and every file of
 * better-sqlite3, serialport and node-hid in the module cache. A command that does need them
 * (`devices`) is the control: it shows the guard sees a native load when there is one.
 *
 * The CLI runs from an esbuild bundle with code splitting, laid out like `dist/`: each module a
 * command action imports stays a chunk of its own, loaded by that action (test/helpers/cli.ts
 * makes one file, which hoists every package import to its top).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const GUARD = path.join(ROOT, 'test/fixtures/native-load-guard.mjs');
// Inside the project so the chunks resolve its node_modules, as dist/ does.
const BUNDLE = path.join(ROOT, `node_modules/.cache/pos-agent-cli-split-${process.pid}`);

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pos-cli-lazy-'));
  mkdirSync(BUNDLE, { recursive: true });
  await build({
    entryPoints: { cli: path.join(ROOT, 'agent/cli.ts') },
    outdir: BUNDLE,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
}, 180_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(BUNDLE, { recursive: true, force: true });
});

interface CliRun {
  code: number | null;
  stdout: string;
}

interface Loaded {
  dlopen: string[];
  packages: string[];
}

/** Runs `pos-agent ...args` under the guard; what it printed and what native code it loaded. */
async function runGuarded(args: string[]): Promise<{ run: CliRun; loaded: Loaded }> {
  const out = path.join(dir, `${args.join('_').replace(/[^\w]/g, '') || 'none'}.json`);
  const run = await new Promise<CliRun>((resolve) => {
    execFile(
      process.execPath,
      [`--import=${GUARD}`, path.join(BUNDLE, 'cli.mjs'), ...args],
      {
        cwd: ROOT,
        timeout: 60_000,
        killSignal: 'SIGKILL',
        env: { ...process.env, NATIVE_GUARD_OUT: out },
      },
      (error, stdout) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout });
      },
    );
  });
  return { run, loaded: JSON.parse(readFileSync(out, 'utf8')) as Loaded };
}

describe('pos-agent --help and --version load no native module', () => {
  it('--version prints a version and loads no native module', async () => {
    const { run, loaded } = await runGuarded(['--version']);
    expect(run.code).toBe(0);
    // The bundle is not where agent/version.ts looks for package.json: `0.0.0-unknown` here.
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+(-[\w.]+)?$/);
    expect(loaded).toEqual({ dlopen: [], packages: [] });
  });

  it('--help lists the commands and loads no native module', async () => {
    const { run, loaded } = await runGuarded(['--help']);
    expect(run.code).toBe(0);
    for (const command of ['run', 'provision', 'doctor', 'devices', 'sim'])
      expect(run.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(loaded).toEqual({ dlopen: [], packages: [] });
  });

  it('sim --help still lists the sim commands and their faults, without a native module', async () => {
    const { run, loaded } = await runGuarded(['sim', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ {2}pinpad\b/m);
    expect(run.stdout).toMatch(/Fault switches/);
    expect(loaded).toEqual({ dlopen: [], packages: [] });
  });

  it('control: the guard sees the native modules of a command that needs them (devices)', async () => {
    const { loaded } = await runGuarded(['devices', '--json']);
    expect(loaded.packages.some((f) => /[\\/]serialport[\\/]/.test(f))).toBe(true);
  });
});
