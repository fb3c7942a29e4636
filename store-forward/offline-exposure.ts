/**
 * The offline exposure as the store reads it (architecture.md §4): payments approved offline
 * whose issuer outcome is not known yet, summed per currency, and the ones whose forwarding
 * deadline is near. Read inside the caller's transaction, so the offline approval decides on the
 * exposure it commits with (offline-policy.ts).
 */
import type { StoreKernel } from './kernel.js';
import type { Payment } from './model.js';
import type { OfflineExposure } from './offline-policy.js';
import { toPayment, type PaymentRow } from './rows.js';

/** The offline exposure now, read with the kernel's statements in the caller's transaction. */
export function readOfflineExposure(k: StoreKernel): OfflineExposure {
  const exposure: OfflineExposure = { count: 0, byCurrency: {}, earliestDeadlineAt: null };
  for (const row of k.stmts.offlineExposure.all() as {
    currency: string;
    n: number;
    total: number;
    deadline: string | null;
  }[]) {
    exposure.count += row.n;
    exposure.byCurrency[row.currency] = { amountMinor: row.total, count: row.n };
    if (
      row.deadline !== null &&
      (exposure.earliestDeadlineAt === null || row.deadline < exposure.earliestDeadlineAt)
    ) {
      exposure.earliestDeadlineAt = row.deadline;
    }
  }
  return exposure;
}

/**
 * Offline payments still to settle whose forwarding deadline is at or before `untilAt`
 * (ISO 8601 UTC), earliest first, at most 100; in the caller's transaction.
 */
export function readDeadlineWarnings(k: StoreKernel, untilAt: string): Payment[] {
  return (k.stmts.deadlineWarnings.all(untilAt) as PaymentRow[]).map(toPayment);
}
