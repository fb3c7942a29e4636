/**
 * The offline exposure as the store reads it (architecture.md §4): payments approved offline
 * whose issuer outcome is not known yet, summed per currency, and the ones whose forwarding
 * deadline is near. Read inside the caller's transaction, so the offline approval decides on the
 * exposure it commits with (offline-policy.ts).
 *
 * The sums are a running total (table `offline_exposure`, migration 6) that triggers on
 * `payments` keep in the transaction of every change, so a payment's decision costs the same
 * after a long outage as on an empty store; {@link checkOfflineExposure} compares it with the
 * payments in the integrity pass.
 */
import type { StoreKernel } from './kernel.js';
import type { Payment } from './model.js';
import type { OfflineExposure } from './offline-policy.js';
import { toPayment, type PaymentRow } from './rows.js';

/** A row of the exposure per currency: `n` payments, `total` integer minor units. */
interface ExposureRow {
  currency: string;
  n: number;
  total: number;
}

/**
 * The offline exposure now, read with the kernel's statements in the caller's transaction.
 *
 * @param options.withDeadline — also read the earliest forwarding deadline (one index entry);
 *   default true. The offline decision does not need it (`earliestDeadlineAt` is then null).
 */
export function readOfflineExposure(
  k: StoreKernel,
  options: { withDeadline?: boolean } = {},
): OfflineExposure {
  const exposure: OfflineExposure = { count: 0, byCurrency: {}, earliestDeadlineAt: null };
  for (const row of k.stmts.offlineExposure.all() as ExposureRow[]) {
    if (row.n === 0 && row.total === 0) continue; // every payment of it settled
    exposure.count += row.n;
    exposure.byCurrency[row.currency] = { amountMinor: row.total, count: row.n };
  }
  if (options.withDeadline !== false && exposure.count > 0) {
    const first = k.stmts.offlineEarliestDeadline.get() as { deadline: string | null } | undefined;
    exposure.earliestDeadlineAt = first?.deadline ?? null;
  }
  return exposure;
}

/**
 * The integrity pass's check of the running total: counts the open offline approvals per
 * currency from the payments (the partial index `payments_offline_open`, no table reads) and
 * compares count and sum with `offline_exposure`. Runs in its own read transaction. It reads the
 * open offline approvals only, which the policy's count cap bounds (config `offline.maxCount`,
 * default 500, at most 100,000: ~20 ms warm), so the start-up check stays bounded by the
 * config, not by history.
 *
 * @returns problem sentences ending in `(POS221)`, one per currency that differs; empty when
 *   they agree.
 */
export function checkOfflineExposure(k: StoreKernel): string[] {
  return k.read(() => {
    const counted = new Map<string, ExposureRow>();
    for (const row of k.stmts.offlineExposureCounted.all() as ExposureRow[]) {
      counted.set(row.currency, row);
    }
    const kept = new Map<string, ExposureRow>();
    for (const row of k.stmts.offlineExposure.all() as ExposureRow[]) kept.set(row.currency, row);
    const problems: string[] = [];
    for (const currency of [...new Set([...counted.keys(), ...kept.keys()])].sort()) {
      const c = counted.get(currency) ?? { n: 0, total: 0 };
      const r = kept.get(currency) ?? { n: 0, total: 0 };
      if (c.n === r.n && c.total === r.total) continue;
      problems.push(
        `offline exposure of ${currency}: the running total says ${r.n} payments, ${r.total} ` +
          `minor units, the payments say ${c.n}, ${c.total}; the offline caps were decided on ` +
          'the wrong total (POS221)',
      );
    }
    return problems;
  });
}

/**
 * Offline payments still to settle whose forwarding deadline is at or before `untilAt`
 * (ISO 8601 UTC), earliest first, at most 100; in the caller's transaction.
 */
export function readDeadlineWarnings(k: StoreKernel, untilAt: string): Payment[] {
  return (k.stmts.deadlineWarnings.all(untilAt) as PaymentRow[]).map(toPayment);
}
