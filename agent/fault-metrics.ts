/**
 * Metrics of the faults a store throws at the agent (issue 10), in their own registry and
 * appended to `GET /metrics` after agent/metrics.ts's series (so each file keeps one job).
 *
 * | name | type | labels / meaning |
 * |------|------|------------------|
 * | `pos_agent_link_losses_total` | counter | `reason` = ping_timeout (silent partition), reset, closed |
 * | `pos_agent_link_last_loss_silent_seconds` | gauge | how long the broker had been silent when the last loss was noticed |
 * | `pos_agent_link_notice_within_seconds` | gauge | the longest a silent partition goes unnoticed (keep-alive + ping timeout) |
 * | `pos_agent_link_endpoint` | gauge | `endpoint` = each configured broker URL; 1 for the one in use or being tried (issue 16) |
 * | `pos_agent_link_failovers_total` | counter | connections made to another endpoint than the previous one |
 * | `pos_agent_link_reconnect_attempts_total` | counter | reconnect attempts, every endpoint |
 * | `pos_agent_forwarding_paused_by_storage` | gauge | 1 while the outbox cannot be written (disk full) |
 * | `pos_agent_forwarding_storage_pauses_total` | counter | times forwarding was paused by storage |
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { LinkHealth } from '../cloud-sync/mqtt-session.js';
import type { StoragePauseState } from './storage-guard.js';

/** Where the fault metrics come from; each callback is called once per scrape. */
export interface FaultMetricSources {
  /** The MQTT session's `health()`. */
  link: () => LinkHealth;
  /** agent/storage-guard.ts `StoragePauseWatch.state()`. */
  storage: () => StoragePauseState;
}

/**
 * Builds the fault metrics in a private registry.
 *
 * @returns `metrics()` resolving to Prometheus exposition text (no trailing content type: the
 *   caller appends it to the agent's own, same text format 0.0.4).
 */
export function createFaultMetrics(sources: FaultMetricSources): {
  metrics: () => Promise<string>;
} {
  const registry = new Registry();
  new Counter({
    name: 'pos_agent_link_losses_total',
    help: 'Broker connections lost since start, by reason: ping_timeout (silent partition), reset, closed',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const { losses } = sources.link();
      for (const reason of ['ping_timeout', 'reset', 'closed'] as const)
        this.inc({ reason }, losses[reason]);
    },
  });
  new Gauge({
    name: 'pos_agent_link_last_loss_silent_seconds',
    help: 'Seconds the broker had been silent when the last lost connection was noticed (0: none lost)',
    registers: [registry],
    collect() {
      this.set((sources.link().lastLoss?.silentForMs ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'pos_agent_link_notice_within_seconds',
    help: 'The longest a silent partition goes unnoticed: keep-alive plus ping timeout, seconds',
    registers: [registry],
    collect() {
      this.set(sources.link().noticeWithinMs / 1000);
    },
  });
  new Gauge({
    name: 'pos_agent_link_endpoint',
    help: 'Broker endpoints (cluster nodes) by URL: 1 for the one in use or being tried, 0 for the others',
    labelNames: ['endpoint'],
    registers: [registry],
    collect() {
      this.reset();
      const { endpoint, endpoints } = sources.link();
      for (const url of endpoints) this.set({ endpoint: url }, url === endpoint ? 1 : 0);
    },
  });
  new Counter({
    name: 'pos_agent_link_failovers_total',
    help: 'Broker connections made to another endpoint than the previous connection (failovers) since start',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.link().failovers);
    },
  });
  new Counter({
    name: 'pos_agent_link_reconnect_attempts_total',
    help: 'Broker reconnect attempts since start, every endpoint',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.link().reconnectAttempts);
    },
  });
  new Gauge({
    name: 'pos_agent_forwarding_paused_by_storage',
    help: '1 while forwarding is paused because the outbox cannot be written (disk full, I/O error)',
    registers: [registry],
    collect() {
      this.set(sources.storage().paused ? 1 : 0);
    },
  });
  new Counter({
    name: 'pos_agent_forwarding_storage_pauses_total',
    help: 'Times forwarding was paused by storage since start',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.storage().pauses);
    },
  });
  return { metrics: () => registry.metrics() };
}
