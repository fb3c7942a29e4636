/**
 * Retention's purge (issue 3 §8): settled payments leave the database, their chain links and
 * idempotency keys stay. {@link startRetention} (retention.ts) decides when; this does it.
 */
import { isoAt } from '../common/clock.js';
import { storeError } from './errors.js';
import type { StoreKernel } from './kernel.js';
import type { PurgeReport } from './model.js';
import type { PaymentRow } from './rows.js';
import { checkInteger } from './validate.js';

/**
 * Retention (issue 3 §8): purges the settled payments last changed before `before` — in a
 * final state (approved, declined, confirmed, reversed, canceled, failed) with every outbox
 * record acknowledged by the cloud (or none at all: declined or canceled before anything was
 * recorded). A payment stored, forwarded, dead-lettered or still in progress is never purged;
 * the schema refuses it too (migration 3 triggers).
 *
 * Per payment, in one transaction per batch of `batchSize`: a `purged_payments` tombstone (id,
 * idempotency key, final state, times — no card data, no amount), the link of each of its
 * events in `purged_events` (seq, prev_hash, hash), then its outbox records, events and row
 * are deleted. `secure_delete` zeroes the freed bytes in the database file, and the WAL is
 * checkpointed and truncated after the last batch, so the card token, first 6 / last 4 and
 * expiry of a purged payment are no longer in either file (PCI DSS 4.0.1 req. 3.5, 3.2.1).
 * `verifyChain()` still verifies: it checks a purged event's link, not its content.
 * A later request with a purged payment's idempotency key is refused (POS210), never charged
 * again.
 *
 * @param before — ISO 8601 UTC instant; e.g. now − `retention.acknowledgedDays`.
 * @param options.batchSize — payments per transaction, 1–10000, default 500: the write lock
 *   is held for one batch at a time, so payments of the POS app are not kept waiting.
 * @throws AgentError POS213 `before` is not an ISO 8601 UTC instant or batchSize out of range;
 *   POS207 SQLite could not write (nothing of the failed batch changed).
 */
export function purgeSettled(
  k: StoreKernel,
  before: string,
  options: { batchSize?: number } = {},
): PurgeReport {
  const batchSize = checkInteger('batchSize', options.batchSize ?? 500, 1, 10_000);
  if (
    typeof before !== 'string' ||
    Number.isNaN(Date.parse(before)) ||
    isoAt(Date.parse(before)) !== before
  ) {
    throw storeError(
      'POS213',
      `before ${JSON.stringify(String(before).slice(0, 40))} is not an ISO 8601 UTC instant; fix: pass e.g. new Date(ms).toISOString()`,
    );
  }
  const report: PurgeReport = { payments: 0, events: 0, before };
  for (;;) {
    const done = k.write(() => {
      const purgedAt = k.now();
      const rows = k.stmts.settledBefore.all(before, batchSize) as PaymentRow[];
      for (const row of rows) {
        const { seq } = k.stmts.lastOutboxSeqOf.get(row.id) as { seq: number | null };
        k.stmts.deleteSealed.run(row.id);
        k.stmts.insertPurgedPayment.run({
          id: row.id,
          idempotency_key: row.idempotency_key,
          state: row.state,
          created_at: row.created_at,
          updated_at: row.updated_at,
          purged_at: purgedAt,
          last_outbox_seq: seq,
        });
        k.stmts.keepLinks.run(row.id);
        k.stmts.deleteOutboxOf.run(row.id);
        report.events += k.stmts.deleteEventsOf.run(row.id).changes;
        // The ack events stay in the chain (they hold no card data); their index forgets it.
        k.stmts.deleteAckMembersOf.run(row.id);
        k.stmts.deletePayment.run(row.id);
        report.payments++;
      }
      return rows.length < batchSize;
    });
    if (done) break;
  }
  if (report.payments > 0) k.checkpointWal();
  return report;
}
