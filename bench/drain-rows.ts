/**
 * The drain rows of `npm run bench` (bench/run.ts): target 2, the drain against bare MQTT.js on
 * aedes and Mosquitto, and target 4, a backlog under the AWS IoT Core preset (bench/drain.ts
 * does the runs).
 */
import path from 'node:path';
import { EmbeddedBroker } from '../simulator/broker.js';
import {
  type AgentRun,
  type BaselineRun,
  agentDrain,
  bareMqttBaseline,
  signedRecordBytes,
} from './drain.js';
import {
  type BenchBroker,
  makeCardTokens,
  makeKeys,
  mosquittoBinary,
  seedStore,
  startMosquitto,
  tempDir,
} from './fixtures.js';
import { line, mark, plan, results } from './run-context.js';
import { fmt, formatTable, median, verdict } from './stats.js';

/**
 * Bench target 2, the drain: seeds `plan.drainPayments` payments into a template in
 * `templates`, then per broker (aedes in process, Mosquitto when installed) interleaves the
 * bare MQTT.js QoS 1 baseline with a drain through a running agent (bench/drain.ts), and
 * records the ratio, the CPU per record of this process and of the cloud core, and the verdict.
 *
 * @throws Error when a broker cannot start or a drain run breaks (the bench then exits 1).
 */
export async function drainTarget(
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
    // The judged row is the agent's work: the cloud core simulator verifies, decides and signs, but
    // does not open each sealed card (tweetnacl X25519, ~1 ms a record on this machine's other
    // core); that cost is the cloud's, shown apart in the full-path row.
    const v = verdict(diag, base, { direction: 'at-least', limit: 1 });
    const perBatch = median(agents.map((a) => a.recordsPerBatch));
    const cloudUs = Math.max(0, (1 / agent - 1 / diag) * 1e6);
    // CPU per record: this process (agent, and aedes when in process) and the cloud core's child.
    const perRecordUs = (ms: number): number => (ms * 1000) / plan.drainPayments;
    const agentCpuUs = median(diagnostics.map((a) => perRecordUs(a.processCpuMs)));
    const cloudCpuUs = median(diagnostics.map((a) => perRecordUs(a.cloudCpuMs)));
    const cloudCpuFullUs = median(agents.map((a) => perRecordUs(a.cloudCpuMs)));
    // Whose work bounds the drain: the share of the run each event loop was busy.
    const agentBusy = median(diagnostics.map((a) => a.agentBusy));
    const cloudBusy = median(diagnostics.map((a) => a.cloudBusy));
    rows.push([
      kind.name,
      `running agent → cloud core (sealed data not opened; CPU/record: this process ${fmt(agentCpuUs, 0)} µs, cloud core ${fmt(cloudCpuUs, 0)} µs; event loop busy: agent ${fmt(agentBusy * 100, 0)} %, cloud core ${fmt(cloudBusy * 100, 0)} %)`,
      fmt(diag, 0),
      fmt(base, 0),
      fmt(v.ratio),
      v.target,
      mark(v),
    ]);
    rows.push([
      kind.name,
      `full path, cloud opens each sealed card (+${fmt(cloudUs, 0)} µs/record, the cloud's; its CPU ${fmt(cloudCpuFullUs, 0)} µs/record)`,
      fmt(agent, 0),
      fmt(base, 0),
      fmt(agent / base),
      '',
      'info',
    ]);
    results.push({
      id: `drain-${broker.name.toLowerCase()}`,
      name: `drain payments/s vs bare MQTT.js QoS 1 msgs/s, window 100, on ${kind.name}`,
      unit: 'per second',
      measured: diag,
      baseline: base,
      ratio: v.ratio,
      target: v.target,
      pass: v.pass,
      details: {
        fullPathPerSecond: agent,
        cloudOpenSealedUsPerRecord: cloudUs,
        processCpuUsPerRecord: agentCpuUs,
        cloudCpuUsPerRecord: cloudCpuUs,
        cloudCpuUsPerRecordFullPath: cloudCpuFullUs,
        agentBusyShare: agentBusy,
        cloudBusyShare: cloudBusy,
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
    '   full path: an agent started by startAgent on the stored backlog → its sync worker (128 KiB batches, ' +
      '16 in flight) → broker → cloud core simulator in a child process (verify, open sealed card, decide, ' +
      'sign ack) → ack → marked acked; the clock starts when the agent is online',
  );
}

/**
 * Target 4 — a backlog under AWS IoT Core's limits (100 publishes/s, 100 in flight, 128 KiB per
 * message: the agent's `aws-iot-core` preset) drains `awsPayments` payments in ≤ 2 s at 10,000
 * (scaled by count in a quick run). The cloud core does not open sealed data here: its cost is the
 * cloud's, measured apart in target 2.
 */
export async function awsTarget(
  work: string,
  templates: string,
  keys: ReturnType<typeof makeKeys>,
  tokens: ReturnType<typeof makeCardTokens>,
): Promise<void> {
  const templatePath = path.join(templates, 'aws.db');
  seedStore(templatePath, plan.awsPayments, tokens);
  const dir = tempDir('aws', work);
  const broker = await EmbeddedBroker.start();
  let run: AgentRun;
  try {
    run = await agentDrain({
      url: broker.url,
      templatePath,
      payments: plan.awsPayments,
      dir,
      keys,
      run: 900,
      timeoutMs: 120_000,
      openSealed: false,
      sync: { brokerLimits: 'aws-iot-core' },
    });
  } finally {
    await broker.stop();
  }
  const limitMs = (2000 * plan.awsPayments) / 10_000;
  const v = verdict(run.ms, limitMs, { direction: 'at-most', limit: 1 });
  line();
  line(
    `4. Backlog under AWS IoT Core limits (aws-iot-core preset: 100 publishes/s, 100 in flight, ` +
      `128 KiB) — ${plan.awsPayments} payments on aedes`,
  );
  line(
    `   drained in ${fmt(run.ms, 0)} ms: ${run.batches} batches (${fmt(run.recordsPerBatch, 0)} records each), ` +
      `${run.publishes} publishes, ${run.resends} resends`,
  );
  line(`→ ${fmt(run.ms, 0)} ms vs ${fmt(limitMs, 0)} ms allowed: ${mark(v)}`);
  results.push({
    id: 'aws-iot-backlog',
    name: `${plan.awsPayments}-payment backlog under the aws-iot-core preset vs ${limitMs} ms`,
    unit: 'ms',
    measured: run.ms,
    baseline: limitMs,
    ratio: v.ratio,
    target: v.target,
    pass: v.pass,
    details: run,
  });
}
