/**
 * The last start-up step and what it serves (agent/agent.ts runs it through agent/start-up.ts):
 * the agent's status as `GET /v1/status` answers it, the metrics and the local API. Split from
 * agent/start-steps.ts by job (issue 15).
 */
import { PinPad } from '../drivers/pinpad/pin-pad.js';
import { CardReader } from '../drivers/readers/card-reader.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { buildApi, type AgentStatus } from './api.js';
import { listenApi } from './api-auth.js';
import { CloudCommands } from './cloud-commands.js';
import { createMetrics } from './metrics.js';
import { createFaultMetrics } from './fault-metrics.js';
import { type Reconciliation } from './reconciliation.js';
import type { AgentError } from '../common/agent-error.js';
import { PaymentService } from './payment-service.js';
import { AGENT_VERSION } from './version.js';
import { type Context, type Integrity } from './start-steps.js';
import type { Sync } from './start-sync.js';

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
    paymentStages: payments.stageTimings,
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
