/**
 * Start-up steps of the cloud link (agent/agent.ts runs them through agent/start-up.ts): the MQTT
 * session and sync worker, the batches' reconciliation, the cloud commands. Split from
 * agent/start-steps.ts by job (issue 15).
 */
import { keyId } from '../cloud-sync/envelope.js';
import { MqttSession } from '../cloud-sync/mqtt-session.js';
import { SyncWorker } from '../cloud-sync/sync-worker.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { definedOnly } from './background-check.js';
import { CloudCommands, type diagnostics } from './cloud-commands.js';
import { applyOfflineLimitOverrides } from './command-files.js';
import { syncLimits } from './config.js';
import { brokerTls } from './keys.js';
import { startReconciliation, type Reconciliation } from './reconciliation.js';
import { StoragePauseWatch } from './storage-guard.js';
import { AGENT_VERSION } from './version.js';
import { type Context } from './start-steps.js';

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
  // One line per ack message, not per record: a line each cost ~10-15 % of the drain's CPU
  // (issue 9). The keys are all in it, so a payment is still found by its key; the ones the cloud
  // did not simply accept are listed apart with their status.
  worker.on('acked', (results) => logger.info(ackLogFields(results), 'cloud acknowledged'));
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
 * The fields of the one `cloud acknowledged` log line of an ack message: counts by status and
 * outcome, every idempotency key, and the records the cloud did not answer `accepted`
 * (duplicate, rejected) with their status and code.
 */
export function ackLogFields(
  results: readonly {
    key: string;
    status: string;
    outcome?: string | undefined;
    code?: string | undefined;
  }[],
): Record<string, unknown> {
  const byStatus: Record<string, number> = {};
  const byOutcome: Record<string, number> = {};
  const other: { idempotencyKey: string; status: string; code?: string }[] = [];
  for (const r of results) {
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    if (r.outcome !== undefined) byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
    if (r.status !== 'accepted')
      other.push({
        idempotencyKey: r.key,
        status: r.status,
        ...(r.code === undefined ? {} : { code: r.code }),
      });
  }
  return {
    records: results.length,
    byStatus,
    byOutcome,
    idempotencyKeys: results.map((r) => r.key),
    ...(other.length > 0 ? { notAccepted: other } : {}),
  };
}
