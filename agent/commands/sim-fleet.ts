/**
 * `pos-agent sim fleet --terminals N`: the fleet simulator (issue 16, agent/fleet-sim.ts) as a
 * command. N terminals, each with its own device identity, keys, SQLite store and MQTT session
 * (the agent's real store and sync code), take payments at `--rate` per second each with the
 * offline policy, against `--broker URL,URL,…` (a broker cluster's nodes; default: an embedded
 * aedes broker), acknowledged by an in-process cloud core simulator on a durable ledger. Prints
 * the fleet's figures every `--every` seconds and per-terminal figures at the end.
 *
 * This file only registers the command; the fleet code is imported when it runs.
 */
import type { Command } from 'commander';
import { AgentError } from '../../common/agent-error.js';

/** Options of {@link simFleet}. */
export interface SimFleetOptions {
  terminals: number;
  /** Comma-separated broker URLs; none = an embedded aedes broker. */
  broker?: string;
  /** Payments per second per terminal. */
  rate: number;
  /** Seconds to run; 0 = until Ctrl-C. */
  duration: number;
  /** Seconds between fleet reports. */
  every: number;
  /** Folder of the terminals' stores; default a temp folder, removed at the end. */
  dir?: string;
  /** Print one line per terminal at the end (else the 10 with the largest backlog). */
  perTerminal?: boolean;
  /** MQTT keep-alive of every terminal, s (the agent's `broker.keepaliveSeconds`); default 5. */
  keepalive?: number;
  /** PINGRESP timeout, ms (the agent's `broker.pingTimeoutMs`); default 2000. */
  pingTimeout?: number;
}

const number = (value: string): number => (/^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN);

/** Registers `sim fleet` on the `pos-agent sim` command. */
export function registerSimFleet(sim: Command): void {
  sim
    .command('fleet')
    .description(
      'run N simulated terminals (own identity, keys, SQLite store, MQTT session; the real store and sync) against a broker list, and report fleet figures',
    )
    .requiredOption('--terminals <n>', 'how many terminals (1–5000)', number)
    .option('--broker <urls>', 'broker URLs, comma-separated (the cluster nodes, in order)')
    .option('--rate <per-second>', 'payments per second per terminal', number, 0.05)
    .option(
      '--duration <seconds>',
      'run this long, then report and stop (0: until Ctrl-C)',
      number,
      60,
    )
    .option('--every <seconds>', 'fleet report interval', number, 5)
    .option('--dir <dir>', 'folder for the terminals’ stores (default: a temp folder, removed)')
    .option('--per-terminal', 'print every terminal at the end')
    .option(
      '--keepalive <seconds>',
      'MQTT keep-alive of each terminal (broker.keepaliveSeconds; 30 for a fleet on a WAN broker)',
      number,
      5,
    )
    .option(
      '--ping-timeout <ms>',
      'how long a PINGREQ waits for its PINGRESP before the link is dropped (broker.pingTimeoutMs)',
      number,
      2000,
    )
    .action(async (options: SimFleetOptions) => {
      await simFleet(options, process.stdout);
    });
}

/**
 * Runs the fleet (see the file header).
 *
 * @throws AgentError POS501 for a bad option (terminals outside 1–5000, a negative rate, a
 *   keep-alive outside 1–1200 s or a ping timeout outside 100–60000 ms, a broker URL that is not
 *   mqtt:// or mqtts://).
 */
export async function simFleet(
  options: SimFleetOptions,
  out: NodeJS.WritableStream,
): Promise<void> {
  if (!Number.isInteger(options.terminals) || options.terminals < 1 || options.terminals > 5000)
    throw new AgentError(
      'POS501',
      '--terminals must be a whole number 1–5000, e.g. --terminals 100',
    );
  if (!Number.isFinite(options.rate) || options.rate < 0)
    throw new AgentError('POS501', '--rate must be a number of payments per second ≥ 0, e.g. 0.05');
  if (!Number.isFinite(options.duration) || !Number.isFinite(options.every) || options.every <= 0)
    throw new AgentError('POS501', '--duration and --every must be seconds, e.g. --duration 60');
  const keepalive = options.keepalive ?? 5;
  const pingTimeout = options.pingTimeout ?? 2000;
  if (!Number.isInteger(keepalive) || keepalive < 1 || keepalive > 1200)
    throw new AgentError('POS501', '--keepalive must be whole seconds 1–1200, e.g. --keepalive 30');
  if (!Number.isInteger(pingTimeout) || pingTimeout < 100 || pingTimeout > 60_000)
    throw new AgentError(
      'POS501',
      '--ping-timeout must be whole milliseconds 100–60000, e.g. --ping-timeout 5000',
    );
  const urls = (options.broker ?? '').split(',').filter((u) => u !== '');
  const badUrl = urls.find((u) => !/^mqtts?:\/\/[^/\s]+(:\d{1,5})?\/?$/.test(u));
  if (badUrl !== undefined)
    throw new AgentError(
      'POS501',
      `--broker ${badUrl} is not mqtt://host:port or mqtts://host:port; give the cluster nodes comma-separated`,
    );
  const [
    { mkdtempSync, rmSync },
    os,
    path,
    nacl,
    { startFleet },
    { EmbeddedBroker },
    { CloudCore },
  ] = await Promise.all([
    import('node:fs'),
    import('node:os'),
    import('node:path'),
    import('tweetnacl'),
    import('../fleet-sim.js'),
    import('../../simulator/broker.js'),
    import('../../simulator/cloud-core.js'),
  ]);
  const write = (text: string): void => void out.write(`${text}\n`);
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'pos-fleet-'));
  const broker = urls.length === 0 ? await EmbeddedBroker.start() : undefined;
  const brokerUrls = broker === undefined ? urls : [broker.url];
  const cloudKeys = nacl.default.sign.keyPair();
  const vault = nacl.default.box.keyPair();
  const fleet = await startFleet({
    terminals: options.terminals,
    brokerUrls,
    dir: path.join(dir, 'terminals'),
    cloudPublicKey: cloudKeys.publicKey,
    vaultPublicKey: vault.publicKey,
    paymentsPerSecond: options.rate,
    keepaliveSeconds: keepalive,
    pingTimeoutMs: pingTimeout,
  });
  const cloud = await CloudCore.start({
    brokerUrl: brokerUrls[0] ?? '',
    brokerUrls,
    clientId: 'cloud-core-fleet',
    signer: { secretKey: cloudKeys.secretKey },
    ledgerFile: path.join(dir, 'ledger.db'),
    // Devices registered before the first CONNACK: nothing queued for the core is refused.
    connectTimeoutMs: 0,
  });
  for (const [id, key] of fleet.devices) cloud.registerDevice(id, key);
  await cloud.whenConnected(60_000);
  write(
    `fleet: ${options.terminals} terminals on ${brokerUrls.join(', ')}${broker === undefined ? '' : ' (embedded aedes)'}, ${options.rate} payments/s each; stores in ${dir}`,
  );
  const started = Date.now();
  fleet.startPayments();
  let last = { at: started, payments: 0 };
  const report = (): void => {
    const f = fleet.figures();
    const now = Date.now();
    const rate = ((f.payments - last.payments) * 1000) / Math.max(1, now - last.at);
    last = { at: now, payments: f.payments };
    write(
      `${((now - started) / 1000).toFixed(0).padStart(5)} s  online ${f.online}/${f.terminals}  payments ${f.payments} (${rate.toFixed(1)}/s)  backlog ${f.backlog}  acked ${f.acked}  ack p50 ${f.ackLatency.p50} ms p99 ${f.ackLatency.p99} ms  reconnects ${f.reconnects}  failovers ${f.failovers}`,
    );
  };
  const timer = setInterval(report, options.every * 1000);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (options.duration > 0) setTimeout(stop, options.duration * 1000);
  });
  clearInterval(timer);
  fleet.stopPayments();
  report();
  const terminals = fleet.terminals().sort((a, b) => b.backlog - a.backlog);
  const shown = options.perTerminal === true ? terminals : terminals.slice(0, 10);
  write(options.perTerminal === true ? 'terminals:' : 'terminals with the largest backlog:');
  for (const t of shown)
    write(
      `  ${t.deviceId}  ${t.online ? 'online ' : 'offline'} ${t.endpoint}  payments ${t.payments}  acked ${t.acked}  backlog ${t.backlog}  reconnects ${t.reconnects}  failovers ${t.failovers}`,
    );
  const ledger = cloud.records();
  write(
    `cloud ledger: ${ledger.size} keys, lost so far ${fleet.keys.filter((k) => !ledger.has(k)).length} (records still in the backlog count here), duplicates answered ${cloud.counters().duplicates}`,
  );
  await cloud.stop();
  await fleet.stop({ remove: options.dir === undefined });
  await broker?.stop();
  if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
}
