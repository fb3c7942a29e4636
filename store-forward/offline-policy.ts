/**
 * The offline policy (architecture.md §4, issue 3): when the agent may approve a payment without the
 * cloud, as a pure decision over the current offline exposure. The store calls it inside the
 * transaction that stores the payment, so two payments can never both take the last room under
 * a cap.
 *
 * Never a silent switch: a payment over a cap is declined with a named reason, and the POS app's
 * answer always says `approval: 'online' | 'offline'`.
 */

/** The caps of the offline policy; the agent's config section `offline` fills it in. */
export interface OfflinePolicy {
  /**
   * Largest amount one offline payment may have, per ISO 4217 currency, in integer minor units.
   * A currency that is not listed cannot be approved offline (`offline_amount_limit`).
   */
  perTransactionLimitMinor: Readonly<Record<string, number>>;
  /** Largest total of stored (not yet settled) offline payments per currency, minor units. */
  totalLimitMinor: Readonly<Record<string, number>>;
  /** Most stored offline payments at once, all currencies together. */
  maxCount: number;
  /**
   * Hours a stored payment may wait to reach the cloud (its `forwardingDeadlineAt`). Carried here
   * because it is configured with the caps (config `offline`), but the store takes it once, as
   * `PaymentStore.open`'s `forwardingDeadlineHours`; `storeOffline` does not read it per call.
   */
  forwardingDeadlineHours: number;
  /** Hours before the forwarding deadline at which the agent warns (status, log, queue). */
  warningBeforeDeadlineHours: number;
}

/** The offline exposure: approved offline, outcome from the issuer not yet known. */
export interface OfflineExposure {
  /** Number of such payments, all currencies. */
  count: number;
  /** Per currency: sum in minor units and count. */
  byCurrency: Record<string, { amountMinor: number; count: number }>;
  /** ISO 8601 UTC of the earliest forwarding deadline among them, or null. */
  earliestDeadlineAt: string | null;
}

/** Reasons a payment is declined locally by the offline policy. */
export type OfflineDeclineCode =
  'offline_amount_limit' | 'offline_total_limit' | 'offline_count_limit';

/** The decision of {@link decideOffline}. */
export type OfflineDecision =
  { ok: true } | { ok: false; code: OfflineDeclineCode; reason: string };

/**
 * May a payment of `amountMinor` `currency` be approved offline with `exposure` already stored?
 * Checks, in order: per-transaction cap, total cap of the currency, count cap.
 *
 * @param amountMinor — integer minor units.
 * @returns `{ ok: true }` or the first cap broken, with a sentence for the POS app's log.
 */
export function decideOffline(
  policy: OfflinePolicy,
  exposure: OfflineExposure,
  amountMinor: number,
  currency: string,
): OfflineDecision {
  const perTx = policy.perTransactionLimitMinor[currency];
  if (perTx === undefined || amountMinor > perTx) {
    return {
      ok: false,
      code: 'offline_amount_limit',
      reason:
        perTx === undefined
          ? `no offline limit is configured for ${currency}, so it cannot be approved offline`
          : `${amountMinor} ${currency} is over the offline limit of ${perTx} per payment`,
    };
  }
  const total = policy.totalLimitMinor[currency] ?? perTx;
  const stored = exposure.byCurrency[currency]?.amountMinor ?? 0;
  if (stored + amountMinor > total) {
    return {
      ok: false,
      code: 'offline_total_limit',
      reason: `${stored} ${currency} is already stored offline; ${amountMinor} more would pass the total offline limit of ${total}`,
    };
  }
  if (exposure.count + 1 > policy.maxCount) {
    return {
      ok: false,
      code: 'offline_count_limit',
      reason: `${exposure.count} payments are already stored offline, the limit is ${policy.maxCount}`,
    };
  }
  return { ok: true };
}
