/**
 * The agent's start-up steps (issue 15), in the order agent/agent.ts runs them through
 * agent/start-up.ts: each a small function named like its step, taking the {@link Context} and
 * what earlier steps built, returning what later ones need. agent/agent.ts's file comment says
 * why this order. This file holds the store's steps (data directory, store, integrity, recovery,
 * retention, WAL upkeep); the cloud link's are in start-sync.ts, the devices' and the payment
 * service in start-devices.ts, the status and the local API in start-api.ts.
 */
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import type { Clock, TimerHandle } from '../common/clock.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import type { ChainReport, ProjectionReport } from '../store-forward/model.js';
import { startRetention } from '../store-forward/retention.js';
import { definedOnly, startBackgroundCheck, type BackgroundCheck } from './background-check.js';
import type { StartupCheck } from '../store-forward/integrity.js';
import { applyOfflineLimitOverrides, loadOfflineLimitOverrides } from './command-files.js';
import { type AgentConfig } from './config.js';
import { ensurePrivateDir, type TerminalKeys } from './keys.js';
import type { Logger } from './logger.js';
import { integrityRefusal, keepDamagedCopy, refuseDamagedWal } from './storage-guard.js';
import type { AgentError } from '../common/agent-error.js';
import path from 'node:path';

/** What every start-up step reads. */
export interface Context {
  config: AgentConfig;
  keys: TerminalKeys;
  logger: Logger;
  clock: Clock;
}

/** Step "data-dir": the private data directory; offline limits set by cloud command win. */
export function prepareDataDir({ config }: Context): void {
  ensurePrivateDir(config.dataDir);
  // Offline limits set by cloud command (DATA_DIR/offline-limits.json) win over the config file.
  applyOfflineLimitOverrides(config.offline, loadOfflineLimitOverrides(config.dataDir));
}

/** The database file of a data directory. */
const databasePath = (config: AgentConfig): string => path.join(config.dataDir, 'agent.db');

/** Step "store": refuse a damaged WAL, make the data files private, open the store. */
export function openStore({ config, logger, clock }: Context): PaymentStore {
  const dbPath = databasePath(config);
  // Issue 10: a damaged WAL is found before SQLite can replay and checkpoint it (POS230).
  refuseDamagedWal(dbPath, logger, () => clock.now());
  // Data files 0600 (issue 11: agent.db* were 0644): SQLite gives its -wal and -shm files the
  // mode of the database file, so creating and tightening that one covers all three.
  closeSync(openSync(dbPath, 'a', 0o600));
  for (const file of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`])
    if (existsSync(file)) chmodSync(file, 0o600);
  return PaymentStore.open({
    path: dbPath,
    clock,
    forwardingDeadlineHours: config.offline.forwardingDeadlineHours,
  });
}

/** What the "integrity" step leaves behind. */
export interface Integrity {
  startup: StartupCheck;
  /** The POS231 refusal of new payments once a check failed, else undefined. */
  refusal(): AgentError | undefined;
  /** Logs a failed check and refuses new payments from then on (the background pass calls it). */
  onProblems(check: { chain: ChainReport; projection: ProjectionReport }): void;
}

/**
 * Step "integrity" (issue 9 §4): start-up checks the chain from the newest verified checkpoint and
 * the payments touched since, so it does not grow with history; the full check runs in the
 * background. Issue 10: a store that fails either takes no new payment (POS231, 503) until
 * restored; its files are copied aside.
 */
export function checkIntegrity({ config, logger, clock }: Context, store: PaymentStore): Integrity {
  const startup = store.integrity.verifySinceCheckpoint();
  const integrityProblems = (check: { chain: ChainReport; projection: ProjectionReport }): void => {
    if (!check.chain.ok) {
      logger.error(
        { problems: check.chain.problems },
        'the event hash chain does not verify; run "pos-agent verify"',
      );
    }
    if (!check.projection.ok) {
      logger.error(
        { problems: check.projection.problems },
        'the payments table differs from its events; run "pos-agent verify"',
      );
    }
  };
  integrityProblems(startup);
  if (startup.chain.ok && startup.projection.ok) {
    store.integrity.saveCheckpoint(startup.head);
    logger.info(
      { from: startup.from?.seq ?? 0, walked: startup.walked, head: startup.head.seq },
      'event hash chain verified from the last checkpoint',
    );
  }
  let refusal: AgentError | undefined;
  const refuseNewPayments = (check: { chain: ChainReport; projection: ProjectionReport }): void => {
    if (refusal !== undefined) return;
    let copy: string | undefined;
    try {
      copy = keepDamagedCopy(
        databasePath(config),
        `chain-${new Date(clock.now()).toISOString().slice(0, 10)}`,
      );
    } catch (error) {
      logger.error({ err: error }, 'could not copy the damaged database files aside');
    }
    refusal = integrityRefusal(
      [
        ...(check.chain.ok ? [] : check.chain.problems),
        ...(check.projection.ok ? [] : check.projection.problems),
      ],
      copy,
    );
    logger.fatal({ code: refusal.code, copy }, refusal.reason);
  };
  if (!startup.chain.ok || !startup.projection.ok) refuseNewPayments(startup);
  return {
    startup,
    refusal: () => refusal,
    onProblems: (check) => {
      integrityProblems(check);
      refuseNewPayments(check);
    },
  };
}

/**
 * Step "background-check" (issue 9 §4): the full pass over what start-up left to it waits for
 * the start-up window to end and then runs its pages only while the agent is idle, so start-up
 * time and memory do not grow with history. A failed pass refuses new payments (POS231).
 */
export function startFullCheck(
  { logger }: Context,
  store: PaymentStore,
  integrity: Integrity,
  timing: { delayMs?: number | undefined; isBusy: () => boolean },
): BackgroundCheck {
  return startBackgroundCheck(
    store,
    logger,
    (check) => integrity.onProblems(check),
    definedOnly({ delayMs: timing.delayMs, isBusy: timing.isBusy }),
  );
}

/**
 * Step "recovery" (issue 3 §7): a crash mid-payment leaves no payment stuck, the POS app sees the
 * outcome by key; records in flight at the last stop go back to pending, to be sent again.
 */
export function recoverInterrupted({ logger }: Context, store: PaymentStore): void {
  const recovery = store.recoverInterrupted();
  for (const failed of recovery.failed) {
    // One payment that cannot be recovered is left as it was and named; it never stops the start.
    logger.error(
      {
        paymentId: failed.paymentId,
        idempotencyKey: failed.idempotencyKey,
        state: failed.state,
        code: failed.error.code,
      },
      `payment interrupted by the last stop could not be recovered: ${failed.error.message}`,
    );
  }
  for (const payment of recovery.recovered) {
    logger.warn(
      {
        paymentId: payment.id,
        idempotencyKey: payment.idempotencyKey,
        state: payment.state,
        declineCode: payment.declineCode,
      },
      'payment interrupted by the last stop recovered to a final state',
    );
  }
  const released = store.releaseInFlight();
  if (released > 0)
    logger.info({ released }, 'records in flight at the last stop will be sent again');
}

/** Step "retention" (issue 3 §8): settled payments older than retention.acknowledgedDays go. */
export function startRetentionStep({ config, logger, clock }: Context, store: PaymentStore) {
  return startRetention({
    store,
    acknowledgedDays: config.retention.acknowledgedDays,
    clock,
    onPurged: (report) =>
      logger.info(
        { payments: report.payments, events: report.events, before: report.before },
        'retention purged settled payments; their hash-chain links are kept',
      ),
    onError: (error) => logger.error({ err: error }, 'retention could not purge; will retry'),
  });
}

/**
 * Step "wal-maintenance": acks delete sealed card data; the WAL frames that held it are truncated
 * here, off the ack path, at most a second later (PCI DSS 4.0.1 req. 3.3.1).
 */
export function startWalMaintenance({ logger, clock }: Context, store: PaymentStore) {
  let timer: TimerHandle | undefined;
  const maintenance = (): void => {
    timer = clock.setTimeout(() => {
      try {
        store.maintenance();
      } catch (error) {
        logger.warn({ err: error }, 'WAL checkpoint failed; retried in a second');
      }
      maintenance();
    }, 1000);
  };
  maintenance();
  return {
    stop: () => {
      if (timer !== undefined) clock.clearTimeout(timer);
    },
  };
}
