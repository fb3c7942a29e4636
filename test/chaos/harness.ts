/**
 * The fault-injection suite (issue 10): real processes, a client that posts payments without
 * pause, and faults at random moments; at the end every acknowledged payment must be in the cloud
 * core's ledger, approved, once.
 *
 * ```
 *  client ──HTTP──► agent (pos-agent run, child) ──► TCP proxy (here) ──► Mosquitto (child)
 *                     │ tcp://                        pause / reset          ▲
 *                     ▼                                                      │
 *              sim pinpad (child)                          sim cloud (child, ledger.db)
 * ```
 *
 * Faults: kill -9 of the agent (at a random moment, during start-up, during a drain), kill of the
 * broker and of the cloud core, silent partitions (the proxy drops every byte, no FIN, no RST)
 * and resets (RST) — with the time the agent took to notice each partition — and, when running
 * as root, a full disk (the data directory is a small tmpfs). After the cycles: WAL damage, page
 * damage and an edited event, each on a stopped agent, each of which must end with payments
 * refused and the files kept.
 *
 * The agent, simulators and CLI run from a bundle of agent/cli.ts made with esbuild (a second,
 * fast build of the same sources), so the suite needs no `npm run build` and runs in `npm test`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
  closeSync,
  createWriteStream,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { checkWal } from '../../store-forward/wal-check.js';
import { freePort } from '../helpers/free-port.js';
import { mosquittoAvailable, startMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

/** The faults one cycle can be. */
export type ChaosFault =
  | 'kill-agent'
  | 'kill-agent-startup'
  | 'kill-agent-drain'
  | 'partition'
  | 'reset'
  | 'kill-broker'
  | 'kill-cloud'
  | 'disk-full';

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** Stop starting cycles after this long, ms. */
  durationMs: number;
  /** At most this many cycles (default: unbounded, the duration decides). */
  maxCycles?: number;
  /** The faults, in the order they are cycled through (shuffled per round). Default: all. */
  faults?: ChaosFault[];
  /** Run the damage cases (WAL, page, edited event) at the end. Default true. */
  damage?: boolean;
  /** Broker keep-alive for the agent, seconds; default: the config default (5). */
  keepaliveSeconds?: number;
  /** Progress lines go here. */
  out: (line: string) => void;
}

/** What one damage case ended with. */
export interface DamageResult {
  case: 'wal' | 'page' | 'event';
  /**
   * What the agent did: refused to start (code), or started and answered POST with (code); for
   * page damage also whether `pos-agent doctor` reports it.
   */
  outcome: string;
  refused: boolean;
  filesKept: boolean;
}

/** The figures of a run. */
export interface ChaosReport {
  seconds: number;
  cycles: number;
  faults: Record<string, number>;
  agentKills: number;
  partitions: number;
  /** ms from the start of each partition until /v1/status said offline. */
  noticeMs: number[];
  posted: number;
  acknowledged: number;
  declined: number;
  /** Declined (or failed) answers by state and decline code, e.g. `declined offline_total_limit`. */
  declinedBy: Record<string, number>;
  /** 503 answers (disk full, agent starting or refusing). */
  refused: number;
  /** Keys that got no answer at all after retries (agent down too long). */
  unanswered: number;
  /** Any other answer, by `status code`. */
  otherAnswers: Record<string, number>;
  lost: string[];
  chargedTwice: string[];
  unplannedExits: string[];
  verifyOk: boolean | undefined;
  diskFull: 'tested' | string;
  broker: string;
  damage: DamageResult[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bundles agent/cli.ts with esbuild into node_modules/.cache (packages stay external). */
export async function bundleCli(): Promise<string> {
  // One bundle per run: two runs at once must not rewrite each other's agent.
  const outfile = path.resolve(`node_modules/.cache/pos-chaos/cli-${process.pid}.mjs`);
  const { build } = await import('esbuild');
  await build({
    entryPoints: ['agent/cli.ts'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    target: 'node20',
    outfile,
    logLevel: 'error',
  });
  return outfile;
}

interface Proc {
  name: string;
  child: ChildProcess;
  planned: boolean;
  exited: Promise<number | null>;
}

/**
 * Runs the suite.
 *
 * @returns the figures; the caller decides what fails (lost, charged twice, unplanned exits).
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const out = options.out;
  const cli = await bundleCli();
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-chaos-'));
  const cleanups: Array<() => unknown> = [];
  const procs = new Set<Proc>();
  const report: ChaosReport = {
    seconds: 0,
    cycles: 0,
    faults: {},
    agentKills: 0,
    partitions: 0,
    noticeMs: [],
    posted: 0,
    acknowledged: 0,
    declined: 0,
    declinedBy: {},
    refused: 0,
    unanswered: 0,
    otherAnswers: {},
    lost: [],
    chargedTwice: [],
    unplannedExits: [],
    verifyOk: undefined,
    diskFull: 'skipped',
    broker: '',
    damage: [],
  };

  // During the damage cases an agent that refuses to start exits on purpose.
  let refusalExpected = false;
  const spawnCli = (name: string, args: string[], logFile: string): Proc => {
    const child = spawn(process.execPath, [cli, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dir,
    });
    const log = createWriteStream(logFile, { flags: 'a' });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const proc: Proc = {
      name,
      child,
      planned: false,
      exited: new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          procs.delete(proc);
          if (!proc.planned && !refusalExpected) {
            report.unplannedExits.push(`${name} exited (code ${code}, signal ${signal})`);
            out(`!! ${name} exited unplanned (code ${code}, signal ${signal}); see ${logFile}`);
          }
          resolve(code);
        }),
      ),
    };
    procs.add(proc);
    return proc;
  };
  const kill9 = async (proc: Proc | undefined): Promise<void> => {
    if (proc === undefined || proc.child.exitCode !== null || proc.child.signalCode !== null)
      return;
    proc.planned = true;
    proc.child.kill('SIGKILL');
    await proc.exited;
  };

  try {
    // ---- set-up --------------------------------------------------------------------------
    const term = path.join(dir, 'term');
    const padPort = await freePort();
    const apiPort = await freePort();
    let broker: MosquittoBroker | undefined;
    let brokerProc: Proc | undefined;
    let brokerPort: number;
    if (mosquittoAvailable() !== null) {
      broker = await startMosquitto();
      cleanups.push(() => broker?.dispose());
      brokerPort = broker.port;
      report.broker = 'mosquitto';
    } else {
      brokerPort = await freePort();
      report.broker = 'aedes (pos-agent sim broker; Mosquitto not installed)';
    }
    const startBroker = async (): Promise<void> => {
      if (broker !== undefined) return broker.start();
      brokerProc = spawnCli(
        'broker',
        ['sim', 'broker', '--port', String(brokerPort)],
        path.join(dir, 'broker.log'),
      );
      await sleep(1500);
    };
    const stopBroker = async (): Promise<void> => {
      if (broker !== undefined) return broker.stop();
      await kill9(brokerProc);
    };
    if (broker === undefined) await startBroker();
    const proxy: TcpProxy = await startTcpProxy({ port: brokerPort });
    cleanups.push(() => proxy.close());
    execFileSync(
      process.execPath,
      [
        cli,
        'init-dev',
        '--dir',
        term,
        '--device-id',
        'chaos-lane-1',
        '--pinpad',
        `tcp://127.0.0.1:${padPort}`,
        '--broker',
        proxy.url,
        '--api-port',
        String(apiPort),
      ],
      { stdio: 'pipe' },
    );
    const configFile = path.join(term, 'config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    let dataDir = path.join(term, 'data');
    let mounted: string | undefined;
    if (process.getuid?.() === 0 && (options.faults ?? ['disk-full']).includes('disk-full')) {
      const mnt = path.join(dir, 'tmpfs');
      mkdirSync(mnt);
      try {
        // Room for the database of a long run (≈ 1.5 KiB per payment with its events): a 24 MiB
        // tmpfs filled up by itself after 17,000 payments and the agent rightly refused to start.
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=0700', 'tmpfs', mnt], {
          stdio: 'pipe',
        });
        mounted = mnt;
        cleanups.push(() => execFileSync('umount', ['-l', mnt], { stdio: 'pipe' }));
        dataDir = path.join(mnt, 'data');
        report.diskFull = 'tested';
      } catch (error) {
        report.diskFull = `skipped: cannot mount a tmpfs (${(error as Error).message.split('\n')[0]})`;
      }
    } else if (!(options.faults ?? ['disk-full']).includes('disk-full')) {
      report.diskFull = 'not in this run';
    } else if (process.getuid?.() !== 0) {
      report.diskFull = 'skipped: not root (mounting a small tmpfs to fill needs root)';
    }
    Object.assign(config, {
      dataDir,
      broker: {
        ...(config.broker as object),
        reconnectPeriodMs: 500,
        ...(options.keepaliveSeconds === undefined
          ? {}
          : { keepaliveSeconds: options.keepaliveSeconds }),
      },
      sync: { ackTimeoutMs: 2000 },
      authorization: { timeoutMs: 5000 },
      log: { level: 'info', file: path.join(dir, 'agent.log') },
    });
    writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    const token = readFileSync(path.join(term, 'keys', 'api.token'), 'utf8').trim();
    const api = `http://127.0.0.1:${apiPort}`;
    const dbPath = path.join(dataDir, 'agent.db');

    spawnCli(
      'pinpad',
      ['sim', 'pinpad', '--listen', `tcp://127.0.0.1:${padPort}`],
      path.join(dir, 'pinpad.log'),
    );
    const cloudLog = path.join(dir, 'cloud.log');
    const startCloud = (): Proc =>
      spawnCli(
        'cloud',
        [
          'sim',
          'cloud',
          '--keys',
          path.join(term, 'cloud'),
          '--broker',
          `mqtt://127.0.0.1:${brokerPort}`,
        ],
        cloudLog,
      );
    let cloud = startCloud();
    let agent: Proc | undefined;
    const startAgent = (): Proc =>
      (agent = spawnCli('agent', ['run', '--config', configFile], path.join(dir, 'agent.out')));

    const status = async (): Promise<{
      link: { state: string };
      queue: { depth: number };
    } | null> => {
      try {
        const response = await fetch(`${api}/v1/status`, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(2000),
        });
        if (response.status !== 200) return null;
        return (await response.json()) as { link: { state: string }; queue: { depth: number } };
      } catch {
        return null;
      }
    };
    const waitFor = async (
      what: string,
      condition: () => Promise<boolean> | boolean,
      timeoutMs = 60_000,
    ): Promise<boolean> => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (await condition()) return true;
        await sleep(100);
      }
      out(`   (gave up waiting for ${what} after ${timeoutMs} ms)`);
      return false;
    };
    const agentUp = (): Promise<boolean> =>
      waitFor('the agent to answer', async () => (await status()) !== null);
    const agentOnline = (): Promise<boolean> =>
      waitFor('the agent to be online', async () => (await status())?.link.state === 'online');

    startAgent();
    await agentUp();
    await agentOnline();
    out(`chaos: ${dir} (broker: ${report.broker}; disk full: ${report.diskFull})`);

    // ---- the client ----------------------------------------------------------------------
    const acknowledged = new Set<string>();
    let stopClient = false;
    let n = 0;
    const client = (async () => {
      while (!stopClient) {
        n += 1;
        const key = `chaos-${String(n).padStart(6, '0')}`;
        // Amounts never end in 51 (the simulator's decline rule): every approval must be charged.
        const amount = 100 + ((n * 7) % 900) * 10;
        report.posted += 1;
        const deadline = Date.now() + 60_000;
        let answered = false;
        while (!answered && Date.now() < deadline) {
          try {
            const response = await fetch(`${api}/v1/payments`, {
              method: 'POST',
              headers: {
                authorization: `Bearer ${token}`,
                'content-type': 'application/json',
                'idempotency-key': key,
              },
              body: JSON.stringify({ amount, currency: 'EUR' }),
              signal: AbortSignal.timeout(30_000),
            });
            const body = (await response.json()) as {
              state?: string;
              declineCode?: string;
              error?: { code: string };
            };
            if (response.status === 200 || response.status === 201) {
              answered = true;
              if (body.state === 'approved' || body.state === 'stored') acknowledged.add(key);
              else {
                report.declined += 1;
                const why = `${body.state ?? '?'} ${body.declineCode ?? ''}`.trim();
                report.declinedBy[why] = (report.declinedBy[why] ?? 0) + 1;
              }
            } else if (response.status === 503 && body.error?.code !== 'POS431') {
              answered = true;
              report.refused += 1;
            } else if (body.error?.code === 'POS410' || body.error?.code === 'POS431') {
              // Busy (a retry raced its own first attempt) or stopping: try again.
              await sleep(100);
            } else {
              answered = true;
              const what = `${response.status} ${body.error?.code ?? body.state ?? ''}`;
              report.otherAnswers[what] = (report.otherAnswers[what] ?? 0) + 1;
            }
          } catch {
            // The agent is down (killed) or restarting: the same key again.
            await sleep(200);
          }
        }
        if (!answered) report.unanswered += 1;
      }
    })();

    // ---- the cycles ----------------------------------------------------------------------
    // Kill-heavy: 10 agent kills and 3 partitions per round of 14 (issue 10 asks a full run for
    // at least 100 kills and 20 partitions).
    const all: ChaosFault[] = options.faults ?? [
      'kill-agent',
      'partition',
      'kill-agent-startup',
      'kill-agent',
      'reset',
      'kill-agent',
      'kill-agent-drain',
      'kill-broker',
      'kill-agent',
      'kill-agent-startup',
      'kill-cloud',
      'kill-agent',
      'partition',
      ...(mounted !== undefined ? (['disk-full'] as const) : []),
    ];
    const partition = async (): Promise<void> => {
      await agentOnline();
      proxy.pause('drop');
      const t0 = Date.now();
      report.partitions += 1;
      const noticed = await waitFor(
        'the partition to be noticed',
        async () => (await status())?.link.state === 'offline',
        30_000,
      );
      if (noticed) report.noticeMs.push(Date.now() - t0);
      out(`   partition noticed after ${noticed ? Date.now() - t0 : 'never'} ms`);
      await sleep(randomInt(500, 2500));
      proxy.resume();
      // Half of the partitions end like a NAT that forgot the connection: RST.
      if (randomInt(2) === 0) proxy.reset();
    };
    let cycle = 0;
    const cyclesStarted = Date.now();
    while (
      Date.now() - cyclesStarted < options.durationMs &&
      (options.maxCycles === undefined || cycle < options.maxCycles)
    ) {
      const fault = all[cycle % all.length] as ChaosFault;
      cycle += 1;
      report.faults[fault] = (report.faults[fault] ?? 0) + 1;
      out(`cycle ${cycle}: ${fault} (posted ${report.posted}, acknowledged ${acknowledged.size})`);
      switch (fault) {
        case 'kill-agent':
          await sleep(randomInt(0, 2000));
          await kill9(agent);
          report.agentKills += 1;
          startAgent();
          await agentUp();
          break;
        case 'kill-agent-startup':
          await kill9(agent);
          report.agentKills += 1;
          startAgent();
          await sleep(randomInt(50, 900));
          await kill9(agent);
          report.agentKills += 1;
          startAgent();
          await agentUp();
          break;
        case 'kill-agent-drain': {
          // A backlog while partitioned, then a kill while it drains.
          await partition();
          await waitFor(
            'a drain to start',
            async () => (await status())?.link.state === 'online',
            20_000,
          );
          await sleep(randomInt(0, 300));
          await kill9(agent);
          report.agentKills += 1;
          startAgent();
          await agentUp();
          break;
        }
        case 'partition':
          await partition();
          break;
        case 'reset':
          await agentOnline();
          proxy.reset();
          break;
        case 'kill-broker':
          await stopBroker();
          await sleep(randomInt(500, 2000));
          await startBroker();
          break;
        case 'kill-cloud':
          await kill9(cloud);
          await sleep(randomInt(200, 1500));
          cloud = startCloud();
          break;
        case 'disk-full': {
          if (mounted === undefined) break;
          const filler = path.join(mounted, 'filler');
          try {
            const fd = openSync(filler, 'w');
            const block = Buffer.alloc(65_536, 1);
            try {
              for (;;) writeSync(fd, block);
            } catch {
              // ENOSPC: full
            } finally {
              closeSync(fd);
            }
            await sleep(randomInt(1000, 3000));
          } finally {
            rmSync(filler, { force: true });
          }
          break;
        }
      }
      await sleep(randomInt(300, 1500));
    }
    report.cycles = cycle;

    // ---- settle and count ----------------------------------------------------------------
    stopClient = true;
    await client;
    proxy.resume();
    if ((await status()) === null) {
      await kill9(agent);
      startAgent();
    }
    await agentUp();
    await agentOnline();
    await waitFor('the backlog to drain', async () => (await status())?.queue.depth === 0, 120_000);
    report.acknowledged = acknowledged.size;
    const ledger = new Database(path.join(term, 'cloud', 'ledger.db'), { readonly: true });
    const entries = new Map(
      (
        ledger.prepare('SELECT key, entry FROM entries').all() as { key: string; entry: string }[]
      ).map((r) => [r.key, JSON.parse(r.entry) as { outcome?: string; voided?: boolean }]),
    );
    ledger.close();
    for (const key of acknowledged) {
      const entry = entries.get(key);
      if (entry === undefined || entry.outcome !== 'approved' || entry.voided === true)
        report.lost.push(key);
    }
    // Charged twice: a key the cloud APPLIED (decided and charged) more than once, across every
    // cloud core process of the run (its log), whatever its ledger says now.
    const applied = new Map<string, number>();
    for (const line of readFileSync(cloudLog, 'utf8').split('\n')) {
      if (!line.includes('cloud core applied a record')) continue;
      try {
        const fields = JSON.parse(line) as { idempotencyKey?: string; outcome?: string };
        if (fields.outcome === 'approved' && fields.idempotencyKey !== undefined)
          applied.set(fields.idempotencyKey, (applied.get(fields.idempotencyKey) ?? 0) + 1);
      } catch {
        // a non-JSON line of the simulator's own output
      }
    }
    report.chargedTwice = [...applied].filter(([, count]) => count > 1).map(([key]) => key);

    // ---- verify, then the damage cases on a stopped agent -------------------------------
    await kill9(agent);
    try {
      execFileSync(process.execPath, [cli, 'verify', '--config', configFile], { stdio: 'pipe' });
      report.verifyOk = true;
    } catch {
      report.verifyOk = false;
    }
    if (options.damage !== false) {
      const backup = path.join(dir, 'backup');
      mkdirSync(backup);
      const files = ['', '-wal', '-shm'].map((s) => `${dbPath}${s}`);
      const save = (): void => {
        for (const f of files)
          if (existsSync(f)) copyFileSync(f, path.join(backup, path.basename(f)));
      };
      const restore = (): void => {
        for (const f of files) {
          const b = path.join(backup, path.basename(f));
          if (existsSync(b)) copyFileSync(b, f);
          else rmSync(f, { force: true });
        }
        for (const name of readdirSync(dataDir))
          if (name.startsWith('damaged-')) rmSync(path.join(dataDir, name), { recursive: true });
      };
      // A WAL with payments in it: offline payments, then kill -9 (no checkpoint).
      startAgent();
      await agentUp();
      proxy.pause('drop');
      await waitFor('offline', async () => (await status())?.link.state === 'offline', 30_000);
      for (let i = 1; i <= 10; i++) {
        await fetch(`${api}/v1/payments`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'idempotency-key': `damage-${i}`,
          },
          body: JSON.stringify({ amount: 1000 + i * 10, currency: 'EUR' }),
        }).catch(() => undefined);
      }
      await kill9(agent);
      proxy.resume();
      save();
      const tryStart = async (): Promise<string> => {
        const proc = startAgent();
        const exited = await Promise.race([
          proc.exited.then(() => true),
          sleep(8000).then(() => false),
        ]);
        if (exited) {
          const text = readFileSync(path.join(dir, 'agent.out'), 'utf8');
          const codes = text.match(/POS2\d\d/g) ?? [];
          return `refused to start (${codes.at(-1) ?? 'no code'})`;
        }
        const answer = await fetch(`${api}/v1/payments`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'idempotency-key': `after-damage-${Date.now()}`,
          },
          body: JSON.stringify({ amount: 990, currency: 'EUR' }),
        })
          .then(
            async (r) =>
              `${r.status} ${((await r.json()) as { error?: { code: string } }).error?.code ?? ''}`,
          )
          .catch((e: unknown) => `no answer (${String(e)})`);
        await kill9(agent);
        return `started; POST /v1/payments → ${answer.trim()}`;
      };
      // Kept: the database is still where it was (never deleted or moved by the agent).
      const kept = (): boolean => existsSync(dbPath);
      const copied = (): boolean =>
        readdirSync(dataDir).some((name) => name.startsWith('damaged-'));
      const damageCase = async (name: DamageResult['case'], damage: () => void): Promise<void> => {
        restore();
        damage();
        // The exit of an agent that refuses to start is the expected outcome, not an unplanned one.
        refusalExpected = true;
        const outcome = await tryStart();
        refusalExpected = false;
        const refused =
          outcome.startsWith('refused') || / 503 /.test(` ${outcome.split('→ ')[1] ?? ''} `);
        let withCopy = `${outcome}${copied() ? '; a copy was put aside' : ''}`;
        if (name === 'page') {
          // Start-up does not read every page (it verifies from a checkpoint); doctor does.
          let doctorText = '';
          try {
            doctorText = execFileSync(process.execPath, [cli, 'doctor', '--config', configFile], {
              encoding: 'utf8',
              stdio: 'pipe',
            });
          } catch (error) {
            doctorText = String((error as { stdout?: string }).stdout ?? '');
          }
          withCopy +=
            /quick_check[^\n]*failed|not an SQLite database|SQLITE_CORRUPT|malformed/.test(
              doctorText,
            )
              ? '; pos-agent doctor reports the damage'
              : '; pos-agent doctor does NOT report it';
        }
        report.damage.push({ case: name, outcome: withCopy, refused, filesKept: kept() });
        out(`   damage ${name}: ${withCopy}; files kept: ${kept()}`);
      };
      const flip = (file: string, offset: number, count: number): void => {
        const bytes = readFileSync(file);
        for (let i = 0; i < count && offset + i < bytes.length; i++)
          bytes[offset + i] = (bytes[offset + i] ?? 0) ^ 0xa5;
        writeFileSync(file, bytes);
      };
      await damageCase('wal', () => {
        const wal = checkWal(`${dbPath}-wal`);
        if (wal.frames < 3) out(`   (the WAL has only ${wal.frames} frames)`);
        flip(`${dbPath}-wal`, 32 + (24 + wal.pageSize) + 24 + 200, 32);
      });
      await damageCase('page', () => {
        // Fold the WAL into the file first (as a clean stop does), then damage the events' pages.
        const db = new Database(dbPath);
        db.pragma('wal_checkpoint(TRUNCATE)');
        const pages = (
          db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'events'").get() as {
            rootpage: number;
          }
        ).rootpage;
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.close();
        // The whole root page of the events table after its 12-byte header: cell pointers and
        // cells (SQLite file format §1.6), whether it is a leaf or an interior page.
        flip(dbPath, (pages - 1) * pageSize + 12, pageSize - 12);
      });
      await damageCase('event', () => {
        const db = new Database(dbPath);
        db.exec('DROP TRIGGER IF EXISTS events_no_update');
        db.exec(
          `UPDATE events SET data = replace(data, '"amountMinor":1010', '"amountMinor":1') WHERE data LIKE '%"amountMinor":1010%'`,
        );
        db.close();
      });
      restore();
    }
    return report;
  } finally {
    report.seconds = Math.round((Date.now() - started) / 1000);
    for (const proc of [...procs]) {
      proc.planned = true;
      proc.child.kill('SIGKILL');
    }
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // keep cleaning up
      }
    }
    // The logs of the last run stay for a look after a failure.
    const last = path.join(tmpdir(), 'pos-chaos-last');
    rmSync(last, { recursive: true, force: true });
    mkdirSync(last, { recursive: true });
    for (const name of ['agent.log', 'agent.out', 'cloud.log', 'pinpad.log', 'broker.log'])
      if (existsSync(path.join(dir, name)))
        copyFileSync(path.join(dir, name), path.join(last, name));
    rmSync(dir, { recursive: true, force: true });
    rmSync(cli, { force: true });
  }
}

/** The figures as lines for a terminal. */
export function formatReport(r: ChaosReport): string {
  const sorted = [...r.noticeMs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return [
    `chaos: ${r.cycles} cycles in ${r.seconds} s (broker: ${r.broker})`,
    `  faults: ${Object.entries(r.faults)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `  agent kills: ${r.agentKills}; partitions: ${r.partitions}; disk full: ${r.diskFull}`,
    `  time to notice a partition: ${sorted.length === 0 ? 'n/a' : `median ${median} ms, max ${sorted.at(-1)} ms (${sorted.length} noticed of ${r.partitions})`}`,
    `  payments: posted ${r.posted}, acknowledged ${r.acknowledged}, declined ${r.declined} ${JSON.stringify(r.declinedBy)}, refused 503 ${r.refused}, unanswered ${r.unanswered}${Object.keys(r.otherAnswers).length > 0 ? `, other: ${JSON.stringify(r.otherAnswers)}` : ''}`,
    `  lost: ${r.lost.length}${r.lost.length > 0 ? ` (${r.lost.slice(0, 10).join(', ')})` : ''}`,
    `  charged twice: ${r.chargedTwice.length}${r.chargedTwice.length > 0 ? ` (${r.chargedTwice.slice(0, 10).join(', ')})` : ''}`,
    `  unplanned process exits: ${r.unplannedExits.length}${r.unplannedExits.length > 0 ? ` (${r.unplannedExits.join('; ')})` : ''}`,
    `  pos-agent verify after the run: ${r.verifyOk === undefined ? 'not run' : r.verifyOk ? 'passed' : 'FAILED'}`,
    ...r.damage.map(
      (d) =>
        `  damage ${d.case}: ${d.outcome}; payments refused: ${d.refused ? 'yes' : 'NO'}; files kept: ${d.filesKept ? 'yes' : 'NO'}`,
    ),
  ].join('\n');
}
