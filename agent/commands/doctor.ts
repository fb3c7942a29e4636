/**
 * `pos-agent doctor [--config FILE] [--json]`: one command that says what is wrong with a
 * terminal and how to fix it (issues 5, 12). Every check runs, even after a failure, and the
 * output ends with a numbered list of problems, each with its code and fix; the exit status is 1
 * when there is at least one problem (warnings alone exit 0). Read-only: the database is opened
 * read-only and never created (issue 12).
 *
 * | check | code when not ok |
 * |-------|------------------|
 * | config | POS501 the file is missing, not JSON or fails the schema |
 * | file modes | POS508 the config or a key/TLS file is readable by group/others, the keys dir is not 0700 |
 * | keys | POS502 a key file is missing or of the wrong length |
 * | wal | POS230 the WAL has a damaged frame with committed transactions after it (checked before the database is opened, which is then left closed) |
 * | database | POS201 no database yet (warning) or cannot open, POS203 newer than this agent, POS204 not a pos-agent file, POS208 needs the agent's migration, POS509 damaged (header, quick_check), POS220 hash chain, POS221 projection, POS510 offline limits file, POS511 dead records (warning) |
 * | disk | POS512 free space in the data directory below max(100 MiB, 4 × database size) |
 * | clock | POS513 before the agent's release or after 2100 |
 * | broker | POS514 plaintext (warning), POS301 unreachable, POS515 TLS handshake fails, POS502 a TLS file unreadable, POS516 a certificate expired / not yet valid / expiring within 30 days (warning) |
 * | devices | per configured device (`pinPad`, `cardReaders[i]`): POS101 not present or cannot be opened, tcp:// unreachable; POS104 (warning) a hid:// reader while USB HID support (node-hid, libusb) is missing, with the install command. Each ok line names the device the entry matched (`device.matched`) |
 *
 * `--json` prints one object, version 1 of a stable shape ({@link DoctorReport}):
 *
 * ```json
 * { "version": 1, "config": "/etc/pos-agent/config.json", "configSource": "default",
 *   "ok": false, "problems": 1, "warnings": 1,
 *   "findings": [
 *     { "check": "config", "level": "ok", "message": "… is valid (device store-0042-lane-3)" },
 *     { "check": "devices", "level": "ok", "message": "…",
 *       "device": { "entry": "pinPad", "path": "/dev/serial/by-id/usb-…",
 *                   "matched": { "systemPath": "/dev/ttyACM0", "usbId": "0b00:0064", "name": "Ingenico PIN pad" } } },
 *     { "check": "broker", "level": "problem", "code": "POS301", "message": "…", "fix": "…" } ] }
 * ```
 *
 * Nothing secret is printed: key files are named, never shown.
 */
import { X509Certificate } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  statfsSync,
} from 'node:fs';
import { connect as netConnect } from 'node:net';
import path from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { isAgentError, type ErrorCode } from '../../common/agent-error.js';
import {
  discoverDevices,
  type DiscoveredDevice,
  type DiscoveryReport,
} from '../../drivers/discovery/discover.js';
import { parseHidPath } from '../../drivers/transport/hid-transport.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { checkWal, type WalReport } from '../../store-forward/wal-check.js';
import { OFFLINE_LIMITS_FILE } from '../cloud-commands.js';
import { type AgentConfig, loadConfig } from '../config.js';
import { type ConfigPath } from '../config-path.js';
import { loadTerminalKeys, TERMINAL_KEY_FILES } from '../keys.js';
import { walDamageFix } from '../storage-guard.js';

/** A configured device and what it was matched to, on `devices` findings. */
export interface DoctorDevice {
  /** The config entry: `pinPad` or `cardReaders[0]`, `cardReaders[1]`, … */
  entry: string;
  /** The reader's `name` (card readers only). */
  name?: string;
  /** The configured `path`. */
  path: string;
  /** The device found for it (`pos-agent devices` lists the same), when one was found. */
  matched?: { systemPath: string; usbId?: string; name?: string };
}

/** One finding. */
export interface DoctorFinding {
  /** `config`, `file modes`, `keys`, `database`, `disk`, `clock`, `broker` or `devices`. */
  check: string;
  level: 'ok' | 'warn' | 'problem';
  /** The error code (POS1xx–POS5xx, see the table above); on every warn and problem. */
  code?: ErrorCode;
  /** What was found (no secrets). */
  message: string;
  /** How to fix it (on every warn and problem). */
  fix?: string;
  /** For `devices` findings: the config entry and the device it matched. */
  device?: DoctorDevice;
}

/** What `pos-agent doctor --json` prints (version 1; fields are only ever added). */
export interface DoctorReport {
  version: 1;
  /** The config file checked. */
  config: string;
  /** Where its path came from: `flag`, `env` (POS_AGENT_CONFIG) or `default`. */
  configSource: ConfigPath['source'];
  /** True when there is no problem (warnings allowed); the exit status is 0 exactly then. */
  ok: boolean;
  /** Number of findings of level `problem`. */
  problems: number;
  /** Number of findings of level `warn`. */
  warnings: number;
  findings: DoctorFinding[];
}

/** Options of {@link doctor}. */
export interface DoctorOptions {
  /** Now, ms since the epoch (injected clock). Default Date.now(). */
  now?: number;
  /** Per network check, ms. Default 3000. */
  timeoutMs?: number;
  /** Least free bytes in the data directory. Default 100 MiB. */
  minFreeBytes?: number;
  /** Lists the devices (default: {@link discoverDevices}); tests pass a fake HID listing. */
  discover?: () => Promise<DiscoveryReport>;
}

const DAY_MS = 86_400_000;
/** No terminal clock can be right before this agent was written. */
const EARLIEST_SANE = Date.parse('2026-01-01T00:00:00Z');

/**
 * Runs every check on the terminal configured by `configFile`.
 *
 * @returns the findings in check order.
 */
export async function doctor(
  configFile: string,
  options: DoctorOptions = {},
): Promise<DoctorFinding[]> {
  const now = options.now ?? Date.now();
  const timeoutMs = options.timeoutMs ?? 3000;
  const findings: DoctorFinding[] = [];
  const add = (f: DoctorFinding): void => void findings.push(f);

  let config: AgentConfig | undefined;
  try {
    config = loadConfig(configFile);
    add({
      check: 'config',
      level: 'ok',
      message: `${configFile} is valid (device ${config.deviceId})`,
    });
  } catch (error) {
    add({
      check: 'config',
      level: 'problem',
      code: 'POS501',
      message: isAgentError(error) ? error.reason : String(error),
      fix: 'correct the config file (every problem is listed above), or provision again with "pos-agent provision"',
    });
  }

  // File modes: secrets readable only by the agent's user.
  const private0600 = (file: string, what: string): void => {
    if (!existsSync(file)) return;
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) !== 0)
      add({
        check: 'file modes',
        level: 'problem',
        code: 'POS508',
        message: `${what} ${file} has mode ${mode.toString(8).padStart(4, '0')}; group or others can read it`,
        fix: `chmod 600 ${file}`,
      });
  };
  private0600(configFile, 'config file');
  if (config !== undefined) {
    if (existsSync(config.keysDir)) {
      const mode = statSync(config.keysDir).mode & 0o777;
      if (mode !== 0o700)
        add({
          check: 'file modes',
          level: 'problem',
          code: 'POS508',
          message: `keys directory ${config.keysDir} has mode ${mode.toString(8).padStart(4, '0')}, expected 0700`,
          fix: `chmod 700 ${config.keysDir}`,
        });
    }
    for (const file of TERMINAL_KEY_FILES) private0600(path.join(config.keysDir, file), 'key file');
    if (config.broker.keyFile !== undefined) private0600(config.broker.keyFile, 'TLS key file');
    if (!findings.some((f) => f.check === 'file modes'))
      add({
        check: 'file modes',
        level: 'ok',
        message: 'config, keys directory and key files are private (0600/0700)',
      });

    try {
      loadTerminalKeys(config.keysDir);
      add({ check: 'keys', level: 'ok', message: `key files in ${config.keysDir} are complete` });
    } catch (error) {
      add({
        check: 'keys',
        level: 'problem',
        code: 'POS502',
        message: isAgentError(error) ? (error.reason.split('\nFix:')[0] ?? '') : String(error),
        fix: 'provision the terminal again ("pos-agent provision --force") or restore the key files',
      });
    }
    // Opening a database whose WAL is damaged would drop the payments after the damage for good.
    if (checkWalBeforeOpen(config, add)) checkDatabase(config, add);
    const overrides = path.join(config.dataDir, OFFLINE_LIMITS_FILE);
    if (existsSync(overrides)) {
      try {
        JSON.parse(readFileSync(overrides, 'utf8'));
        private0600(overrides, 'offline limits file');
      } catch {
        add({
          check: 'database',
          level: 'warn',
          code: 'POS510',
          message: `${overrides} (offline limits set by the cloud) is not JSON; the config's limits apply`,
          fix: `delete ${overrides} and ask the cloud to send set_offline_limits again`,
        });
      }
    }
    checkDisk(config, options.minFreeBytes ?? 100 * 1024 * 1024, add);
  }

  if (now < EARLIEST_SANE || now > Date.parse('2100-01-01T00:00:00Z'))
    add({
      check: 'clock',
      level: 'problem',
      code: 'POS513',
      message: `the clock says ${new Date(now).toISOString()}, which cannot be right`,
      fix: 'set the time (enable NTP: timedatectl set-ntp true); expiry checks of commands and certificates depend on it',
    });
  else
    add({ check: 'clock', level: 'ok', message: `the clock says ${new Date(now).toISOString()}` });

  if (config !== undefined) {
    await checkBroker(config, now, timeoutMs, add);
    await checkDevices(config, timeoutMs, options.discover ?? (() => discoverDevices()), add);
  }
  return findings;
}

/**
 * The WAL check (issue 10, store-forward/wal-check.ts), before anything opens the database.
 *
 * @returns false when the WAL is damaged: the database must then not be opened at all.
 */
function checkWalBeforeOpen(config: AgentConfig, add: (f: DoctorFinding) => void): boolean {
  const dbPath = path.join(config.dataDir, 'agent.db');
  let report: WalReport;
  try {
    report = checkWal(`${dbPath}-wal`);
  } catch (error) {
    add({
      check: 'wal',
      level: 'problem',
      message: `cannot read ${dbPath}-wal: ${(error as Error).message}`,
      fix: 'check the file permissions and the storage for I/O errors; do not delete the file',
    });
    return false;
  }
  if (report.condition === 'damaged') {
    const affected =
      report.firstBadFrame === 0
        ? `every transaction in it (${report.transactionsAfterBad} committed)`
        : `${report.transactionsAfterBad} committed transaction(s) in ${report.verifiedFramesAfterBad} frame(s) after frame ${report.firstBadFrame}`;
    add({
      check: 'wal',
      level: 'problem',
      message: `${report.summary}. Affected: ${affected}; each may be an answered payment or a step of one (${report.replayableTransactions} transaction(s) before the damage are intact). The database was not opened`,
      fix: walDamageFix(dbPath),
    });
    return false;
  }
  add({
    check: 'wal',
    level: report.condition === 'torn_tail' ? 'warn' : 'ok',
    message:
      report.condition === 'torn_tail'
        ? `${report.summary}; SQLite ignores that uncommitted tail`
        : report.summary,
    ...(report.condition === 'torn_tail'
      ? { fix: 'nothing committed was lost; the agent starts normally' }
      : {}),
  });
  return true;
}

function checkDatabase(config: AgentConfig, add: (f: DoctorFinding) => void): void {
  const file = path.join(config.dataDir, 'agent.db');
  if (!existsSync(file)) {
    add({
      check: 'database',
      level: 'warn',
      code: 'POS201',
      message: `no database yet at ${file}; doctor does not create one`,
      fix: 'start the agent once (systemctl start pos-agent), which creates and migrates it; if the agent has run before, check dataDir in the config',
    });
    return;
  }
  const header = Buffer.alloc(16);
  try {
    const fd = openSync(file, 'r');
    try {
      readFileSync(fd).copy(header, 0, 0, 16);
    } finally {
      closeSync(fd);
    }
  } catch {
    // reported by the open below
  }
  if (header.toString('latin1') !== 'SQLite format 3\0') {
    add({
      check: 'database',
      level: 'problem',
      code: 'POS509',
      message: `${file} is not an SQLite database (its header is damaged)`,
      fix: `stop the agent, move ${file} aside for analysis and restore it from backup; unsent payments in it must be recovered before a new database is started`,
    });
    return;
  }
  let store: PaymentStore | undefined;
  try {
    store = PaymentStore.open({ path: file, readonly: true });
    const quick = store.quickCheck();
    if (!quick.ok)
      add({
        check: 'database',
        level: 'problem',
        code: 'POS509',
        message: `SQLite quick_check of ${file} failed: ${quick.problems.slice(0, 3).join('; ')}`,
        fix: `stop the agent, move ${file} aside for analysis and restore it from backup; unsent payments in it must be recovered before a new database is started`,
      });
    const chain = store.verifyChain();
    const projection = store.checkProjection();
    const stats = store.queueStats();
    if (!chain.ok)
      add({
        check: 'database',
        level: 'problem',
        code: 'POS220',
        message: `the event hash chain of ${file} does not verify: ${chain.problems.slice(0, 3).join('; ')}`,
        fix: 'the event log was edited or damaged: keep the file for analysis, and call support before taking payments',
      });
    if (!projection.ok)
      add({
        check: 'database',
        level: 'problem',
        code: 'POS221',
        message: `the payments table of ${file} differs from its events: ${projection.problems.slice(0, 3).join('; ')}`,
        fix: 'stop the agent and rebuild the projection from the events (support procedure)',
      });
    if (quick.ok && chain.ok && projection.ok)
      add({
        check: 'database',
        level: 'ok',
        message: `${file}: quick_check, hash chain of ${chain.events} events and projection verify; ${stats.depth} to forward, ${stats.dead} dead`,
      });
    if (stats.dead > 0)
      add({
        check: 'database',
        level: 'warn',
        code: 'POS511',
        message: `${stats.dead} record(s) are dead (refused by the cloud)`,
        fix: 'see them with "pos-agent queue" and, once the cause is fixed, "pos-agent queue --retry"',
      });
  } catch (error) {
    const reason = isAgentError(error) ? error.reason : (error as Error).message;
    const named = isAgentError(error) && /fix: /.test(reason);
    add({
      check: 'database',
      level: 'problem',
      code: isAgentError(error) ? error.code : 'POS201',
      message: `${file} cannot be opened or read: ${named ? (reason.split('; fix: ')[0] ?? reason) : reason}`,
      fix: named
        ? (reason.split('; fix: ')[1] ?? reason)
        : `stop the agent, move ${file} aside for analysis and restore it from backup`,
    });
  } finally {
    store?.close();
  }
}

function checkDisk(config: AgentConfig, minFree: number, add: (f: DoctorFinding) => void): void {
  let dir = config.dataDir;
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  try {
    const fs = statfsSync(dir);
    const free = fs.bavail * fs.bsize;
    const db = path.join(config.dataDir, 'agent.db');
    const dbBytes = existsSync(db) ? statSync(db).size : 0;
    const need = Math.max(minFree, 4 * dbBytes);
    const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`;
    if (free < need)
      add({
        check: 'disk',
        level: 'problem',
        code: 'POS512',
        message: `${mib(free)} free in ${dir}; the store needs at least ${mib(need)} (4 × the database, at least ${mib(minFree)})`,
        fix: 'free disk space (old logs, packages) so that payments can be stored while offline',
      });
    else
      add({
        check: 'disk',
        level: 'ok',
        message: `${mib(free)} free in ${dir} (needs ${mib(need)})`,
      });
  } catch (error) {
    add({
      check: 'disk',
      level: 'warn',
      code: 'POS512',
      message: `cannot measure free space in ${dir}: ${(error as Error).message}`,
      fix: 'check the data directory by hand (df -h)',
    });
  }
}

function certExpiry(
  what: string,
  validFrom: string,
  validTo: string,
  subject: string,
  now: number,
  add: (f: DoctorFinding) => void,
): void {
  const to = Date.parse(validTo);
  const from = Date.parse(validFrom);
  const days = Math.floor((to - now) / DAY_MS);
  if (to <= now)
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS516',
      message: `${what} (${subject}) expired on ${new Date(to).toISOString()}`,
      fix:
        what === 'client certificate'
          ? 'get a new client certificate from the cloud team and provision again (pos-agent provision --force), or renew it with a new CSR'
          : 'the broker operator must renew the broker certificate',
    });
  else if (from > now)
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS516',
      message: `${what} (${subject}) is not valid before ${new Date(from).toISOString()}`,
      fix: 'the terminal clock is probably behind: enable NTP (timedatectl set-ntp true)',
    });
  else if (days < 30)
    add({
      check: 'broker',
      level: 'warn',
      code: 'POS516',
      message: `${what} (${subject}) expires in ${days} day(s), on ${new Date(to).toISOString()}`,
      fix:
        what === 'client certificate'
          ? 'renew the client certificate before it expires'
          : 'ask the broker operator to renew',
    });
  else
    add({
      check: 'broker',
      level: 'ok',
      message: `${what} ${subject}, valid until ${new Date(to).toISOString()}`,
    });
}

async function checkBroker(
  config: AgentConfig,
  now: number,
  timeoutMs: number,
  add: (f: DoctorFinding) => void,
): Promise<void> {
  const url = new URL(config.broker.url);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const tls = url.protocol === 'mqtts:';
  const port = Number(url.port || (tls ? 8883 : 1883));
  if (!tls) {
    add({
      check: 'broker',
      level: 'warn',
      code: 'POS514',
      message: `plaintext ${config.broker.url} (development setup)`,
      fix: 'production terminals use mqtts:// with mutual TLS (pos-agent provision)',
    });
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = netConnect({ host, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(new Error(`no answer within ${timeoutMs} ms`));
      });
      socket.once('error', resolve);
    });
    if (error !== undefined)
      add({
        check: 'broker',
        level: 'problem',
        code: 'POS301',
        message: `broker ${config.broker.url} unreachable: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
        fix: 'check the network, the broker URL in the config, and that the broker runs',
      });
    else
      add({
        check: 'broker',
        level: 'ok',
        message: `broker ${config.broker.url} accepts connections`,
      });
    return;
  }
  let ca: Buffer, cert: Buffer, key: Buffer;
  try {
    ca = readFileSync(config.broker.caFile as string);
    cert = readFileSync(config.broker.certFile as string);
    key = readFileSync(config.broker.keyFile as string);
  } catch (error) {
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS502',
      message: `a TLS file cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'} (${(error as NodeJS.ErrnoException).path ?? ''})`,
      fix: 'provision again with --ca, --cert and --key, or correct the paths in the config',
    });
    return;
  }
  try {
    const own = new X509Certificate(cert);
    certExpiry(
      'client certificate',
      own.validFrom,
      own.validTo,
      own.subject.replace(/\n/g, ', '),
      now,
      add,
    );
  } catch {
    add({
      check: 'broker',
      level: 'problem',
      code: 'POS502',
      message: `${config.broker.certFile ?? ''} is not a PEM certificate`,
      fix: 'provision again with the right --cert',
    });
  }
  const result = await new Promise<{ peer?: PeerCertificate; error?: Error }>((resolve) => {
    const servername = /^[\d.]+$|:/.test(host) ? undefined : host;
    const socket = tlsConnect({
      host,
      port,
      ca,
      cert,
      key,
      ...(servername !== undefined ? { servername } : {}),
      timeout: timeoutMs,
    });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      socket.destroy();
      resolve({ peer });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve({ error: new Error(`no answer within ${timeoutMs} ms`) });
    });
    socket.once('error', (error) => resolve({ error }));
  });
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code ?? '';
    const network = [
      'ECONNREFUSED',
      'ENOTFOUND',
      'EHOSTUNREACH',
      'ETIMEDOUT',
      'ECONNRESET',
      '',
    ].includes(code);
    add({
      check: 'broker',
      level: 'problem',
      code: network ? 'POS301' : 'POS515',
      message: `${network ? 'broker unreachable' : 'TLS handshake failed'} at ${config.broker.url}: ${code || result.error.message}`,
      fix: network
        ? 'check the network, the broker URL in the config, and that the broker runs'
        : 'the broker certificate must be issued by the pinned CA (broker.caFile) for this host name; check both with the cloud team',
    });
    return;
  }
  const peer = result.peer;
  if (peer !== undefined && peer.valid_to !== undefined) {
    const subject = Object.entries(peer.subject ?? {})
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ');
    certExpiry('broker certificate', peer.valid_from, peer.valid_to, subject, now, add);
  }
  add({
    check: 'broker',
    level: 'ok',
    message: `TLS handshake with ${config.broker.url} succeeded (mutual TLS, pinned CA)`,
  });
}

/** Connects to `tcp://host:port`; the error when it fails within `timeoutMs`. */
function tcpProbe(target: string, timeoutMs: number): Promise<Error | undefined> {
  const url = new URL(target);
  return new Promise<Error | undefined>((resolve) => {
    const socket = netConnect({ host: url.hostname, port: Number(url.port), timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(new Error('timeout'));
    });
    socket.once('error', resolve);
  });
}

const matchOf = (d: DiscoveredDevice): NonNullable<DoctorDevice['matched']> => ({
  systemPath: d.systemPath,
  ...(d.usbId !== undefined ? { usbId: d.usbId } : {}),
  ...(d.known !== undefined ? { name: d.known.name } : {}),
});

const describeMatch = (m: DoctorDevice['matched']): string =>
  m === undefined
    ? ''
    : ` (matched ${m.name ?? 'an unrecognised device'}${m.usbId !== undefined ? ` [${m.usbId}]` : ''} at ${m.systemPath})`;

/**
 * Checks the PIN pad and every configured card reader, and names the device each entry matched
 * in the discovery listing (the same one `pos-agent devices` prints).
 */
async function checkDevices(
  config: AgentConfig,
  timeoutMs: number,
  discover: () => Promise<DiscoveryReport>,
  add: (f: DoctorFinding) => void,
): Promise<void> {
  const entries: Array<{ entry: string; what: string; path: string; name?: string }> = [
    { entry: 'pinPad', what: 'PIN pad', path: config.pinPad.path },
    ...config.cardReaders.map((r, i) => ({
      entry: `cardReaders[${i}]`,
      what: `card reader "${r.name}" (${r.kind})`,
      path: r.path,
      name: r.name,
    })),
  ];
  const needsListing = entries.some((e) => e.path.startsWith('/') || e.path.startsWith('hid://'));
  let report: DiscoveryReport | undefined;
  if (needsListing) {
    try {
      report = await discover();
    } catch {
      report = undefined;
    }
  }
  for (const e of entries) {
    const device: DoctorDevice = {
      entry: e.entry,
      ...(e.name !== undefined ? { name: e.name } : {}),
      path: e.path,
    };
    const finding = (f: Omit<DoctorFinding, 'check' | 'device'>): void =>
      add({ check: 'devices', ...f, device });
    const defaultNote =
      e.entry === 'pinPad' && e.path === '/dev/ttyUSB0'
        ? ' (the provisioning default: no --pinpad was given)'
        : '';
    if (e.path.startsWith('mock://')) {
      finding({ level: 'ok', message: `${e.what} ${e.path} is the in-process simulator` });
      continue;
    }
    if (e.path.startsWith('tcp://')) {
      const error = await tcpProbe(e.path, timeoutMs);
      if (error === undefined)
        finding({ level: 'ok', message: `${e.what} ${e.path} accepts connections` });
      else
        finding({
          level: 'problem',
          code: 'POS101',
          message: `${e.what} ${e.path} unreachable: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
          fix: `check that the serial server (ser2net) or simulator runs, and the address in ${e.entry}.path`,
        });
      continue;
    }
    if (e.path.startsWith('hid://')) {
      if (report === undefined || report.hidError !== undefined) {
        finding({
          level: 'warn',
          code: report?.hidError?.code ?? 'POS104',
          message: `${e.what} ${e.path} cannot be checked: USB HID support is unavailable${report?.hidError !== undefined ? ` (${report.hidError.reason})` : ''}; the agent runs without this reader`,
          fix: 'install the USB HID support: apt-get install libusb-1.0-0 libudev1 (the Debian package depends on them), and node-hid in the agent directory when it is missing; then run doctor again',
        });
        continue;
      }
      const want = parseHidPath(e.path);
      const hex = (n: number): string => n.toString(16).padStart(4, '0');
      const usbId = `${hex(want.vendorId)}:${hex(want.productId)}`;
      const found = report.devices.find(
        (d) =>
          d.bus === 'hid' &&
          d.usbId === usbId &&
          (want.serialNumber === undefined || d.configPath.endsWith(`/${want.serialNumber}`)),
      );
      if (found === undefined)
        finding({
          level: 'problem',
          code: 'POS101',
          message: `${e.what} ${e.path} is not plugged in (no HID device ${usbId}${want.serialNumber !== undefined ? ` with serial ${want.serialNumber}` : ''})`,
          fix: 'plug the reader in (or replug it); "pos-agent devices" lists the hid:// paths present',
        });
      else {
        device.matched = matchOf(found);
        const wrongKind =
          found.known !== undefined &&
          (found.known.role === 'hid-msr' || found.known.role === 'wedge') &&
          found.known.role !== config.cardReaders.find((r) => r.name === e.name)?.kind;
        finding({
          level: wrongKind ? 'warn' : 'ok',
          ...(wrongKind
            ? {
                code: 'POS145',
                fix: `set ${e.entry}.kind to "${found.known?.role ?? ''}" (${found.known?.quirk ?? ''})`,
              }
            : {}),
          message: `${e.what} ${e.path} is present${describeMatch(device.matched)}${wrongKind ? `, but it reports itself as ${found.known?.role ?? ''}` : ''}`,
        });
      }
      continue;
    }
    let real = e.path;
    try {
      real = realpathSync(e.path);
    } catch {
      // not present: the open below says so
    }
    const listed = report?.devices.find(
      (d) => d.bus === 'serial' && (d.systemPath === real || d.configPath === e.path),
    );
    if (listed !== undefined) device.matched = matchOf(listed);
    try {
      const fd = openSync(e.path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
      closeSync(fd);
      finding({
        level: 'ok',
        message: `${e.what} ${e.path}${defaultNote} is present and can be opened${describeMatch(device.matched ?? { systemPath: real })}`,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      finding({
        level: 'problem',
        code: 'POS101',
        message: `${e.what} ${e.path}${defaultNote} ${code === 'ENOENT' ? 'is not present' : `cannot be opened (${code})`}`,
        fix:
          code === 'EACCES'
            ? "add the agent's user to the dialout group (usermod -aG dialout pos-agent; the Debian package does this), or install the package's udev rules"
            : 'plug the device in, and configure a stable path (/dev/pos/… from the package\'s udev rules, or /dev/serial/by-id/…; "pos-agent devices" lists them)',
      });
    }
  }
}

/** The report: every finding, then the numbered problems and warnings with their codes and fixes. */
export function formatFindings(findings: DoctorFinding[]): string {
  const lines = findings.map(
    (f) =>
      `${f.level === 'ok' ? ' ok ' : f.level === 'warn' ? 'warn' : 'FAIL'}  ${f.check.padEnd(10)} ${f.message}`,
  );
  const problems = findings.filter((f) => f.level === 'problem');
  const warnings = findings.filter((f) => f.level === 'warn');
  lines.push('');
  if (problems.length === 0) lines.push('no problems found');
  else {
    lines.push(`${problems.length} problem${problems.length === 1 ? '' : 's'}:`);
    problems.forEach((f, i) =>
      lines.push(
        `  ${i + 1}. ${f.code ?? ''} [${f.check}] ${f.message}`,
        `     fix: ${f.fix ?? ''}`,
      ),
    );
  }
  if (warnings.length > 0) {
    lines.push(`${warnings.length} warning${warnings.length === 1 ? '' : 's'}:`);
    warnings.forEach((f, i) =>
      lines.push(
        `  ${i + 1}. ${f.code ?? ''} [${f.check}] ${f.message}`,
        `     fix: ${f.fix ?? ''}`,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The `--json` document: see {@link DoctorReport}. */
export function doctorReport(configPath: ConfigPath, findings: DoctorFinding[]): DoctorReport {
  const problems = findings.filter((f) => f.level === 'problem').length;
  return {
    version: 1,
    config: configPath.file,
    configSource: configPath.source,
    ok: problems === 0,
    problems,
    warnings: findings.filter((f) => f.level === 'warn').length,
    findings,
  };
}

/**
 * The `pos-agent doctor` action.
 *
 * @param configPath — the config file and where its path came from (agent/config-path.ts); a
 *   plain string is taken as given with `--config`.
 * @param options.json — print the {@link DoctorReport} as JSON instead of text.
 * @returns the exit status: 0 healthy (warnings allowed), 1 at least one problem.
 */
export async function runDoctor(
  configPath: ConfigPath | string,
  out: NodeJS.WritableStream,
  options: DoctorOptions & { json?: boolean } = {},
): Promise<number> {
  const resolved: ConfigPath =
    typeof configPath === 'string' ? { file: configPath, source: 'flag' } : configPath;
  const findings = await doctor(resolved.file, options);
  if (resolved.source !== 'flag') {
    const first = findings[0];
    if (first !== undefined)
      first.message += ` (${resolved.source === 'env' ? 'from POS_AGENT_CONFIG' : 'the default path'})`;
  }
  const report = doctorReport(resolved, findings);
  out.write(
    options.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatFindings(findings),
  );
  return report.ok ? 0 : 1;
}
