/**
 * `GET /metrics` (architecture.md §6): the agent's state in the Prometheus text exposition format, with
 * prom-client. Every value is read from its owner when Prometheus scrapes (collect callbacks), so
 * there is no second copy of the queue or the counters to drift.
 *
 * | metric | type | labels |
 * |--------|------|--------|
 * | `pos_agent_outbox_records` | gauge | `state` = pending, in_flight, dead, acked |
 * | `pos_agent_outbox_oldest_age_seconds` | gauge | — (0 when nothing waits) |
 * | `pos_agent_link_online` | gauge | — 1 when connected to the broker |
 * | `pos_agent_device_connected` | gauge | `device`, `path` |
 * | `pos_agent_offline_exposure_minor` | gauge | `currency` — stored offline approvals, minor units |
 * | `pos_agent_offline_exposure_payments` | gauge | — |
 * | `pos_agent_sync_publishes_total` / `…_resends_total` / `…_rejected_downlinks_total` | counter | — |
 * | `pos_agent_cloud_commands_total` | counter | `result` = applied, failed |
 * | `pos_agent_cloud_commands_refused_total` | counter | `code` (POS31x, POS32x) |
 * | `pos_agent_api_auth_refused_total` | counter | `code` = POS401 (token), POS402 (slowed down), POS403 (address) |
 * | `pos_agent_payment_stage_seconds` | histogram | `stage` = pad_display, card_read, pin_entry, authorization, store, total; `path` = online, offline (agent/payment-timings.ts) |
 *
 * No label ever carries card data: devices are named by their configured path.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { AgentStatus } from './api.js';
import type { PaymentStageTimings } from './payment-timings.js';
import type { ReconciliationCounters } from './reconciliation.js';

/** Where the metrics come from; each callback is called once per scrape. */
export interface MetricSources {
  status: () => AgentStatus;
  /** Sync worker counters (cloud-sync's SyncWorker.stats()). */
  sync: () => { publishes: number; resends: number; rejectedDownlinks: number };
  /** Cloud command counters (agent/cloud-commands.ts). */
  commands: () => { applied: number; failed: number; refused: Record<string, number> };
  /**
   * Refusals of the local API's auth guard by code (agent/api-auth.ts `counters()`); absent: the
   * `pos_agent_api_auth_refused_total` series are not exported.
   */
  apiAuth?: () => { POS401: number; POS402: number; POS403: number };
  /** Epoch ms, for the age of the oldest stored record. */
  now: () => number;
  /** Reconciliation counters (agent/reconciliation.ts, issue 17); absent: not exported. */
  reconciliation?: () => ReconciliationCounters;
  /**
   * The payment service's stage histogram (agent/payment-timings.ts), registered as it is: its
   * owner observes, the scrape reads. Absent: not exported.
   */
  paymentStages?: PaymentStageTimings;
}

/**
 * Builds a private registry (not prom-client's global one, so two agents in one test process do
 * not collide).
 *
 * @returns `metrics()` resolving to the exposition text and its `contentType`.
 */
export function createMetrics(sources: MetricSources): {
  metrics: () => Promise<string>;
  contentType: string;
} {
  const registry = new Registry();
  let snapshot: AgentStatus | undefined;
  const status = (): AgentStatus => (snapshot ??= sources.status());
  const setCounter = (counter: Counter, value: number, labels?: Record<string, string>): void => {
    if (labels === undefined) {
      counter.reset();
      counter.inc(value);
    } else {
      counter.inc(labels, value);
    }
  };

  new Gauge({
    name: 'pos_agent_outbox_records',
    help: 'Outbox records by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const q = status().queue;
      this.set({ state: 'pending' }, q.depth - q.inFlight);
      this.set({ state: 'in_flight' }, q.inFlight);
      this.set({ state: 'dead' }, q.dead);
      this.set({ state: 'acked' }, q.acked);
    },
  });
  new Gauge({
    name: 'pos_agent_outbox_oldest_age_seconds',
    help: 'Age of the oldest record not yet acknowledged, seconds (0 when none waits)',
    registers: [registry],
    collect() {
      const oldest = status().queue.oldestAt;
      this.set(oldest === null ? 0 : Math.max(0, (sources.now() - Date.parse(oldest)) / 1000));
    },
  });
  new Gauge({
    name: 'pos_agent_link_online',
    help: '1 while the agent is connected to the MQTT broker',
    registers: [registry],
    collect() {
      this.set(status().link.state === 'online' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pos_agent_device_connected',
    help: '1 while the device is connected',
    labelNames: ['device', 'path'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of status().devices) {
        this.set({ device: d.name, path: d.path }, d.state === 'connected' ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'pos_agent_offline_exposure_minor',
    help: 'Offline-approved payments not yet confirmed by the cloud, integer minor units per currency',
    labelNames: ['currency'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [currency, v] of Object.entries(status().offline?.exposure.byCurrency ?? {})) {
        this.set({ currency }, v.amountMinor);
      }
    },
  });
  new Gauge({
    name: 'pos_agent_offline_exposure_payments',
    help: 'Offline-approved payments not yet confirmed by the cloud',
    registers: [registry],
    collect() {
      this.set(status().offline?.exposure.count ?? 0);
    },
  });
  const syncCounter = (
    name: string,
    help: string,
    pick: (s: ReturnType<MetricSources['sync']>) => number,
  ) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        setCounter(this, pick(sources.sync()));
      },
    });
  syncCounter(
    'pos_agent_sync_publishes_total',
    'Batch publishes (first sends and resends)',
    (s) => s.publishes,
  );
  syncCounter(
    'pos_agent_sync_resends_total',
    'Batch resends after an ack timeout or a reconnect',
    (s) => s.resends,
  );
  syncCounter(
    'pos_agent_sync_rejected_downlinks_total',
    'Downlinks refused: bad envelope, signature, key id, schema, expired or replayed command',
    (s) => s.rejectedDownlinks,
  );
  new Counter({
    name: 'pos_agent_cloud_commands_total',
    help: 'Cloud commands applied or failed',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      const c = sources.commands();
      this.reset();
      setCounter(this, c.applied, { result: 'applied' });
      setCounter(this, c.failed, { result: 'failed' });
    },
  });
  new Counter({
    name: 'pos_agent_cloud_commands_refused_total',
    help: 'Cloud commands refused, by error code',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of Object.entries(sources.commands().refused))
        setCounter(this, n, { code });
    },
  });

  // Issue 17: reconciliation as a monitored system: open exceptions now, exceptions raised
  // (at the close or by the drift check between closes), batches closed, drift checks sent.
  new Gauge({
    name: 'pos_agent_reconciliation_open_exceptions',
    help: 'Reconciliation exceptions waiting for a tech, by kind (docs/reconciliation.md)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      const batch = status().batch;
      if (batch === undefined) return;
      this.set({ kind: 'all' }, batch.openExceptions);
      for (const [kind, n] of Object.entries(batch.exceptionsByKind)) this.set({ kind }, n ?? 0);
    },
  });
  new Gauge({
    name: 'pos_agent_batch_open_amount_minor',
    help: 'Charged amount of the open batch so far, integer minor units, by currency',
    labelNames: ['currency'],
    registers: [registry],
    collect() {
      this.reset();
      const batch = status().batch;
      if (batch === undefined) return;
      for (const [currency, a] of Object.entries(batch.open.totals.byCurrency))
        this.set({ currency }, a.amountMinor);
    },
  });
  const reconciliation = sources.reconciliation;
  if (reconciliation !== undefined) {
    new Counter({
      name: 'pos_agent_reconciliation_exceptions_total',
      help: 'Reconciliation exceptions raised since start, by kind and found_by (close or drift)',
      labelNames: ['kind', 'found_by'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [name, n] of Object.entries(reconciliation().raised)) {
          const [kind, foundBy] = name.split(':') as [string, string];
          setCounter(this, n ?? 0, { kind, found_by: foundBy });
        }
      },
    });
    new Counter({
      name: 'pos_agent_batches_closed_total',
      help: 'Terminal batches closed by this agent since start',
      registers: [registry],
      collect() {
        setCounter(this, reconciliation().closed);
      },
    });
    new Counter({
      name: 'pos_agent_reconciliation_drift_checks_total',
      help: 'Drift checks (running totals reported to the cloud between closes) since start',
      registers: [registry],
      collect() {
        setCounter(this, reconciliation().checks);
      },
    });
  }

  const apiAuth = sources.apiAuth;
  if (apiAuth !== undefined) {
    new Counter({
      name: 'pos_agent_api_auth_refused_total',
      help: 'Local API requests refused by the auth guard: POS401 token, POS402 slowed down, POS403 non-local address',
      labelNames: ['code'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [code, n] of Object.entries(apiAuth())) setCounter(this, n, { code });
      },
    });
  }

  if (sources.paymentStages !== undefined) {
    registry.registerMetric(sources.paymentStages.histogram);
  }

  return {
    contentType: registry.contentType,
    metrics: async () => {
      snapshot = undefined;
      try {
        return await registry.metrics();
      } finally {
        snapshot = undefined;
      }
    },
  };
}
