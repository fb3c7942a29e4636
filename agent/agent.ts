/**
 * The composition root (architecture.md §1): wires the PIN pad (drivers), the store (store-forward), the
 * MQTT sync (cloud-sync) and the local API into one running agent.
 *
 * Start-up order, and why:
 * 1. store — open, migrate, verify the hash chain, put `in_flight` records back to `pending`
 *    (a crash between publish and acknowledgement must resend, never lose; the cloud dedupes).
 * 2. MQTT session and sync worker — start draining what is stored, even if the PIN pad is gone.
 * 3. PIN pad — open; a missing pad is reported in `/v1/status`, reopened with backoff, and does
 *    not stop the agent (payments answer POS430 meanwhile).
 * 4. local API — last, so the POS app only gets answers from a complete agent.
 */
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { type Clock, type TimerHandle, systemClock } from '../common/clock.js';
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
import {
  applyOfflineLimitOverrides,
  CloudCommands,
  diagnostics,
  loadOfflineLimitOverrides,
} from './cloud-commands.js';
import { syncLimits, type AgentConfig } from './config.js';
import { brokerTls, ensurePrivateDir, type TerminalKeys } from './keys.js';
import type { Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { createFaultMetrics } from './fault-metrics.js';
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

/** A running agent. */
export interface RunningAgent {
  /** Base URL of the local API, e.g. `http://127.0.0.1:7420`. */
  apiUrl: string;
  /** The bearer token of the local API. */
  apiToken: string;
  store: PaymentStore;
  payments: PaymentService;
  worker: SyncWorker;
  /** The configured card readers (issue 4), each reopening itself after an unplug. */
  cardReaders: CardReader[];
  /** Card input racing the PIN pad against the card readers (agent/card-input.ts). */
  cardInput: CardInput;
  /** Applies cloud commands and reports their results (agent/cloud-commands.ts). */
  commands: CloudCommands;
  /** What `GET /v1/status` answers. */
  status(): AgentStatus;
  /**
   * The integrity checks (issue 9 §4): what start-up verified (the chain after the newest
   * checkpoint and the payments touched since), and the full background pass that follows.
   */
  integrity: { startup: StartupCheck; background: BackgroundCheck };
  /** Stops the API, the PIN pad, the sync and closes the database, in that order. */
  stop(): Promise<void>;
}

/**
 * Starts the agent.
 *
 * @param config — validated configuration ({@link AgentConfig}).
 * @param keys — the terminal's keys ({@link TerminalKeys}).
 * @throws AgentError POS2xx when the database cannot be opened or fails its checks,
 *   POS503 when the data directory cannot be created, the listen error (`EADDRINUSE`) when the
 *   API port is taken. Whatever was started before the failure is stopped again before it throws.
 *   A missing PIN pad or broker is not an error at start-up: both are retried and shown in the
 *   status.
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  // Each step that holds a resource pushes its undo; a later step failing (the API port in use)
  // unwinds them in reverse, so a failed start leaves no timer, socket or open database behind
  // and the process can exit.
  const cleanups: Array<() => unknown> = [];
  try {
    return await startSteps(options, cleanups);
  } catch (error) {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // The start-up error is the one to report; an undo failing must not hide it.
      }
    }
    throw error;
  }
}

/** What {@link startAgent} takes. */
export interface StartAgentOptions {
  config: AgentConfig;
  keys: TerminalKeys;
  logger: Logger;
  clock?: Clock;
}

async function startSteps(
  options: StartAgentOptions,
  cleanups: Array<() => unknown>,
): Promise<RunningAgent> {
  const { config, keys, logger } = options;
  const clock = options.clock ?? systemClock;
  ensurePrivateDir(config.dataDir);
  // Offline limits set by cloud command (DATA_DIR/offline-limits.json) win over the config file.
  applyOfflineLimitOverrides(config.offline, loadOfflineLimitOverrides(config.dataDir));

  const dbPath = path.join(config.dataDir, 'agent.db');
  // Issue 10: a damaged WAL is found before SQLite can replay and checkpoint it (POS230).
  refuseDamagedWal(dbPath, logger, () => clock.now());
  // Data files 0600 (issue 11: agent.db* were 0644): SQLite gives its -wal and -shm files the
  // mode of the database file, so creating and tightening that one covers all three.
  closeSync(openSync(dbPath, 'a', 0o600));
  for (const file of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`])
    if (existsSync(file)) chmodSync(file, 0o600);
  const store = PaymentStore.open({
    path: dbPath,
    clock,
    forwardingDeadlineHours: config.offline.forwardingDeadlineHours,
  });
  cleanups.push(() => store.close());
  // Issue 9 §4: start-up checks the chain from the newest verified checkpoint and the payments
  // touched since, so it does not grow with history; the full check runs in the background.
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
  // Issue 10: a store that fails its checks — at start-up, or in the background pass over what
  // start-up left to it (issue 9 §4) — takes no new payment (POS231, 503) until restored.
  let refusal: AgentError | undefined;
  const refuseNewPayments = (check: { chain: ChainReport; projection: ProjectionReport }): void => {
    if (refusal !== undefined) return;
    let copy: string | undefined;
    try {
      copy = keepDamagedCopy(dbPath, `chain-${new Date(clock.now()).toISOString().slice(0, 10)}`);
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
  const fullCheck = startBackgroundCheck(store, logger, (check) => {
    integrityProblems(check);
    refuseNewPayments(check);
  });
  cleanups.push(() => fullCheck.stop());
  // Issue 3 §7: a crash mid-payment leaves no payment stuck; the POS app sees the outcome by key.
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
  // Issue 3 §8: settled payments older than retention.acknowledgedDays go, at start-up and hourly.
  const retention = startRetention({
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
  cleanups.push(() => retention.stop());
  // Acks delete sealed card data; the WAL frames that held it are truncated here, off the ack
  // path, at most a second later (PCI DSS 4.0.1 req. 3.3.1).
  let maintenanceTimer: TimerHandle | undefined;
  const maintenance = (): void => {
    maintenanceTimer = clock.setTimeout(() => {
      try {
        store.maintenance();
      } catch (error) {
        logger.warn({ err: error }, 'WAL checkpoint failed; retried in a second');
      }
      maintenance();
    }, 1000);
  };
  maintenance();
  cleanups.push(() => {
    if (maintenanceTimer !== undefined) clock.clearTimeout(maintenanceTimer);
  });
  const released = store.releaseInFlight();
  if (released > 0)
    logger.info({ released }, 'records in flight at the last stop will be sent again');

  const session = new MqttSession({
    url: config.broker.url,
    clientId: config.deviceId,
    keepaliveSeconds: config.broker.keepaliveSeconds,
    pingTimeoutMs: config.broker.pingTimeoutMs,
    reconnectPeriodMs: config.broker.reconnectPeriodMs,
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
  // Cloud commands (issue 5): verified by the worker, applied and answered here.
  const commands = new CloudCommands({
    source: worker,
    publish: (topic, payload) => session.publish(topic, payload, { qos: 1 }),
    deviceSecretKey: keys.deviceSecretKey,
    keysDir: config.keysDir,
    dataDir: config.dataDir,
    logger,
    diagnostics: () => diagnostics(status(), store.listPayments({ limit: 200 })),
    clock,
  });
  // In place: the payment service holds config.offline and reads it for every payment.
  commands.on('offline-limits', (limits) => applyOfflineLimitOverrides(config.offline, limits));
  // Late outcomes (an issuer decline of an offline approval) become prompts once the payment
  // service exists; acks may arrive while the PIN pad is still opening.
  let noteAcked: (keys: string[]) => void = () => undefined;
  worker.on('acked', (results) => {
    noteAcked(results.map((r) => r.key));
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
      { reason: loss.reason, silentForMs: loss.silentForMs, broker: config.broker.url },
      loss.reason === 'ping_timeout'
        ? 'link to the broker lost: no answer to the keep-alive ping (silent partition); selling offline, reconnecting'
        : 'link to the broker lost; selling offline, reconnecting',
    );
  });
  session.connect();
  cleanups.push(() => session.end());
  worker.start();
  cleanups.push(() => worker.stop());

  const boundary = new CardBoundary({
    tokenKey: keys.tokenKey,
    vaultPublicKey: keys.vaultPublicKey,
    allowCardholderName: config.card.allowCardholderName,
    allowFallbackSwipe: config.card.allowFallbackSwipe,
  });
  // A PIN pad that is absent at start-up (unplugged, ser2net not up yet) must not stop the agent:
  // it keeps trying with backoff (0.5 s doubling to 30 s) and /v1/status shows "disconnected".
  // Once open, the PinPad itself reconnects after a disconnect.
  let pinPad: PinPad | undefined;
  let pinPadState = 'connecting';
  let pinPadRetry: TimerHandle | undefined;
  let stopping = false;
  const openPinPad = async (attempt: number): Promise<void> => {
    try {
      const pad = await PinPad.open({
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
      if (stopping) {
        await pad.close().catch(() => undefined);
        return;
      }
      pinPad = pad;
      pinPadState = 'connected';
      logger.info(
        { device: 'pinPad', path: config.pinPad.path, state: 'connected' },
        'PIN pad state',
      );
      pad.on('state', (state: string) => {
        pinPadState = state;
        logger.info({ device: 'pinPad', state }, 'PIN pad state');
      });
      // Bad frames (POS110), out-of-turn messages (POS121), reopen failures (POS101): the link
      // recovers by itself, but a field tech needs to see them when a pad misbehaves.
      pad.on('warning', (warning) =>
        logger.warn({ device: 'pinPad', code: warning.code }, warning.reason),
      );
    } catch (error) {
      pinPadState = 'disconnected';
      const retryInMs = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
      logger.error(
        { err: error, path: config.pinPad.path, retryInMs },
        'cannot open the PIN pad; will retry',
      );
      if (!stopping) pinPadRetry = clock.setTimeout(() => void openPinPad(attempt + 1), retryInMs);
    }
  };
  cleanups.push(async () => {
    stopping = true;
    if (pinPadRetry !== undefined) clock.clearTimeout(pinPadRetry);
    await pinPad?.close().catch(() => undefined);
  });
  await openPinPad(0);

  // Card readers (issue 4): a missing one does not stop the agent; it is shown in /v1/status
  // and reopened with backoff. A swipe with no payment in progress is wiped by the reader.
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
  cleanups.push(() => Promise.all(cardReaders.map((r) => r.close())));
  await Promise.all(cardReaders.map((reader) => reader.start()));
  const cardInput = new CardInput({
    pinPad: () => (pinPadState === 'connected' ? pinPad : undefined),
    readers: cardReaders,
    clock,
  });
  cardInput.on('prompt', (prompt) => logger.info({ device: prompt.source }, prompt.text));

  const payments = new PaymentService({
    store,
    pinPad: () => (pinPadState === 'connected' ? pinPad : undefined),
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
  noteAcked = (keys) => payments.noteAcked(keys);

  const status = (): AgentStatus => ({
    deviceId: config.deviceId,
    version: AGENT_VERSION,
    devices: [
      { name: 'pinPad', path: config.pinPad.path, state: pinPadState },
      ...cardReaders.map((r) => ({ name: r.name, path: r.path, state: r.state })),
    ],
    // The same link state the payment flow decides online/offline by.
    link: {
      state: worker.online ? 'online' : 'offline',
      broker: config.broker.url,
      health: session.health(),
    },
    queue: store.queueStats(),
    storage: { forwarding: storagePause.state(), ...(refusal ? { refusing: refusal.code } : {}) },
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
  });

  const metrics = createMetrics({
    status,
    sync: () => worker.stats(),
    commands: () => commands.counters(),
    // Read at scrape time, when `api` (built just below) exists.
    apiAuth: () => api.apiAuth.counters(),
    now: () => clock.now(),
  });
  const faultMetrics = createFaultMetrics({
    link: () => session.health(),
    storage: () => storagePause.state(),
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
    if (
      refusal !== undefined &&
      request.method === 'POST' &&
      request.routeOptions.url === '/v1/payments'
    ) {
      throw refusal;
    }
  });
  cleanups.push(() => api.close());
  const apiUrl = await listenApi(api, config.api);
  logger.info(
    { apiUrl, deviceId: config.deviceId, kid: keyId(keys.devicePublicKey) },
    'agent started',
  );

  return {
    apiUrl,
    apiToken: keys.apiToken,
    store,
    payments,
    worker,
    commands,
    cardReaders,
    cardInput,
    status,
    integrity: { startup, background: fullCheck },
    async stop() {
      // A second call (a signal during a stop) has nothing left to do.
      if (stopping) return;
      stopping = true;
      if (pinPadRetry !== undefined) clock.clearTimeout(pinPadRetry);
      retention.stop();
      // The API waits for requests in flight; a POST waiting for a card would hold the stop for
      // up to cardReadTimeoutSeconds. End the card read (new payments answer POS431) and the
      // readers first, so that POST answers before the API closes: a keep-alive connection that
      // becomes idle only after close() began is not closed by it.
      await payments.interrupt();
      await Promise.all(cardReaders.map((r) => r.close()));
      await api.close();
      await pinPad?.close().catch(() => undefined);
      await worker.stop();
      await session.end();
      fullCheck.stop();
      if (maintenanceTimer !== undefined) clock.clearTimeout(maintenanceTimer);
      store.close();
      logger.info('agent stopped');
    },
  };
}
