/**
 * The agent's start-up steps (issue 15), in the order agent/agent.ts runs them through
 * agent/start-up.ts: each a small function named like its step, taking the {@link Context} and
 * what earlier steps built, returning what later ones need. agent/agent.ts's file comment says
 * why this order.
 */
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import type { Clock, TimerHandle } from '../common/clock.js';
import { CardBoundary } from '../drivers/boundary/card-boundary.js';
import { PinPad } from '../drivers/pinpad/pin-pad.js';
import { CardReader } from '../drivers/readers/card-reader.js';
import { createTransport } from '../drivers/transport/transport.js';
import { keyId } from '../cloud-sync/envelope.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import { SyncWorker } from '../cloud-sync/sync-worker.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import type { ChainReport, ProjectionReport } from '../store-forward/model.js';
import { startRetention } from '../store-forward/retention.js';
import { definedOnly, startBackgroundCheck, type BackgroundCheck } from './background-check.js';
import type { StartupCheck } from '../store-forward/integrity.js';
import { buildApi, type AgentStatus } from './api.js';
import { listenApi } from './api-auth.js';
import { CardInput } from './card-input.js';
import { CloudCommands, type diagnostics } from './cloud-commands.js';
import { applyOfflineLimitOverrides, loadOfflineLimitOverrides } from './command-files.js';
import { syncLimits, type AgentConfig } from './config.js';
import { brokerTls, ensurePrivateDir, type TerminalKeys } from './keys.js';
import type { Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { createFaultMetrics } from './fault-metrics.js';
import { startReconciliation, type Reconciliation } from './reconciliation.js';
import {
  integrityRefusal,
  keepDamagedCopy,
  refuseDamagedWal,
  StoragePauseWatch,
} from './storage-guard.js';
import type { AgentError } from '../common/agent-error.js';
import { PaymentService } from './payment-service.js';
import path from 'node:path';
import { AGENT_VERSION } from './version.js';

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

/** What the "sync" step builds: not started yet (the "broker" and "sync-worker" steps do). */
export interface Sync {
  session: MqttSession;
  worker: SyncWorker;
  storagePause: StoragePauseWatch;
}

/** Step "sync": the MQTT session and the sync worker draining the outbox (architecture.md §4). */
export function createSync({ config, keys, logger, clock }: Context, store: PaymentStore): Sync {
  const session = new MqttSession({
    urls: config.broker.urls,
    clientId: config.deviceId,
    keepaliveSeconds: config.broker.keepaliveSeconds,
    pingTimeoutMs: config.broker.pingTimeoutMs,
    reconnectPeriodMs: config.broker.reconnectPeriodMs,
    reconnectMaxMs: config.broker.reconnectMaxMs,
    ...brokerTls(config),
  });
  const storagePause = new StoragePauseWatch(logger, () => clock.now());
  const worker = new SyncWorker({
    session,
    // Observed so that forwarding paused by storage (disk full) is logged and counted (issue 10).
    source: storagePause.wrap(store.outbox),
    deviceId: config.deviceId,
    topicPrefix: config.broker.topicPrefix,
    signer: { kid: keyId(keys.devicePublicKey), secretKey: keys.deviceSecretKey },
    cloudPublicKeys: new Map([[keyId(keys.cloudPublicKey), keys.cloudPublicKey]]),
    ...definedOnly(syncLimits(config.sync)),
    ackTimeoutMs: config.sync.ackTimeoutMs,
    maxCommandLifetimeMs: config.sync.maxCommandLifetimeMs,
    version: AGENT_VERSION,
    clock,
  });
  worker.on('acked', (results) => {
    for (const r of results)
      logger.info(
        { idempotencyKey: r.key, status: r.status, outcome: r.outcome },
        'cloud acknowledged',
      );
  });
  // Issue 10: a lost link is in the log with its reason (a silent partition is `ping_timeout`).
  session.on('disconnect', ({ loss }) => {
    if (loss === undefined || loss.reason === 'ended') return;
    logger.warn(
      { reason: loss.reason, silentForMs: loss.silentForMs, broker: session.url },
      loss.reason === 'ping_timeout'
        ? 'link to the broker lost: no answer to the keep-alive ping (silent partition); selling offline, reconnecting'
        : 'link to the broker lost; selling offline, reconnecting',
    );
  });
  // Issue 16: the agent moved to another node of the broker cluster.
  session.on('failover', ({ from, to, downForMs }) => {
    logger.warn(
      { from, to, downForMs },
      'link to the broker moved to another endpoint (failover); same client id and session',
    );
  });
  session.on('connect', ({ sessionPresent }) => {
    logger.info({ broker: session.url, sessionPresent }, 'link to the broker up');
  });
  return { session, worker, storagePause };
}

/**
 * Step "reconciliation" (issue 17, docs/reconciliation.md): drift checks between closes, the
 * daily close, exceptions logged and counted.
 */
export function startReconciliationStep(
  { config, logger, clock }: Context,
  store: PaymentStore,
  { worker }: Sync,
): Reconciliation {
  const reconciliation = startReconciliation({
    store,
    logger,
    clock,
    terminal: config.deviceId,
    notifySync: () => worker.notify(),
    closeAt: config.batch.closeAt,
    driftCheckSeconds: config.batch.driftCheckSeconds,
  });
  worker.on('acked', () => reconciliation.noteAcks());
  return reconciliation;
}

/** Step "cloud-commands" (issue 5): verified by the worker, applied and answered here. */
export function createCloudCommands(
  { config, keys, logger, clock }: Context,
  { session, worker }: Sync,
  reconciliation: Reconciliation,
  report: () => ReturnType<typeof diagnostics>,
): CloudCommands {
  const commands = new CloudCommands({
    closeBatch: (force) => {
      const closed = reconciliation.close(force);
      return {
        batchId: closed.batch.id,
        next: closed.next.id,
        record: closed.recordKey,
        totals: closed.batch.totals as unknown as Record<string, unknown>,
        unforwarded: closed.unforwarded.length,
      };
    },
    source: worker,
    publish: (topic, payload) => session.publish(topic, payload, { qos: 1 }),
    deviceSecretKey: keys.deviceSecretKey,
    keysDir: config.keysDir,
    dataDir: config.dataDir,
    logger,
    diagnostics: report,
    clock,
  });
  // In place: the payment service holds config.offline and reads it for every payment.
  commands.on('offline-limits', (limits) => applyOfflineLimitOverrides(config.offline, limits));
  return commands;
}

/**
 * Step "pin-pad": a PIN pad that is absent at start-up (unplugged, ser2net not up yet) does not
 * stop the agent: the PinPad reopens it with its own backoff (0.5 s doubling to 30 s), as after a
 * disconnect, and /v1/status shows "disconnected" meanwhile (payments answer POS430).
 */
export async function startPinPad(
  { config, logger, clock }: Context,
  boundary: CardBoundary,
  reconnect?: { initialDelayMs: number; maxDelayMs: number },
) {
  const pad = PinPad.create({
    ...(reconnect === undefined ? {} : { reconnect }),
    transport: createTransport(config.pinPad.path, { baudRate: config.pinPad.baudRate }),
    boundary,
    link: {
      ackTimeoutMs: config.pinPad.ackTimeoutMs,
      interByteTimeoutMs: config.pinPad.interByteTimeoutMs,
      maxTransmissions: config.pinPad.maxTransmissions,
    },
    responseTimeoutMs: config.pinPad.responseTimeoutMs,
    clock,
  });
  pad.on('state', (state) =>
    logger.info({ device: 'pinPad', path: config.pinPad.path, state }, 'PIN pad state'),
  );
  // Open failures (POS101, each reopen while absent), bad frames (POS110), out-of-turn messages
  // (POS121): the pad recovers by itself, but a field tech needs to see them.
  pad.on('warning', (warning) =>
    logger.warn({ device: 'pinPad', path: config.pinPad.path, code: warning.code }, warning.reason),
  );
  await pad.start();
  return pad;
}

/**
 * Step "card-readers" (issue 4): a missing one does not stop the agent; it is shown in /v1/status
 * and reopened with backoff. A swipe with no payment in progress is wiped by the reader.
 */
export async function startCardReaders({ config, logger, clock }: Context, boundary: CardBoundary) {
  const cardReaders = config.cardReaders.map((r) => {
    const reader = new CardReader({
      name: r.name,
      kind: r.kind,
      transport: createTransport(r.path, { baudRate: r.baudRate }),
      boundary,
      clock,
      reconnect: { initialDelayMs: r.reconnectInitialDelayMs, maxDelayMs: r.reconnectMaxDelayMs },
    });
    reader.on('state', (state, error) =>
      logger.info(
        { device: r.name, path: r.path, state, ...(error ? { code: error.code } : {}) },
        error ? `card reader state: ${error.reason}` : 'card reader state',
      ),
    );
    reader.on('warning', (warning) =>
      logger.warn({ device: r.name, code: warning.code }, warning.reason),
    );
    return reader;
  });
  try {
    await Promise.all(cardReaders.map((reader) => reader.start()));
  } catch (error) {
    // The step's undo is registered only when it succeeds: close what this step opened.
    await Promise.all(cardReaders.map((r) => r.close()));
    throw error;
  }
  return cardReaders;
}

/** Step "payments": card input racing the PIN pad against the readers, and the payment service. */
export function createPayments(
  { config, logger, clock }: Context,
  parts: {
    store: PaymentStore;
    worker: SyncWorker;
    pinPad: () => PinPad | undefined;
    cardReaders: CardReader[];
  },
) {
  const { store, worker, pinPad } = parts;
  const cardInput = new CardInput({ pinPad, readers: parts.cardReaders, clock });
  cardInput.on('prompt', (prompt) => logger.info({ device: prompt.source }, prompt.text));
  const payments = new PaymentService({
    store,
    pinPad,
    notifySync: () => worker.notify(),
    logger,
    cardReadTimeoutSeconds: config.pinPad.cardReadTimeoutSeconds,
    online: {
      online: () => worker.online,
      authorize: (request, options) => worker.authorize(request, options),
    },
    policy: config.offline,
    authorization: config.authorization,
    now: () => clock.now(),
    cardInput,
  });
  // Late outcomes (an issuer decline of an offline approval) become prompts.
  worker.on('acked', (results) => payments.noteAcked(results.map((r) => r.key)));
  return { payments, cardInput };
}

/** What `GET /v1/status` answers, from the parts started so far. */
export function agentStatus(
  { config, clock }: Context,
  parts: {
    store: PaymentStore;
    sync: Sync;
    refusal: AgentError | undefined;
    reconciliation: Reconciliation;
    pinPad?: PinPad;
    cardReaders: CardReader[];
  },
): AgentStatus {
  const { store, sync, refusal, reconciliation, pinPad, cardReaders } = parts;
  return {
    deviceId: config.deviceId,
    version: AGENT_VERSION,
    devices: [
      { name: 'pinPad', path: config.pinPad.path, state: pinPad?.state ?? 'connecting' },
      ...cardReaders.map((r) => ({ name: r.name, path: r.path, state: r.state })),
    ],
    // The same link state the payment flow decides online/offline by.
    link: {
      state: sync.worker.online ? 'online' : 'offline',
      // The endpoint in use (or being tried), issue 16; all of them in endpoints.
      broker: sync.session.url,
      endpoints: [...sync.session.endpoints],
      health: sync.session.health(),
    },
    queue: store.queueStats(),
    storage: {
      forwarding: sync.storagePause.state(),
      ...(refusal ? { refusing: refusal.code } : {}),
    },
    offline: {
      exposure: store.offlineExposure(),
      deadlineWarnings: store
        .deadlineWarnings(
          new Date(
            clock.now() + config.offline.warningBeforeDeadlineHours * 3_600_000,
          ).toISOString(),
        )
        .map((p) => ({ paymentId: p.id, forwardingDeadlineAt: p.forwardingDeadlineAt ?? null })),
    },
    batch: reconciliation.status(),
  };
}

/** Step "api": metrics and the local API, listening last so the POS app only meets a whole agent. */
export async function startApi(
  { config, keys, logger, clock }: Context,
  parts: {
    store: PaymentStore;
    sync: Sync;
    commands: CloudCommands;
    reconciliation: Reconciliation;
    payments: PaymentService;
    status: () => AgentStatus;
    integrity: Integrity;
  },
) {
  const { store, sync, commands, reconciliation, payments, status, integrity } = parts;
  const metrics = createMetrics({
    status,
    sync: () => sync.worker.stats(),
    commands: () => commands.counters(),
    reconciliation: () => reconciliation.counters(),
    // Read at scrape time, when `api` (built just below) exists.
    apiAuth: () => api.apiAuth.counters(),
    now: () => clock.now(),
  });
  const faultMetrics = createFaultMetrics({
    link: () => sync.session.health(),
    storage: () => sync.storagePause.state(),
  });
  const api = buildApi({
    apiToken: keys.apiToken,
    payments,
    store,
    status,
    logger,
    metrics: {
      contentType: metrics.contentType,
      metrics: async () => `${await metrics.metrics()}\n${await faultMetrics.metrics()}`,
    },
  });
  // Read per request: the background integrity pass may refuse new payments after the start.
  api.addHook('preHandler', async (request) => {
    const refusal = integrity.refusal();
    if (
      refusal !== undefined &&
      request.method === 'POST' &&
      request.routeOptions.url === '/v1/payments'
    ) {
      throw refusal;
    }
  });
  try {
    return { url: await listenApi(api, config.api), close: () => api.close() };
  } catch (error) {
    // The step's undo is registered only when it succeeds: close what this step built.
    await api.close();
    throw error;
  }
}
