/**
 * The Debian package (issue 12): `npm run package`'s script builds it (once per run, uncompressed
 * and without the type check, which `npm run check` does), `dpkg-deb -x` installs it into a
 * scratch root, `systemd-analyze verify` checks the unit when present, and the installed
 * `pos-agent` runs from there: `--version`, `doctor --json`, `devices --json`, and the read-only
 * and downgrade refusals. Needs dpkg-deb (Debian: dpkg); skipped with the reason otherwise.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USB_FINGERPRINTS } from '../../drivers/discovery/usb-fingerprints.js';
import { SCHEMA_VERSION } from '../../store-forward/migrations/index.js';
import { PaymentStore } from '../../store-forward/payment-store.js';

const execFileAsync = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const has = (program: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
const DPKG_SKIP = 'dpkg-deb is not installed (apt-get install dpkg-dev)';
const SYSTEMD_SKIP = 'systemd-analyze is not installed (apt-get install systemd)';
const hasDpkg = has('dpkg-deb');
const hasSystemdAnalyze = has('systemd-analyze');
if (!hasDpkg) console.warn(`[skipped] Debian package tests: ${DPKG_SKIP}`);
else if (!hasSystemdAnalyze) console.warn(`[skipped] systemd unit check: ${SYSTEMD_SKIP}`);

const version = (
  JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }
).version;

describe.skipIf(!hasDpkg)('the Debian package', () => {
  let work: string;
  let deb: string;
  let root: string;
  let files: string[];

  /** Runs the installed CLI from the scratch root. */
  const installed = (
    args: string[],
    env: Record<string, string> = {},
  ): Promise<{ status: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      // Asynchronous, like the build: the worker must keep answering vitest meanwhile.
      execFile(
        path.join(root, 'usr', 'bin', 'pos-agent'),
        args,
        {
          encoding: 'utf8',
          env: { ...process.env, POS_AGENT_NODE: process.execPath, POS_AGENT_CONFIG: '', ...env },
        },
        (error, stdout, stderr) =>
          resolve({
            status: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
            stdout,
            stderr,
          }),
      );
    });

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'pos-deb-'));
    // Asynchronous: a minute-long synchronous build would starve vitest's worker channel.
    const { stdout: out } = await execFileAsync(
      process.execPath,
      [
        path.join(repo, 'packaging', 'build-deb.mjs'),
        '--out',
        path.join(work, 'out'),
        '--compression',
        'none',
        '--transpile-only',
      ],
      { encoding: 'utf8', cwd: repo, maxBuffer: 16 * 1024 * 1024 },
    );
    deb = out.trim().split('\n').at(-1) ?? '';
    root = path.join(work, 'root');
    execFileSync('dpkg-deb', ['-x', deb, root]);
    files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
      .split('\n')
      .map((line) => line.split(/\s+/).at(5) ?? '')
      .filter((f) => f !== '');
  }, 600_000);

  afterAll(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('is named, versioned and depends as Debian expects', () => {
    expect(path.basename(deb)).toMatch(
      new RegExp(`^pos-agent_${version.replace(/\./g, '\\.')}_[a-z0-9]+\\.deb$`),
    );
    const control = execFileSync('dpkg-deb', ['-f', deb], { encoding: 'utf8' });
    expect(control).toMatch(/^Package: pos-agent$/m);
    expect(control).toMatch(new RegExp(`^Version: ${version}$`, 'm'));
    expect(control).toMatch(/^Depends: nodejs \(>= 20\.19\), adduser$/m);
    const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    expect(control).toMatch(new RegExp(`^Architecture: ${arch}$`, 'm'));
  });

  it('installs the command, the unit, the udev rules, the guide, and production modules only', () => {
    for (const file of [
      './usr/bin/pos-agent',
      './usr/lib/systemd/system/pos-agent.service',
      './usr/lib/udev/rules.d/60-pos-agent.rules',
      './usr/lib/pos-agent/dist/agent/cli.js',
      './usr/lib/pos-agent/package.json',
      './usr/lib/pos-agent/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      './usr/lib/pos-agent/node_modules/pino-roll/package.json',
    ])
      expect(files).toContain(file);
    expect(statSync(path.join(root, 'usr/bin/pos-agent')).mode & 0o111).toBe(0o111);
    const modules = readdirSync(path.join(root, 'usr/lib/pos-agent/node_modules'));
    for (const dev of ['vitest', 'typescript', 'eslint', 'prettier', 'fast-check'])
      expect(modules).not.toContain(dev);
    // Nothing of the tests or the benchmarks ships.
    expect(files.some((f) => f.includes('/dist/test/') || f.includes('/dist/bench/'))).toBe(false);
    // No data and no keys in the package: postinst makes the folders, provision the keys.
    expect(files.some((f) => f.startsWith('./etc/') || f.startsWith('./var/'))).toBe(false);
  });

  it('has maintainer scripts that make the user, its groups and folders and keep data and keys', () => {
    const control = path.join(work, 'control');
    execFileSync('dpkg-deb', ['-e', deb, control]);
    const postinst = readFileSync(path.join(control, 'postinst'), 'utf8');
    expect(statSync(path.join(control, 'postinst')).mode & 0o755).toBe(0o755);
    expect(postinst).toMatch(/adduser --system .*pos-agent/);
    expect(postinst).toMatch(/for group in dialout plugdev/);
    expect(postinst).toContain('install -d -o pos-agent -g pos-agent -m 0700 /var/lib/pos-agent');
    expect(postinst).not.toMatch(/rm -r|rm -f/);
    expect(readFileSync(path.join(control, 'postrm'), 'utf8')).not.toMatch(/rm -r|rm -f/);
    const sh = spawnSync('sh', ['-n', path.join(control, 'postinst')]);
    expect(sh.status).toBe(0);
  });

  it('gives every device of the discovery table a udev rule, and PIN pads a /dev/pos name', () => {
    const rules = readFileSync(path.join(root, 'usr/lib/udev/rules.d/60-pos-agent.rules'), 'utf8');
    for (const f of USB_FINGERPRINTS)
      expect(rules).toContain(`ATTRS{idVendor}=="${f.vendorId.toString(16).padStart(4, '0')}"`);
    expect(rules).toMatch(
      /SUBSYSTEM=="tty", ATTRS\{idVendor\}=="0b00", GROUP="dialout", MODE="0660", SYMLINK\+="pos\/pinpad"/,
    );
    expect(rules).toMatch(/SUBSYSTEM=="hidraw", ATTRS\{idVendor\}=="0801".*GROUP="plugdev"/);
  });

  it('has a hardened unit that restarts always, as the pos-agent user', () => {
    const unit = readFileSync(path.join(root, 'usr/lib/systemd/system/pos-agent.service'), 'utf8');
    for (const line of [
      'Restart=always',
      'User=pos-agent',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/pos-agent',
      'NoNewPrivileges=true',
      'PrivateTmp=true',
      'ExecStart=/usr/bin/pos-agent run',
      'Environment=POS_AGENT_CONFIG=/etc/pos-agent/config.json',
    ])
      expect(unit.split('\n')).toContain(line);
  });

  it.skipIf(!hasSystemdAnalyze)('passes systemd-analyze verify', () => {
    // The unit as installed, its ExecStart pointed at the scratch root (verify checks the file).
    const dir = path.join(work, 'unit-check');
    mkdirSync(dir);
    const unit = readFileSync(path.join(root, 'usr/lib/systemd/system/pos-agent.service'), 'utf8');
    writeFileSync(
      path.join(dir, 'pos-agent.service'),
      unit.replace(
        'ExecStart=/usr/bin/pos-agent',
        `ExecStart=${path.join(root, 'usr/bin/pos-agent')}`,
      ),
    );
    const result = spawnSync('systemd-analyze', ['verify', path.join(dir, 'pos-agent.service')], {
      encoding: 'utf8',
    });
    expect(result.stderr.split('\n').filter((l) => l.includes('pos-agent.service'))).toEqual([]);
    expect(result.status).toBe(0);
  });

  it('runs the installed pos-agent: --version, devices --json, doctor --json', async () => {
    const v = await installed(['--version']);
    expect(v).toMatchObject({ status: 0, stdout: `${version}\n` });

    const devices = await installed(['devices', '--json']);
    expect(devices.status).toBe(0);
    expect(JSON.parse(devices.stdout)).toMatchObject({
      version: 1,
      serial: { method: expect.any(String) },
    });

    const terminal = path.join(work, 'terminal');
    const init = await installed([
      'init-dev',
      '--dir',
      terminal,
      '--pinpad',
      'mock://pad',
      '--broker',
      'mqtt://127.0.0.1:9',
    ]);
    expect(init.status).toBe(0);
    const doctor = await installed(['doctor', '--json'], {
      POS_AGENT_CONFIG: path.join(terminal, 'config.json'),
    });
    const report = JSON.parse(doctor.stdout) as {
      version: number;
      configSource: string;
      problems: number;
      findings: Array<{ check: string; level: string; code?: string; fix?: string }>;
    };
    expect(report).toMatchObject({ version: 1, configSource: 'env' });
    expect(doctor.stderr).toContain(
      `config ${path.join(terminal, 'config.json')} (from POS_AGENT_CONFIG)`,
    );
    // The broker on port 9 is closed: one coded problem, exit 1; nothing else is wrong.
    expect(report.findings.filter((f) => f.level === 'problem').map((f) => f.code)).toEqual([
      'POS301',
    ]);
    expect(doctor.status).toBe(1);
    for (const f of report.findings.filter((f) => f.level !== 'ok')) expect(f.fix).toBeTruthy();

    // Without --config and POS_AGENT_CONFIG the installed default path is used and named.
    const none = await installed(['queue']);
    expect(none.stderr).toContain('config /etc/pos-agent/config.json (the default;');
  }, 180_000);

  it('installed read-only commands create no database, and a downgrade is refused with POS203', async () => {
    const terminal = path.join(work, 'terminal-2');
    const init = await installed(['init-dev', '--dir', terminal, '--pinpad', 'mock://pad']);
    expect(init.status).toBe(0);
    const env = { POS_AGENT_CONFIG: path.join(terminal, 'config.json') };
    const queue = await installed(['queue', '--json'], env);
    expect(queue.status).toBe(1);
    expect(queue.stderr).toMatch(/^error POS201: there is no payment database/m);
    expect(existsSync(path.join(terminal, 'data', 'agent.db'))).toBe(false);

    // A database written by a newer agent (schema version + 1), as after a rollback.
    mkdirSync(path.join(terminal, 'data'), { recursive: true });
    const db = path.join(terminal, 'data', 'agent.db');
    PaymentStore.open({ path: db }).close();
    const raw = new Database(db);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    for (const command of [['verify'], ['queue']]) {
      const refused = await installed(command, env);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        /error POS203: .* newer than the \d+ this agent knows; fix: install the agent version that wrote it/,
      );
    }
  }, 180_000);
});
