/**
 * The fleet bench and fault run (issue 16): `npm run bench -- fleet` (or `npm run bench:fleet`).
 *
 * N terminals (default 1000; `FLEET_TERMINALS`) of agent/fleet-sim.ts — each its own device key,
 * SQLite store, MQTT session and sync worker — on a 3-node RabbitMQ cluster started by
 * deploy/rabbitmq-cluster.sh (aedes in-process when rabbitmq-server is missing, said so), with
 * the cloud core simulator on a durable ledger (a SQLite file). Phases:
 *
 * 1. steady: payments at the fleet rate; fleet payments/s and payment → cloud ack p50/p99;
 * 2. cloud outage (`FLEET_OUTAGE_S`, default 30 s; the 10 minutes scale linearly in
 *    backlog): the cloud core is stopped, terminals keep selling; then a new cloud core instance
 *    on the same ledger, and the time to drain the fleet's backlog;
 * 3. node killed during a drain: another short outage builds a backlog, and at recovery the
 *    node serving a third of the fleet is SIGKILLed; failover p50/p99 per terminal, drain time;
 * 4. rolling restart: each node in turn stopped and started while payments flow;
 * 5. the ledger: lost (approved payments the cloud never got) and charged twice (keys accepted
 *    more than once), both must be 0; memory per terminal (RSS growth / N).
 *
 * Everything runs on this machine; the figures are for sizing (docs/fleet.md), not pass/fail,
 * except lost and charged twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { startFleet, type Fleet, type FleetFigures } from '../agent/fleet-sim.js';
import { EmbeddedBroker } from '../simulator/broker.js';
import { CloudLedger } from '../simulator/cloud-ledger.js';
import { rabbitmqAvailable, startRabbitCluster } from '../simulator/rabbitmq-cluster.js';
import { startCloudChild, type CloudChild } from './drain.js';

const N = Number(process.env.FLEET_TERMINALS ?? 1000);
const RATE = Number(process.env.FLEET_RATE ?? 0.05);
const STEADY_S = Number(process.env.FLEET_STEADY_S ?? 20);
const OUTAGE_S = Number(process.env.FLEET_OUTAGE_S ?? 30);
/**
 * Keep-alive and PINGRESP timeout of the terminals: 30 s and 5 s, as a fleet on a WAN broker
 * cluster is configured (`broker.keepaliveSeconds`, `broker.pingTimeoutMs`; AWS IoT Core raises
 * keep-alives below 30 s). The agent's store-LAN defaults (5 s, 2 s) turn late PINGRESPs of three
 * broker nodes sharing two cores with 1,000 terminals into spurious failovers.
 */
const KEEPALIVE_S = Number(process.env.FLEET_KEEPALIVE_S ?? 30);
const PING_TIMEOUT_MS = Number(process.env.FLEET_PING_TIMEOUT_MS ?? 5000);
/** The agent's default ack timeout (`sync.ackTimeoutMs`). */
const ACK_TIMEOUT_MS = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const line = (text = ''): void => void process.stdout.write(`${text}\n`);
const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(200);
  }
  return true;
}

interface Cluster {
  name: string;
  urls: readonly string[];
  /** `amqp://` URLs of the nodes (RabbitMQ); empty on the aedes fallback. */
  amqpUrls: readonly string[];
  kill(n: number): Promise<void>;
  stopNode(n: number): Promise<void>;
  startNode(n: number): Promise<void>;
  stop(): Promise<void>;
}

async function startCluster(): Promise<Cluster> {
  if (rabbitmqAvailable()) {
    const c = await startRabbitCluster();
    return { name: 'RabbitMQ 3.10, 3 nodes (quorum session queues)', ...c, urls: c.urls };
  }
  line('rabbitmq-server is not installed: running on a 3-node in-process aedes cluster instead');
  const a = await EmbeddedBroker.start();
  const b = await EmbeddedBroker.start({ joinCluster: a });
  const c = await EmbeddedBroker.start({ joinCluster: a });
  const nodes = [a, b, c];
  const node = (n: number): EmbeddedBroker => nodes[n - 1] as EmbeddedBroker;
  return {
    name: 'aedes, 3 in-process nodes',
    urls: nodes.map((x) => x.url),
    amqpUrls: [],
    kill: (n) => node(n).stop(),
    stopNode: (n) => node(n).stop(),
    startNode: (n) => node(n).start(),
    stop: async () => {
      for (const x of nodes) await x.stop();
    },
  };
}

/** How many cloud core instances compete for the uplinks on RabbitMQ (`FLEET_CLOUD_INSTANCES`). */
const CLOUD_INSTANCES = Number(process.env.FLEET_CLOUD_INSTANCES ?? 2);

/**
 * The cloud side: cloud core instances in child processes of their own (bench/cloud-child.ts, keys
 * over IPC) on the shared durable ledger. On RabbitMQ, `FLEET_CLOUD_INSTANCES` competing AMQP
 * consumers of one quorum queue, each starting on another node; on the aedes fallback, one MQTT
 * instance (aedes has no shared subscriptions). `stop()` is a cloud outage: every instance stops.
 */
class CloudSide {
  #children: CloudChild[] = [];
  #accepted = 0;
  #duplicates = 0;
  #cpuMs = 0;
  #redelivered = 0;
  #requeued = 0;
  #unsettled = new Map<string, number>();
  constructor(
    private readonly cluster: Cluster,
    private readonly ledgerFile: string,
    private readonly keys: { cloudSecretKey: Uint8Array; vaultSecretKey: Uint8Array },
    private readonly devices: ReadonlyMap<string, Uint8Array>,
  ) {}
  /** Instances that run at once. */
  get instances(): number {
    return this.cluster.amqpUrls.length > 0 ? CLOUD_INSTANCES : 1;
  }
  /** Starts the instances and waits until each consumes; none is left running on a failure. */
  async start(): Promise<void> {
    const amqpUrls = this.cluster.amqpUrls;
    const [first] = this.devices;
    if (first === undefined) throw new Error('the fleet has no devices');
    const started = await Promise.allSettled(
      Array.from({ length: this.instances }, (_, i) =>
        startCloudChild({
          brokerUrl: this.cluster.urls[0] ?? '',
          clientId: `cloud-core-fleet-${i}`,
          deviceId: first[0],
          keys: { devicePublicKey: first[1], ...this.keys },
          openSealed: false,
          devices: this.devices,
          ledgerFile: this.ledgerFile,
          ...(amqpUrls.length > 0
            ? {
                amqp: {
                  url: amqpUrls[i % amqpUrls.length] as string,
                  // Each instance starts on another node and fails over along the list.
                  urls: [
                    ...amqpUrls.slice(i % amqpUrls.length),
                    ...amqpUrls.slice(0, i % amqpUrls.length),
                  ],
                  queue: 'cloud-core-fleet',
                  prefetch: 64,
                },
              }
            : { brokerUrls: this.cluster.urls }),
        }),
      ),
    );
    this.#children = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await this.stop();
      throw (failed as PromiseRejectedResult).reason;
    }
  }
  /** Stops every instance and adds up its final counters (read after its stop). */
  async stop(): Promise<void> {
    const children = this.#children;
    this.#children = [];
    for (const last of await Promise.all(children.map((c) => c.stop()))) {
      if (last === undefined) continue;
      this.#accepted += last.counters.accepted;
      this.#duplicates += last.counters.duplicates;
      this.#cpuMs += last.cpuMs;
      this.#redelivered += last.amqp?.redelivered ?? 0;
      this.#requeued += last.amqp?.requeued ?? 0;
      for (const [reason, n] of Object.entries(last.unsettled ?? {}))
        this.#unsettled.set(reason, (this.#unsettled.get(reason) ?? 0) + n);
    }
  }
  /** Why the instances left uplinks unsettled, most frequent first: `reason × n` lines. */
  unsettledReasons(): string[] {
    return [...this.#unsettled]
      .sort((a, b) => b[1] - a[1])
      .map(([reason, n]) => `${reason} × ${n}`);
  }
  /**
   * Keys accepted (charged) over every instance that has stopped, duplicates answered, the
   * instances' CPU time (user + system), ms, and their AMQP deliveries the broker redelivered
   * (another instance had them unacknowledged) or they gave back (answer not published).
   */
  totals(): {
    accepted: number;
    duplicates: number;
    cpuMs: number;
    redelivered: number;
    requeued: number;
  } {
    return {
      accepted: this.#accepted,
      duplicates: this.#duplicates,
      cpuMs: this.#cpuMs,
      redelivered: this.#redelivered,
      requeued: this.#requeued,
    };
  }
  /** The keys booked in the shared ledger file. */
  ledgerKeys(): Set<string> {
    const ledger = new CloudLedger(this.ledgerFile, { shared: true });
    try {
      return new Set(ledger.entries.keys());
    } finally {
      ledger.close();
    }
  }
}

function report(label: string, f: FleetFigures, extra = ''): void {
  line(
    `${label}: ${f.online}/${f.terminals} online, ${f.payments} payments, backlog ${f.backlog}, ` +
      `acked ${f.acked}, ack p50 ${f.ackLatency.p50} ms p99 ${f.ackLatency.p99} ms, ` +
      `reconnects ${f.reconnects}, failovers ${f.failovers}${extra}`,
  );
}

/** Runs the whole scenario and prints the figures. */
export async function runFleetBench(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'pos-fleet-'));
  line(
    `fleet bench: ${N} terminals, ${RATE} payments/s each (fleet ${(N * RATE).toFixed(0)}/s), outage ${OUTAGE_S} s`,
  );
  const t0 = Date.now();
  const cluster = await startCluster();
  line(
    `cluster: ${cluster.name} up in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${cluster.urls.join(' ')}`,
  );
  // An interrupted run (Ctrl-C, kill) still stops the broker nodes it started.
  let cloud: CloudSide | undefined;
  const interrupted = (): void => {
    void (cloud?.stop() ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => cluster.stop())
      .finally(() => {
        rmSync(work, { recursive: true, force: true });
        process.exit(130);
      });
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const cloudKeys = nacl.sign.keyPair();
  const vault = nacl.box.keyPair();
  let fleet: Fleet | undefined;
  try {
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const t1 = Date.now();
    fleet = await startFleet({
      terminals: N,
      brokerUrls: cluster.urls,
      dir: path.join(work, 'terminals'),
      cloudPublicKey: cloudKeys.publicKey,
      vaultPublicKey: vault.publicKey,
      paymentsPerSecond: RATE,
      keepaliveSeconds: KEEPALIVE_S,
      pingTimeoutMs: PING_TIMEOUT_MS,
      ackTimeoutMs: ACK_TIMEOUT_MS,
    });
    cloud = new CloudSide(
      cluster,
      path.join(work, 'ledger.db'),
      { cloudSecretKey: cloudKeys.secretKey, vaultSecretKey: vault.secretKey },
      fleet.devices,
    );
    await cloud.start();
    const f = fleet;
    await waitUntil(() => f.figures().online === N, 120_000);
    global.gc?.();
    const rssFleet = process.memoryUsage().rss;
    line(
      `fleet connected in ${((Date.now() - t1) / 1000).toFixed(1)} s; memory ${mb(rssFleet - rssBefore)} MB for ${N} terminals = ${((rssFleet - rssBefore) / N / 1024).toFixed(0)} KiB per terminal (RSS, stores + sessions + workers)`,
    );

    // 1. Steady state.
    fleet.startPayments();
    await sleep(STEADY_S * 1000);
    const s = fleet.figures();
    report(
      `1. steady ${STEADY_S} s`,
      s,
      `; fleet ${(s.payments / STEADY_S).toFixed(1)} payments/s`,
    );

    // 2. Cloud outage, then recovery.
    fleet.resetSamples();
    const beforeOutage = fleet.figures();
    await cloud.stop();
    await sleep(OUTAGE_S * 1000);
    const atRecovery = fleet.figures();
    let t = Date.now();
    await cloud.start();
    const drained = await waitUntil(() => f.figures().backlog <= Math.max(5, N * RATE), 600_000);
    const drainS = (Date.now() - t) / 1000;
    report(
      `2. cloud outage ${OUTAGE_S} s`,
      fleet.figures(),
      `; backlog at recovery ${atRecovery.backlog}, drained ${drained ? 'in' : 'NOT within'} ${drainS.toFixed(1)} s (${(atRecovery.backlog / drainS).toFixed(0)} records/s); ` +
        `during the outage ${atRecovery.publishes - beforeOutage.publishes} batch publishes, ${atRecovery.resends - beforeOutage.resends} of them resends`,
    );

    // 3. A node killed during a drain.
    fleet.resetSamples();
    const before3 = fleet.figures();
    await cloud.stop();
    await sleep(Math.min(OUTAGE_S, 15) * 1000);
    const backlog3 = fleet.figures().backlog;
    await cloud.start();
    await waitUntil(() => f.figures().acked > atRecovery.acked, 5000);
    t = Date.now();
    await cluster.kill(2);
    const drained3 = await waitUntil(
      () => f.figures().online === N && f.figures().backlog <= Math.max(5, N * RATE),
      600_000,
    );
    const k = fleet.figures();
    report(
      '3. node 2 killed during the drain',
      k,
      `; backlog ${backlog3}, fleet back and drained ${drained3 ? 'in' : 'NOT within'} ${((Date.now() - t) / 1000).toFixed(1)} s; failover p50 ${k.failover.p50} ms p99 ${k.failover.p99} ms max ${k.failover.max} ms over ${k.failover.count} terminals; ` +
        `${k.publishes - before3.publishes} batch publishes, ${k.resends - before3.resends} of them resends`,
    );
    await cluster.startNode(2);

    // 4. Rolling restart of the three nodes.
    fleet.resetSamples();
    t = Date.now();
    for (const n of [1, 2, 3]) {
      await cluster.stopNode(n);
      await waitUntil(() => f.figures().online === N, 120_000);
      await cluster.startNode(n);
    }
    const r = fleet.figures();
    report(
      '4. rolling restart',
      r,
      `; took ${((Date.now() - t) / 1000).toFixed(0)} s; failover p50 ${r.failover.p50} ms p99 ${r.failover.p99} ms over ${r.failover.count} failovers`,
    );

    // 5. The ledger.
    fleet.stopPayments();
    await waitUntil(() => f.figures().backlog === 0, 300_000);
    await cloud.stop();
    const ledger = cloud.ledgerKeys();
    const lost = fleet.keys.filter((key) => !ledger.has(key)).length;
    const totals = cloud.totals();
    const chargedTwice = totals.accepted - ledger.size;
    const final = fleet.figures();
    report('5. end', final);
    line(
      `ledger: ${fleet.keys.length} approved payments, ${ledger.size} keys in the ledger, lost ${lost}, charged twice ${chargedTwice}, duplicates answered ${totals.duplicates}`,
    );
    const answered = totals.accepted + totals.duplicates;
    line(
      `cloud core: ${cloud.instances} instance(s) at a time, CPU ${(totals.cpuMs / 1000).toFixed(1)} s over ${answered} records answered = ${answered === 0 ? '-' : ((totals.cpuMs * 1000) / answered).toFixed(0)} µs per record (user + system, every instance); AMQP deliveries redelivered ${totals.redelivered}, given back ${totals.requeued}`,
    );
    for (const reason of cloud.unsettledReasons().slice(0, 5)) line(`  left unsettled: ${reason}`);
    if (lost !== 0 || chargedTwice !== 0) process.exitCode = 1;
  } finally {
    await cloud?.stop().catch(() => undefined);
    await fleet?.stop({ remove: true }).catch(() => undefined);
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('fleet.js') === true) {
  runFleetBench().then(
    () => process.exit(process.exitCode ?? 0),
    (error: unknown) => {
      process.stderr.write(
        `fleet bench broke: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
