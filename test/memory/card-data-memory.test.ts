/**
 * No card data left in the agent's memory after payments (issue 11 item 1; architecture.md §2: card
 * data only in Buffers that are wiped, never a JS string).
 *
 * ```
 *  this process (simulator side)                      child process (the agent, `runService`)
 *  aedes broker ◄──────────── MQTT (sealed only) ────► sync worker
 *  cloud core (opens sealed cards: holds PANs)
 *  virtual PIN pad ◄─ TCP ─ socat ─ /dev/pts/N ─────► serialport → link → PIN pad → boundary
 *  scanner: /proc/CHILD/maps + /proc/CHILD/mem (SIGSTOP while read)
 * ```
 *
 * The pad and the cloud core hold PANs as strings, so they run here, never in the agent's
 * process. Needs root (ptrace rights on /proc/PID/mem) and socat (a real pseudo-terminal; over
 * TCP instead when socat is missing, said in the output). `MEMSCAN_PAYMENTS` sets the count
 * (`npm run memscan` runs 50); npm test runs 8.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { hasSocat, servePty, serveTcp, type PadServer } from '../../simulator/pad-server.js';
import { TEST_CARDS } from '../../simulator/test-cards.js';
import { VirtualPinPad, type CardPresentation } from '../../simulator/virtual-pin-pad.js';
import {
  canReadProcessMemory,
  scanProcessMemory,
  type PanCopies,
} from '../helpers/process-memory.js';
import { until } from '../helpers/wait.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PAYMENTS = Number(process.env.MEMSCAN_PAYMENTS ?? 8);
const skipReason = !canReadProcessMemory()
  ? 'not root: reading another process memory (/proc/PID/mem) needs ptrace rights'
  : undefined;
if (skipReason !== undefined) console.warn(`card-data memory scan skipped: ${skipReason}`);

/** The approving test cards, in turn, with the three entry modes. */
const APPROVED = TEST_CARDS.filter((c) => c.outcome === 'approve');
const MODES: CardPresentation['entryMode'][] = ['C', 'T', 'S'];

/** Bundles test/memory/agent-child.ts (esbuild, the bundler vitest itself runs on). */
async function bundleAgent(): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = path.join(ROOT, 'node_modules', '.cache', 'pos-memscan', 'agent-child.mjs');
  await build({
    entryPoints: [path.join(ROOT, 'test', 'memory', 'agent-child.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'silent',
  });
  return outfile;
}

describe.skipIf(skipReason !== undefined)('card data in the live agent process', () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let cloud: CloudCore;
  let padServer: PadServer;
  let child: ChildProcess | undefined;
  let childStderr = '';
  let apiUrl = '';
  let apiToken = '';
  let transport = 'pty';
  const pad = new VirtualPinPad();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-memscan-'));
    const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
    broker = await EmbeddedBroker.start();
    cloud = await CloudCore.start({
      brokerUrl: broker.url,
      signer: { secretKey: cloudKeys.cloudSecretKey },
      openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
      reconnectPeriodMs: 100,
    });
    const deviceId = 'memscan-lane-1';
    cloud.registerDevice(deviceId, terminal.devicePublicKey);
    if (hasSocat()) padServer = await servePty(pad, { dir });
    else {
      transport = 'tcp (socat is not installed: apt-get install socat for the pty run)';
      padServer = await serveTcp(pad);
    }
    mkdirSync(path.join(dir, 'data'), { mode: 0o700 });
    const configFile = path.join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        deviceId,
        dataDir: path.join(dir, 'data'),
        keysDir: path.join(dir, 'keys'),
        pinPad: { path: padServer.url },
        broker: { url: broker.url, reconnectPeriodMs: 100, development: true },
        api: { host: '127.0.0.1', port: 0 },
        log: { level: 'info', file: path.join(dir, 'agent.log') },
      }),
    );
    apiToken = readFileSync(path.join(dir, 'keys', 'api.token'), 'utf8').trim();
    const bundle = await bundleAgent();
    expect(TEST_CARDS.some((c) => readFileSync(bundle, 'latin1').includes(c.pan))).toBe(false);
    child = spawn(process.execPath, [bundle, configFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: dir,
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      childStderr += chunk.toString();
    });
    await until(
      () => /local API on (http:\/\/[^\s;]+)/.test(childStderr) || child?.exitCode !== null,
      {
        timeoutMs: 20_000,
        pollMs: 50,
      },
    );
    const m = /local API on (http:\/\/[^\s;]+)/.exec(childStderr);
    if (m === null) throw new Error(`the agent child did not start: ${childStderr}`);
    apiUrl = m[1] ?? '';
    await until(() => cloud.connected && pad.connected, { timeoutMs: 20_000, pollMs: 50 });
  });

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await padServer?.stop();
    await cloud?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the scanner finds card numbers where they are (control: this process, which holds the pad)', () => {
    // BCD in both nibble alignments, as the sealed plaintext and EMV tag 57 hold them.
    const bcdControl = Buffer.from('4111111111111111', 'hex');
    const oddControl = Buffer.from('f4111111111111111f', 'hex');
    const { copies } = scanProcessMemory(process.pid, ['4111111111111111']);
    const visa = copies['4111111111111111'] as PanCopies;
    expect(visa.ascii).toBeGreaterThan(0);
    expect(visa.bcd).toBeGreaterThan(0);
    expect(visa.bcdOdd).toBeGreaterThan(0);
    bcdControl.fill(0);
    oddControl.fill(0);
  });

  it(`holds 0 copies of any test PAN after ${PAYMENTS} payments (ASCII, UTF-16, BCD, track)`, async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < PAYMENTS; i++) {
      const card = APPROVED[i % APPROVED.length];
      if (card === undefined) throw new Error('no test card');
      pad.presentCard(card, { entryMode: MODES[i % MODES.length] ?? 'C' });
      const response = await fetch(`${apiUrl}/v1/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${apiToken}`,
          'content-type': 'application/json',
          'idempotency-key': `memscan-${String(i).padStart(4, '0')}`,
        },
        body: JSON.stringify({ amount: 1000 + i, currency: 'EUR' }),
      });
      const json = (await response.json()) as { state?: string; error?: { code: string } };
      outcomes.push(json.state ?? json.error?.code ?? String(response.status));
    }
    // Every payment went through the boundary and the sync worker (sealed, published, acked).
    expect(outcomes.filter((o) => o === 'approved').length).toBe(PAYMENTS);
    const scan = scanProcessMemory(
      child?.pid ?? 0,
      APPROVED.map((c) => c.pan),
      process.env.MEMSCAN_CONTEXT === undefined
        ? {}
        : { contextBytes: Number(process.env.MEMSCAN_CONTEXT) },
    );
    for (const line of scan.contexts) console.info(line);
    const found = Object.entries(scan.copies).filter(([, c]) => c.total > 0 || c.track > 0);
    const total = Object.values(scan.copies).reduce((sum, c) => sum + c.total, 0);
    console.info(
      `memory scan of the agent (pid ${child?.pid}) after ${PAYMENTS} payments over ${transport}: ` +
        `${(scan.bytesRead / 2 ** 20).toFixed(0)} MiB in ${scan.regions} mappings, ${total} copies` +
        found
          .map(([pan, c]) => `\n  ${pan.slice(0, 6)}…${pan.slice(-4)}: ${JSON.stringify(c)}`)
          .join(''),
    );
    expect(
      found.map(([pan, c]) => `${pan.slice(0, 6)}…${pan.slice(-4)} ${JSON.stringify(c)}`),
    ).toEqual([]);
  });
});
