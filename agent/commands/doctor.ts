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
 *
 * This file runs the checks and prints the report; the checks of the data directory are
 * agent/commands/doctor-store.ts, the broker agent/commands/doctor-broker.ts, the devices
 * agent/commands/doctor-devices.ts.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { isAgentError } from '../../common/agent-error.js';
import { discoverDevices, type DiscoveryReport } from '../../drivers/discovery/discover.js';
import { OFFLINE_LIMITS_FILE } from '../command-files.js';
import { type AgentConfig, loadConfig } from '../config.js';
import { type ConfigPath } from '../config-path.js';
import { loadTerminalKeys, TERMINAL_KEY_FILES } from '../keys.js';
import { checkBroker } from './doctor-broker.js';
import { checkDevices } from './doctor-devices.js';
import type { DoctorDevice, DoctorFinding } from './doctor-finding.js';
import { checkDatabase, checkDisk, checkWalBeforeOpen } from './doctor-store.js';

export type { DoctorDevice, DoctorFinding };

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
