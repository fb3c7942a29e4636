/**
 * `pos-agent doctor`: the checks of the data directory — the WAL before anything opens the
 * database, the database itself (read-only), and the free disk space.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { isAgentError } from '../../common/agent-error.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { checkWal, type WalReport } from '../../store-forward/wal-check.js';
import { type AgentConfig } from '../config.js';
import { walDamageFix } from '../storage-guard.js';
import type { DoctorFinding } from './doctor-finding.js';

/**
 * The WAL check (issue 10, store-forward/wal-check.ts), before anything opens the database.
 *
 * @returns false when the WAL is damaged: the database must then not be opened at all.
 */
export function checkWalBeforeOpen(config: AgentConfig, add: (f: DoctorFinding) => void): boolean {
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

export function checkDatabase(config: AgentConfig, add: (f: DoctorFinding) => void): void {
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

export function checkDisk(
  config: AgentConfig,
  minFree: number,
  add: (f: DoctorFinding) => void,
): void {
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
