/**
 * One drain through the running agent (bench/drain.ts `agentDrain`: `startAgent` on a seeded
 * backlog → broker → cloud core simulator in a child process), without the baseline and the
 * rounds of `npm run bench`: a tool for profiling the drain path and for reading the CPU it costs
 * per record, in this process (the agent) and in the cloud core's child. Not a bench target.
 *
 * Prints one line: payments, ms, payments/s, records per batch, and µs of CPU per record for
 * this process and for the cloud core.
 *
 * Usage: `node dist/bench/drain-agent.js [records=20000] [broker=mosquitto|aedes]`
 * - `DRAIN_PROF=FILE` writes a V8 CPU profile of this process during the drain only (from
 *   `startAgent` on; not the seeding) to FILE (.cpuprofile, for Chrome DevTools or a script).
 * - `BENCH_CHILD_PROF=DIR` also profiles the cloud core's child (bench/drain.ts).
 * - `DRAIN_OPEN_SEALED=1` lets the cloud core open each sealed card (the full path).
 * With Mosquitto (the default when installed) the broker's CPU is in neither figure.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { EmbeddedBroker } from '../simulator/broker.js';
import { agentDrain } from './drain.js';
import {
  type BenchBroker,
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
const templates = templateDir(dir);
const template = path.join(templates, 'drain.db');
const keys = makeKeys();
const seedMs = seedStore(template, records, makeCardTokens(keys, 16));

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
  await inspector.post('Profiler.setSamplingInterval', { interval: 100 });
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
  });
  if (inspector !== undefined && profFile !== undefined) {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(profFile, JSON.stringify(profile));
    inspector.disconnect();
  }
  const us = (ms: number): string => ((ms * 1000) / records).toFixed(1);
  console.log(
    `${broker.name}: ${run.payments} payments in ${run.ms.toFixed(0)} ms = ` +
      `${run.perSecond.toFixed(0)}/s, ${run.recordsPerBatch.toFixed(0)} records/batch, ` +
      `${run.resends} resends; CPU µs per record: agent process ${us(run.processCpuMs)}, ` +
      `cloud core ${us(run.cloudCpuMs)} (seeded in ${(seedMs / 1000).toFixed(1)} s)`,
  );
} finally {
  await broker.stop();
  removeDir(dir);
  removeDir(templates);
}
