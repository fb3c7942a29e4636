/**
 * `npm run bench` — the targets of DESIGN §9, each measured as a RATIO against a baseline in the
 * same run (absolute times on shared machines are noise; rule 9: no timed assertions in tests).
 *
 * 1. Durable enqueue: p99 of `PaymentStore.createPayment` ≤ 1.5 × p99 of a bare better-sqlite3
 *    single-row insert (WAL, synchronous=FULL, same directory), interleaved (bench/enqueue.ts).
 * 2. Drain: payments per second store → SyncWorker → broker → cloud core → ack → acked ≥ bare
 *    MQTT.js QoS 1 messages per second with 100 in flight, same broker, same message size as one
 *    signed record; on aedes (in process) and on Mosquitto when installed (bench/drain.ts).
 * 3. Memory: rss of an agent holding N stored payments (default 100,000) ≤ 1.2 × rss of an idle
 *    one, broker down, each in a child with --expose-gc (bench/memory.ts).
 *
 * Options: `--quick` (smaller run, ~1 minute), `--json FILE` (write the results), `--stored N`
 * (backlog of target 3; seeding 100,000 payments through createPayment takes ~30 s here on a
 * RAM disk, several minutes where there is none), `--dir DIR` (where the databases of targets 1
 * and 2 live: the disk under test; default the OS temp dir), `--only 1,2,3`.
 *
 * A benchmark reports; it does not fail builds: the exit code is 0 on a MISS and 1 only when the
 * benchmark itself broke.
 *
 * bench/ is a measurement tool outside the product layers of DESIGN §1: it imports every folder
 * and, for the baselines, `better-sqlite3` and `mqtt` directly.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EmbeddedBroker } from '../simulator/broker.js';
import {
  type AgentRun,
  type BaselineRun,
  agentDrain,
  bareMqttBaseline,
  signedRecordBytes,
} from './drain.js';
import { benchEnqueue } from './enqueue.js';
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
import { benchMemory } from './memory.js';
import { fmt, formatTable, median, verdict, type Verdict } from './stats.js';

/** One target's outcome in the JSON output. */
interface TargetResult {
  id: string;
  name: string;
  unit: string;
  measured: number;
  baseline: number;
  ratio: number;
  target: string;
  pass: boolean;
  details: unknown;
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    stored: { type: 'string' },
    dir: { type: 'string' },
    only: { type: 'string' },
  },
  strict: true,
});

const quick = values.quick === true;
const stored = values.stored === undefined ? (quick ? 10_000 : 100_000) : Number(values.stored);
if (!Number.isInteger(stored) || stored < 1)
  throw new Error(`--stored ${values.stored} must be a positive integer (payments)`);
const only = new Set((values.only ?? '1,2,3').split(',').map((s) => s.trim()));
const plan = quick
  ? {
      enqueue: 300,
      warmup: 30,
      drainPayments: 1000,
      baselineMessages: 3000,
      drainRounds: 1,
      memoryRounds: 1,
    }
  : {
      enqueue: 2000,
      warmup: 100,
      drainPayments: 5000,
      baselineMessages: 10_000,
      drainRounds: 2,
      memoryRounds: 2,
    };
const settleMs = 1500;
const diskParent = values.dir ?? os.tmpdir();

const results: TargetResult[] = [];
const line = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};
const mark = (v: Verdict): string => (v.pass ? 'PASS' : 'MISS');
const mib = (bytes: number): string => fmt(bytes / 2 ** 20, 1);

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  line(
    `pos-edge-agent benchmark (DESIGN §9) — ${quick ? 'quick' : 'full'} run, node ${process.version}, ` +
      `${os.cpus().length} CPUs, disk dir ${diskParent}`,
  );
  const keys = makeKeys();
  const tokens = makeCardTokens(keys, 64);
  const work = tempDir('run', diskParent);
  const templates = templateDir(work);
  try {
    if (only.has('1')) enqueueTarget(work, keys);
    if (only.has('2')) await drainTarget(work, templates, keys, tokens);
    if (only.has('3')) await memoryTarget(work, templates, tokens);
  } finally {
    removeDir(templates);
    removeDir(work);
  }
  const seconds = (performance.now() - t0) / 1000;
  line();
  line(
    `summary: ${results.filter((r) => r.pass).length} PASS, ${results.filter((r) => !r.pass).length} MISS ` +
      `of ${results.length} (${fmt(seconds, 0)} s)`,
  );
  if (values.json !== undefined) {
    const out = {
      startedAt,
      seconds,
      mode: quick ? 'quick' : 'full',
      node: process.version,
      cpus: os.cpus().length,
      diskDir: diskParent,
      plan: { ...plan, stored, settleMs },
      targets: results,
    };
    writeFileSync(values.json, `${JSON.stringify(out, null, 2)}\n`);
    line(`results written to ${path.resolve(values.json)}`);
  }
}

function enqueueTarget(work: string, keys: ReturnType<typeof makeKeys>): void {
  const dir = tempDir('enqueue', work);
  const r = benchEnqueue({ dir, iterations: plan.enqueue, warmup: plan.warmup, keys });
  const v = verdict(r.createPayment.p99, r.bareInsert.p99, { direction: 'at-most', limit: 1.5 });
  line();
  line(
    `1. Durable enqueue — ms per call, ${r.iterations} interleaved pairs after ${r.warmup} warm-up, ` +
      `both files in ${dir}`,
  );
  const row = (name: string, s: typeof r.createPayment): string[] => [
    name,
    fmt(s.p50, 3),
    fmt(s.p95, 3),
    fmt(s.p99, 3),
    fmt(s.max, 3),
  ];
  line(
    formatTable(
      ['', 'p50', 'p95', 'p99', 'max'],
      [
        row('createPayment (payment+event+outbox+sealed)', r.createPayment),
        row(`bare insert (${r.bareRowBytes} B row, WAL, FULL)`, r.bareInsert),
        [
          'ratio',
          fmt(r.createPayment.p50 / r.bareInsert.p50),
          fmt(r.createPayment.p95 / r.bareInsert.p95),
          fmt(r.createPayment.p99 / r.bareInsert.p99),
          '',
        ],
      ],
    ),
  );
  line(`→ p99 ratio ${fmt(v.ratio)}×, target ${v.target}: ${mark(v)}`);
  results.push({
    id: 'enqueue',
    name: 'durable enqueue p99 vs bare single-row insert',
    unit: 'ms',
    measured: r.createPayment.p99,
    baseline: r.bareInsert.p99,
    ratio: v.ratio,
    target: v.target,
    pass: v.pass,
    details: r,
  });
}

async function drainTarget(
  work: string,
  templates: string,
  keys: ReturnType<typeof makeKeys>,
  tokens: ReturnType<typeof makeCardTokens>,
): Promise<void> {
  const templatePath = path.join(templates, 'drain.db');
  const seedMs = seedStore(templatePath, plan.drainPayments, tokens);
  const bytes = signedRecordBytes(templatePath, keys);
  const dir = tempDir('drain', work);
  const kinds: { name: string; start(): Promise<BenchBroker> }[] = [
    {
      name: 'aedes (in process)',
      async start() {
        const broker = await EmbeddedBroker.start();
        return { name: 'aedes', url: broker.url, stop: () => broker.stop() };
      },
    },
  ];
  const mosquitto = mosquittoBinary();
  if (mosquitto !== null) kinds.push({ name: 'Mosquitto', start: () => startMosquitto(mosquitto) });
  line();
  line(
    `2. Drain a backlog — ${plan.drainPayments} stored payments (seeded in ${fmt(seedMs / 1000, 1)} s) ` +
      `vs ${plan.baselineMessages} bare QoS 1 publishes of ${bytes} B (one signed record), window 100; ` +
      `median of ${plan.drainRounds} interleaved round(s)` +
      (mosquitto === null ? '; Mosquitto not installed, aedes only' : ''),
  );
  const rows: string[][] = [];
  for (const kind of kinds) {
    const broker = await kind.start();
    const baselines: BaselineRun[] = [];
    const agents: AgentRun[] = [];
    const diagnostics: AgentRun[] = [];
    try {
      // Warm-up (unmeasured): JIT of the MQTT client and broker paths.
      await bareMqttBaseline({ url: broker.url, messages: 1000, bytes, window: 100 });
      for (let round = 0; round < plan.drainRounds; round++) {
        baselines.push(
          await bareMqttBaseline({
            url: broker.url,
            messages: plan.baselineMessages,
            bytes,
            window: 100,
          }),
        );
        const common = {
          url: broker.url,
          templatePath,
          payments: plan.drainPayments,
          dir,
          keys,
          timeoutMs: 300_000,
        };
        agents.push(await agentDrain({ ...common, run: round * 2, openSealed: true }));
        diagnostics.push(await agentDrain({ ...common, run: round * 2 + 1, openSealed: false }));
      }
    } finally {
      await broker.stop();
    }
    const base = median(baselines.map((b) => b.perSecond));
    const agent = median(agents.map((a) => a.perSecond));
    const diag = median(diagnostics.map((a) => a.perSecond));
    const v = verdict(agent, base, { direction: 'at-least', limit: 1 });
    const d = verdict(diag, base, { direction: 'at-least', limit: 1 });
    const perBatch = median(agents.map((a) => a.recordsPerBatch));
    rows.push([
      kind.name,
      'agent, full path',
      fmt(agent, 0),
      fmt(base, 0),
      fmt(v.ratio),
      v.target,
      mark(v),
    ]);
    rows.push([
      kind.name,
      'diagnostic: cloud does not open sealed data',
      fmt(diag, 0),
      fmt(base, 0),
      fmt(d.ratio),
      '',
      'info',
    ]);
    results.push({
      id: `drain-${broker.name.toLowerCase()}`,
      name: `drain payments/s vs bare MQTT.js QoS 1 msgs/s, window 100, on ${kind.name}`,
      unit: 'per second',
      measured: agent,
      baseline: base,
      ratio: v.ratio,
      target: v.target,
      pass: v.pass,
      details: {
        bytes,
        recordsPerBatchMedian: perBatch,
        baselines,
        agents,
        diagnostics,
        diagnosticPerSecond: diag,
      },
    });
  }
  line(
    formatTable(
      ['broker', 'measured', 'per s', 'baseline per s', 'ratio', 'target', 'result'],
      rows,
    ),
  );
  line(
    '   full path: store → SyncWorker (128 KiB batches, 16 in flight) → broker → cloud core simulator in a ' +
      'child process (verify, open sealed card, decide, sign ack) → ack → marked acked',
  );
}

async function memoryTarget(
  work: string,
  templates: string,
  tokens: ReturnType<typeof makeCardTokens>,
): Promise<void> {
  const templatePath = path.join(templates, 'memory.db');
  const seedMs = seedStore(templatePath, stored, tokens);
  const r = await benchMemory({
    parentDir: work,
    templatePath,
    stored,
    rounds: plan.memoryRounds,
    settleMs,
  });
  const v = verdict(r.loadedRss, r.idleRss, { direction: 'at-most', limit: 1.2 });
  line();
  line(
    `3. Memory flat in backlog size — agent processes (--expose-gc, after gc), broker down, ${settleMs} ms ` +
      `after start; ${stored} payments seeded via createPayment in ${fmt(seedMs / 1000, 1)} s; ` +
      `median of ${r.rounds} alternating round(s)`,
  );
  const row = (name: string, list: typeof r.idle): string[] => {
    const pick = (f: (x: (typeof list)[number]) => number): number => median(list.map(f));
    return [
      name,
      mib(pick((x) => x.rss)),
      mib(pick((x) => x.heapUsed)),
      mib(pick((x) => x.heapTotal)),
      mib(pick((x) => x.external)),
      String(pick((x) => x.depth)),
      fmt(
        pick((x) => x.startMs),
        0,
      ),
    ];
  };
  line(
    formatTable(
      ['', 'rss MiB', 'heapUsed MiB', 'heapTotal MiB', 'external MiB', 'stored', 'startAgent ms'],
      [row('idle agent', r.idle), row(`agent with ${stored} stored`, r.loaded)],
    ),
  );
  line(`→ rss ratio ${fmt(v.ratio)}×, target ${v.target}: ${mark(v)}`);
  const startLoaded = median(r.loaded.map((x) => x.startMs));
  const startIdle = median(r.idle.map((x) => x.startMs));
  const s = verdict(startLoaded, startIdle, { direction: 'at-most', limit: 1.2 });
  line(
    `→ start-up ratio ${fmt(s.ratio)}× (startAgent with ${stored} stored and a verified checkpoint vs ` +
      `empty), target ${s.target}: ${mark(s)}`,
  );
  results.push({
    id: 'startup',
    name: `startAgent ms with ${stored} stored payments (checkpointed) vs empty`,
    unit: 'ms',
    measured: startLoaded,
    baseline: startIdle,
    ratio: s.ratio,
    target: s.target,
    pass: s.pass,
    details: { loaded: r.loaded.map((x) => x.startMs), idle: r.idle.map((x) => x.startMs) },
  });
  results.push({
    id: 'memory',
    name: `rss with ${stored} stored payments vs idle, broker down`,
    unit: 'bytes',
    measured: r.loadedRss,
    baseline: r.idleRss,
    ratio: v.ratio,
    target: v.target,
    pass: v.pass,
    details: { ...r, seedMs },
  });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `benchmark broke: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
