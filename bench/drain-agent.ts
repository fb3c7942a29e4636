/**
 * One drain through the running agent (bench/drain.ts `agentDrain`: `startAgent` on a seeded
 * backlog → broker → cloud core simulator in a child process), without the baseline and the
 * rounds of `npm run bench`: a tool for profiling the drain path and for reading the CPU it costs
 * per record, in this process (the agent) and in the cloud core's child. Not a bench target.
 *
 * Prints one line: payments, ms, payments/s, records per batch, µs of CPU per record for this
 * process and for the cloud core, and how busy each one's event loop was during the drain (near
 * 100 %: that side bounds the drain; both well below: the drain waits on the round trip).
 *
 * Usage: `node dist/bench/drain-agent.js [records=20000] [broker=mosquitto|aedes]`
 * - `DRAIN_PROF=FILE` writes a V8 CPU profile of this process during the drain only (from
 *   `startAgent` on; not the seeding) to FILE (.cpuprofile, for Chrome DevTools or a script).
 * - `DRAIN_SEEDED=DIR` keeps the seeded template and its keys in DIR and reuses them.
 * - `BENCH_CHILD_PROF=DIR` also profiles the cloud core's child (bench/drain.ts).
 * - `DRAIN_ACK_TIMEOUT_MS=N` sets the agent's `sync.ackTimeoutMs` (e.g. 600000 under valgrind)
 *   and the longest keep-alive, so a slow run neither resends nor reconnects.
 * - `DRAIN_OPEN_SEALED=1` lets the cloud core open each sealed card (the full path).
 * With Mosquitto (the default when installed) the broker's CPU is in neither figure.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { EmbeddedBroker } from '../simulator/broker.js';
import { agentDrain } from './drain.js';
import {
  type BenchBroker,
  type BenchKeys,
  makeCardTokens,
  makeKeys,
  mosquittoBinary,
  removeDir,
  seedStore,
  startMosquitto,
  tempDir,
  templateDir,
} from './fixtures.js';

const records = Number(process.argv[2] ?? 20_000);
const brokerKind = process.argv[3] ?? (mosquittoBinary() === null ? 'aedes' : 'mosquitto');
const dir = tempDir('drain-agent');
// DRAIN_SEEDED=DIR: the template and its keys are kept in DIR (made on the first run, reused after),
// so a run under `valgrind --tool=callgrind` counts the drain and not the seeding.
const seeded = process.env.DRAIN_SEEDED;
const templates = seeded ?? templateDir(dir);
const template = path.join(templates, `drain-${records}.db`);
const keysFile = path.join(templates, `drain-${records}.keys.json`);
let keys: BenchKeys;
let seedMs = 0;
if (seeded !== undefined && existsSync(keysFile)) {
  keys = readKeys(keysFile);
} else {
  keys = makeKeys();
  seedMs = seedStore(template, records, makeCardTokens(keys, 16));
  if (seeded !== undefined) writeKeys(keysFile, keys);
}

function writeKeys(file: string, k: BenchKeys): void {
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
  const pair = (p: { publicKey: Uint8Array; secretKey: Uint8Array }) => ({
    publicKey: b64(p.publicKey),
    secretKey: b64(p.secretKey),
  });
  writeFileSync(
    file,
    JSON.stringify({
      device: pair(k.device),
      cloud: pair(k.cloud),
      vault: pair(k.vault),
      tokenKey: b64(k.tokenKey),
    }),
  );
}

function readKeys(file: string): BenchKeys {
  type Pair = { publicKey: string; secretKey: string };
  const j = JSON.parse(readFileSync(file, 'utf8')) as {
    device: Pair;
    cloud: Pair;
    vault: Pair;
    tokenKey: string;
  };
  const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
  const pair = (p: Pair) => ({ publicKey: bytes(p.publicKey), secretKey: bytes(p.secretKey) });
  return {
    device: pair(j.device),
    cloud: pair(j.cloud),
    vault: pair(j.vault),
    tokenKey: bytes(j.tokenKey),
  };
}

async function startBroker(): Promise<BenchBroker> {
  if (brokerKind === 'aedes') {
    const broker = await EmbeddedBroker.start();
    return { name: 'aedes', url: broker.url, stop: () => broker.stop() };
  }
  const binary = mosquittoBinary();
  if (binary === null) throw new Error('Mosquitto is not installed: pass "aedes"');
  return startMosquitto(binary);
}

const broker = await startBroker();
const profFile = process.env.DRAIN_PROF;
const inspector = profFile === undefined || profFile === '' ? undefined : new Session();
if (inspector !== undefined) {
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.setSamplingInterval', { interval: 250 });
  await inspector.post('Profiler.start');
}
try {
  const run = await agentDrain({
    url: broker.url,
    templatePath: template,
    payments: records,
    dir,
    keys,
    run: 0,
    timeoutMs: 300_000,
    openSealed: process.env.DRAIN_OPEN_SEALED === '1',
    // Under valgrind the agent runs ~50 times slower: acks would time out and batches be resent.
    ...(process.env.DRAIN_ACK_TIMEOUT_MS === undefined
      ? {}
      : {
          sync: { ackTimeoutMs: Number(process.env.DRAIN_ACK_TIMEOUT_MS) },
          broker: { keepaliveSeconds: 1200, pingTimeoutMs: 60_000 },
        }),
  });
  if (inspector !== undefined && profFile !== undefined) {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(profFile, JSON.stringify(profile));
    inspector.disconnect();
  }
  const us = (ms: number): string => ((ms * 1000) / records).toFixed(1);
  const pct = (share: number): string => `${(share * 100).toFixed(0)} %`;
  console.log(
    `${broker.name}: ${run.payments} payments in ${run.ms.toFixed(0)} ms = ` +
      `${run.perSecond.toFixed(0)}/s, ${run.recordsPerBatch.toFixed(0)} records/batch, ` +
      `${run.resends} resends, ${run.ackCommits} ack commits; CPU µs per record: agent process ${us(run.processCpuMs)} ` +
      `(kernel ${us(run.processSystemMs)}), ` +
      `cloud core ${us(run.cloudCpuMs)}; event loop busy: agent ${pct(run.agentBusy)}, ` +
      `cloud core ${pct(run.cloudBusy)} (seeded in ${(seedMs / 1000).toFixed(1)} s)`,
  );
} finally {
  await broker.stop();
  removeDir(dir);
  if (seeded === undefined) removeDir(templates);
}
