/**
 * docs/field-guide.md is run, not just read (issue 12): every fenced block marked
 * ```` ```sh test=NAME [exit=N] ```` runs with bash (`-eu -o pipefail`) and must end with exit
 * status N (default 0). The blocks run in a scratch root, as a technician's root shell would on a
 * terminal with the package installed:
 *
 * - `/etc/pos-agent` and `/var/lib/pos-agent` become folders under a temporary root; the
 *   installed default config path is given as POS_AGENT_CONFIG (so, like on a terminal, no
 *   command needs `--config`);
 * - `sudo ` is left out, and the service user `pos-agent` of `--owner` is the test's own user;
 * - `pos-agent` is the agent transpiled from this checkout (packaging/transpile.mjs);
 * - `$FLEET` holds the cloud team's files made with a practice CA, `$BROKER` is Mosquitto with
 *   mutual TLS on loopback (the guide sets both in an untested block).
 *
 * Between the doctor and queue blocks the test puts a backlog in the store, one record of it dead,
 * as an agent that was offline and then refused by the cloud would have left it.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../agent/commands/doctor.js';
import type { QueueReport } from '../agent/commands/queue.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { createTestCa, opensslAvailable, OPENSSL_SKIP_REASON } from './helpers/certs.js';
import { mosquittoAvailable, MOSQUITTO_SKIP_REASON } from './helpers/mosquitto.js';
import { startTlsMosquitto, type TlsMosquitto } from './helpers/mosquitto-tls.js';
import { newPayment } from './store-forward/helpers.js';

const execFileAsync = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '..');
const guide = readFileSync(path.join(repo, 'docs', 'field-guide.md'), 'utf8');

/** A tested block of the guide. */
interface GuideBlock {
  name: string;
  exit: number;
  script: string;
}

/** The ```sh test=NAME [exit=N] blocks, in the order of the guide. */
function testedBlocks(markdown: string): GuideBlock[] {
  const blocks: GuideBlock[] = [];
  const fence = /^```sh test=([\w-]+)(?: exit=(\d+))?\n([\s\S]*?)^```$/gm;
  for (const m of markdown.matchAll(fence))
    blocks.push({ name: m[1] ?? '', exit: Number(m[2] ?? 0), script: m[3] ?? '' });
  return blocks;
}

const missing = [
  ...(mosquittoAvailable() === null ? [MOSQUITTO_SKIP_REASON] : []),
  ...(opensslAvailable() ? [] : [OPENSSL_SKIP_REASON]),
];
if (missing.length > 0) console.warn(`[skipped] field guide run: ${missing.join('; ')}`);

describe('docs/field-guide.md', () => {
  it('has the tested blocks the issue asks for: scripted provision, doctor, queue', () => {
    const names = testedBlocks(guide).map((b) => b.name);
    expect(names).toEqual([
      'provision',
      'doctor',
      'doctor-json',
      'queue',
      'queue-json',
      'queue-retry',
      'verify',
    ]);
    const provision = testedBlocks(guide)[0]?.script ?? '';
    // "every flag" of a scripted provision with a client certificate
    for (const flag of [
      '--non-interactive',
      '--dir',
      '--data-dir',
      '--owner',
      '--device-id',
      '--tenant',
      '--store',
      '--broker',
      '--pinpad',
      '--ca',
      '--cert',
      '--key',
      '--cloud-key',
      '--vault-key',
      '--token-key',
      '--api-port',
    ])
      expect(provision).toContain(`${flag} `);
  });
});

describe.skipIf(missing.length > 0)('docs/field-guide.md, run in a scratch root', () => {
  let work: string;
  let root: string;
  let broker: TlsMosquitto;
  let env: Record<string, string>;
  const results = new Map<string, { status: number; stdout: string; stderr: string }>();

  const scratch = (script: string): string =>
    script
      .replaceAll('/etc/pos-agent', path.join(root, 'etc/pos-agent'))
      .replaceAll('/var/lib/pos-agent', path.join(root, 'var/lib/pos-agent'))
      .replace(/^sudo /gm, '')
      .replaceAll('--owner pos-agent', `--owner ${userInfo().username}`);

  const run = async (block: GuideBlock): Promise<void> => {
    const result = await new Promise<{ status: number; stdout: string; stderr: string }>(
      (resolve) =>
        execFile(
          'bash',
          ['-eu', '-o', 'pipefail', '-c', scratch(block.script)],
          { cwd: work, env, encoding: 'utf8' },
          (error, stdout, stderr) =>
            resolve({
              status: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
              stdout,
              stderr,
            }),
        ),
    );
    results.set(block.name, result);
    expect(result.status, `block ${block.name}:\n${result.stdout}\n${result.stderr}`).toBe(
      block.exit,
    );
  };
  const block = (name: string): GuideBlock => {
    const found = testedBlocks(guide).find((b) => b.name === name);
    if (found === undefined) throw new Error(`no block ${name} in the guide`);
    return found;
  };

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'pos-guide-'));
    root = path.join(work, 'root');
    mkdirSync(path.join(root, 'etc'), { recursive: true });
    mkdirSync(path.join(root, 'var/lib'), { recursive: true });
    // The command, transpiled inside the checkout so it finds node_modules.
    const cli = path.join(repo, '.tmp', path.basename(work));
    await execFileAsync(process.execPath, [path.join(repo, 'packaging', 'transpile.mjs'), cli]);
    const bin = path.join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(
      path.join(bin, 'pos-agent'),
      `#!/bin/sh\nexec "${process.execPath}" "${path.join(cli, 'agent', 'cli.js')}" "$@"\n`,
    );
    chmodSync(path.join(bin, 'pos-agent'), 0o755);
    // The cloud team's files.
    const fleet = path.join(work, 'fleet');
    mkdirSync(fleet);
    const ca = createTestCa(fleet);
    broker = await startTlsMosquitto(ca);
    const cert = ca.issue('store-0042-lane-3', { days: 365 });
    const place = (from: string, name: string): void => {
      if (path.resolve(from) !== path.join(fleet, name)) copyFileSync(from, path.join(fleet, name));
    };
    place(ca.cert, 'broker-ca.pem');
    place(cert.cert, 'store-0042-lane-3.pem');
    place(cert.key, 'store-0042-lane-3.key');
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
    writeFileSync(path.join(fleet, 'cloud-signing.pub'), b64(nacl.sign.keyPair().publicKey));
    writeFileSync(path.join(fleet, 'vault.pub'), b64(nacl.box.keyPair().publicKey));
    writeFileSync(path.join(fleet, 'token.key'), b64(nacl.randomBytes(32)));
    env = {
      ...(process.env as Record<string, string>),
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      POS_AGENT_CONFIG: path.join(root, 'etc/pos-agent/config.json'),
      FLEET: fleet,
      BROKER: broker.tlsUrl,
    };
  }, 120_000);

  afterAll(async () => {
    await rm(path.join(repo, '.tmp', path.basename(work ?? 'none')), {
      recursive: true,
      force: true,
    });
    await broker?.dispose();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('provisions with every flag, and doctor finds only the unplugged PIN pad', async () => {
    await run(block('provision'));
    expect(results.get('provision')?.stdout).toMatch(/provisioned store-0042-lane-3/);
    await run(block('doctor'));
    const text = results.get('doctor')?.stdout ?? '';
    expect(text).toMatch(
      /1 problem:\n {2}1\. POS101 \[devices\] PIN pad \/dev\/pos\/pinpad is not present/,
    );
    expect(text).toMatch(/TLS handshake with mqtts:\/\/127\.0\.0\.1:\d+ succeeded/);
    expect(results.get('doctor')?.stderr).toContain('(from POS_AGENT_CONFIG)');

    await run(block('doctor-json'));
    const report = JSON.parse(readFileSync(path.join(work, 'doctor.json'), 'utf8')) as DoctorReport;
    expect(report).toMatchObject({ version: 1, configSource: 'env', ok: false, problems: 1 });
    expect(report.findings.filter((f) => f.level === 'problem')).toEqual([
      expect.objectContaining({
        check: 'devices',
        code: 'POS101',
        device: { entry: 'pinPad', path: '/dev/pos/pinpad' },
      }),
    ]);
    // Warnings: no database yet (POS201), the practice broker certificate's 30 days (POS516).
    expect(new Set(report.findings.filter((f) => f.level === 'warn').map((f) => f.code))).toEqual(
      new Set(['POS201', 'POS516']),
    );
  }, 180_000);

  it('shows a backlog with its dead record, retries it, and verifies the store', async () => {
    // What an agent offline for a while, then refused once by the cloud, leaves behind.
    const db = path.join(root, 'var/lib/pos-agent/agent.db');
    const store = PaymentStore.open({ path: db });
    store.createPayment(newPayment('guide-1', { amountMinor: 1250 }));
    store.createPayment(newPayment('guide-2', { amountMinor: 990 }));
    store.applyAcks([
      { key: 'guide-2', status: 'rejected', code: 'M01', reason: 'merchant not active' },
    ]);
    store.close();

    await run(block('queue'));
    expect(results.get('queue')?.stdout).toMatch(/queue: 1 to send .* 1 dead/);
    expect(results.get('queue')?.stdout).toMatch(
      /dead #\d+ payment key guide-2 .*merchant not active/,
    );
    await run(block('queue-json'));
    const report = JSON.parse(readFileSync(path.join(work, 'queue.json'), 'utf8')) as QueueReport;
    expect(report).toMatchObject({ version: 1, queue: { depth: 1, dead: 1 } });
    await run(block('queue-retry'));
    expect(results.get('queue-retry')?.stdout).toMatch(/requeued 1 dead records\nqueue: 2 to send/);
    await run(block('verify'));
    expect(results.get('verify')?.stdout).toMatch(/hash chain: ok/);
  }, 180_000);
});
