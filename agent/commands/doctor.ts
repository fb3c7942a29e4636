/**
 * `pos-agent doctor`: one command that says what is wrong with a terminal and how to fix it
 * (issue 5). Every check runs, even after a failure, and the output ends with a numbered list of
 * problems, each with its fix; the exit status is 1 when there is at least one problem (warnings
 * alone exit 0).
 *
 * | check | problem when |
 * |-------|--------------|
 * | config | the file is missing, not JSON or fails the schema (POS501) |
 * | file modes | the config or a key/TLS file is readable by group/others, the keys dir is not 0700 |
 * | keys | a key file is missing or of the wrong length (POS502) |
 * | wal | the WAL has a damaged frame with committed transactions after it (checked before opening) |
 * | database | not an SQLite file, cannot be opened, quick_check, hash chain or projection check fails |
 * | disk | free space in the data directory below max(100 MiB, 4 × database size) |
 * | clock | before the agent's release or after 2100, or outside a certificate's validity |
 * | broker | TCP unreachable, TLS handshake fails; warns when a certificate expires within 30 days |
 * | devices | the PIN pad's /dev path is missing or cannot be opened; tcp:// unreachable |
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
  statSync,
  statfsSync,
} from 'node:fs';
import { connect as netConnect } from 'node:net';
import path from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { isAgentError } from '../../common/agent-error.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { checkWal, type WalReport } from '../../store-forward/wal-check.js';
import { OFFLINE_LIMITS_FILE } from '../cloud-commands.js';
import { type AgentConfig, loadConfig } from '../config.js';
import { loadTerminalKeys, TERMINAL_KEY_FILES } from '../keys.js';
import { walDamageFix } from '../storage-guard.js';

/** One finding. */
export interface DoctorFinding {
  check: string;
  level: 'ok' | 'warn' | 'problem';
  /** What was found (no secrets). */
  message: string;
  /** How to fix it (for warn and problem). */
  fix?: string;
}

/** Options of {@link doctor}. */
export interface DoctorOptions {
  /** Now, ms since the epoch (injected clock). Default Date.now(). */
  now?: number;
  /** Per network check, ms. Default 3000. */
  timeoutMs?: number;
  /** Least free bytes in the data directory. Default 100 MiB. */
  minFreeBytes?: number;
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
      message: `the clock says ${new Date(now).toISOString()}, which cannot be right`,
      fix: 'set the time (enable NTP: timedatectl set-ntp true); expiry checks of commands and certificates depend on it',
    });
  else
    add({ check: 'clock', level: 'ok', message: `the clock says ${new Date(now).toISOString()}` });

  if (config !== undefined) {
    await checkBroker(config, now, timeoutMs, add);
    await checkPinPad(config, timeoutMs, add);
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
      level: 'ok',
      message: `no database yet at ${file} (created at first start)`,
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
      message: `${file} is not an SQLite database (its header is damaged)`,
      fix: `stop the agent, move ${file} aside for analysis and restore it from backup; unsent payments in it must be recovered before a new database is started`,
    });
    return;
  }
  let store: PaymentStore | undefined;
  try {
    store = PaymentStore.open({ path: file });
    const quick = store.quickCheck();
    if (!quick.ok)
      add({
        check: 'database',
        level: 'problem',
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
        message: `the event hash chain of ${file} does not verify: ${chain.problems.slice(0, 3).join('; ')}`,
        fix: 'the event log was edited or damaged: keep the file for analysis, and call support before taking payments',
      });
    if (!projection.ok)
      add({
        check: 'database',
        level: 'problem',
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
        message: `${stats.dead} record(s) are dead (refused by the cloud)`,
        fix: 'see them with "pos-agent queue" and retry after the cause is fixed',
      });
  } catch (error) {
    add({
      check: 'database',
      level: 'problem',
      message: `${file} cannot be opened or read: ${isAgentError(error) ? error.reason : (error as Error).message}`,
      fix: `stop the agent, move ${file} aside for analysis and restore it from backup`,
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
      message: `${what} (${subject}) is not valid before ${new Date(from).toISOString()}`,
      fix: 'the terminal clock is probably behind: enable NTP (timedatectl set-ntp true)',
    });
  else if (days < 30)
    add({
      check: 'broker',
      level: 'warn',
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

async function checkPinPad(
  config: AgentConfig,
  timeoutMs: number,
  add: (f: DoctorFinding) => void,
): Promise<void> {
  const p = config.pinPad.path;
  if (p.startsWith('mock://')) {
    add({ check: 'devices', level: 'ok', message: `PIN pad ${p} is the in-process simulator` });
    return;
  }
  if (p.startsWith('tcp://')) {
    const url = new URL(p);
    const error = await new Promise<Error | undefined>((resolve) => {
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
    if (error === undefined)
      add({ check: 'devices', level: 'ok', message: `PIN pad ${p} accepts connections` });
    else
      add({
        check: 'devices',
        level: 'problem',
        message: `PIN pad ${p} unreachable: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
        fix: 'check that the serial server (ser2net) runs and the address in pinPad.path',
      });
    return;
  }
  try {
    const fd = openSync(p, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    closeSync(fd);
    add({ check: 'devices', level: 'ok', message: `PIN pad ${p} is present and can be opened` });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    add({
      check: 'devices',
      level: 'problem',
      message: `PIN pad ${p} ${code === 'ENOENT' ? 'is not present' : `cannot be opened (${code})`}`,
      fix:
        code === 'EACCES'
          ? "add the agent's user to the dialout group (usermod -aG dialout USER)"
          : 'plug the PIN pad in, and use a stable path (/dev/serial/by-id/…; "pos-agent devices" lists them)',
    });
  }
}

/** The report: every finding, then the numbered problems and warnings with their fixes. */
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
      lines.push(`  ${i + 1}. [${f.check}] ${f.message}`, `     fix: ${f.fix ?? ''}`),
    );
  }
  if (warnings.length > 0) {
    lines.push(`${warnings.length} warning${warnings.length === 1 ? '' : 's'}:`);
    warnings.forEach((f, i) =>
      lines.push(`  ${i + 1}. [${f.check}] ${f.message}`, `     fix: ${f.fix ?? ''}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The `pos-agent doctor` action.
 *
 * @returns the exit status: 0 healthy (warnings allowed), 1 at least one problem.
 */
export async function runDoctor(
  configFile: string,
  out: NodeJS.WritableStream,
  options: DoctorOptions = {},
): Promise<number> {
  const findings = await doctor(configFile, options);
  out.write(formatFindings(findings));
  return findings.some((f) => f.level === 'problem') ? 1 : 0;
}
