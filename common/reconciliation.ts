/**
 * The reconciliation vocabulary the store and the wire share (issue 17, docs/reconciliation.md):
 * how a payment counts in a terminal batch. store-forward/model.ts and cloud-sync/schemas.ts use
 * this list; neither defines its own (issue 15: one vocabulary, in `common/`).
 *
 * - `approved_online`: approved by the cloud while the customer waited;
 * - `approved_offline`: approved by the offline policy and acknowledged;
 * - `pending_forward`: stored or forwarded, not yet acknowledged;
 * - `declined`;
 * - `reversed`: an offline approval the issuer declined afterwards;
 * - `voided`: canceled after an approval;
 * - `not_completed`: canceled before an approval, failed, or still in progress.
 */
export const RECON_STATES = [
  'approved_online',
  'approved_offline',
  'pending_forward',
  'declined',
  'reversed',
  'voided',
  'not_completed',
] as const;

/** One of {@link RECON_STATES}. */
export type ReconState = (typeof RECON_STATES)[number];

/**
 * The cloud's state of a payment in its answer to a batch report: `charged` (approved and not
 * voided), `declined`, `voided`. The store compares against it (store-forward/batch-compare.ts),
 * the wire schema checks it (cloud-sync/schemas.ts) and the simulator's ledger answers with it.
 */
export const CLOUD_STATES = ['charged', 'declined', 'voided'] as const;

/** One of {@link CLOUD_STATES}. */
export type CloudState = (typeof CLOUD_STATES)[number];

/** A count and a sum of integer minor units (of one currency). */
export interface Amounts {
  count: number;
  /** Integer minor units. */
  amountMinor: number;
}

/**
 * The totals of a batch (issue 17): `count` payments in all; `byCurrency` the charged payments
 * (see {@link isCharged}) per ISO 4217 currency; `byBrand` the same per card brand and currency;
 * `byState` every payment per state and currency. The agent's states are {@link RECON_STATES};
 * the cloud's answer uses {@link CLOUD_STATES}.
 */
export interface BatchTotals {
  count: number;
  byCurrency: Record<string, Amounts>;
  byBrand: Record<string, Record<string, Amounts>>;
  byState: Record<string, Record<string, Amounts>>;
}

/**
 * True for the states in which money is taken: the agent's approved online, approved offline
 * and pending forward; the cloud's `charged`.
 */
export function isCharged(state: string): boolean {
  return (
    state === 'charged' ||
    state === 'approved_online' ||
    state === 'approved_offline' ||
    state === 'pending_forward'
  );
}

function add(map: Record<string, Amounts>, key: string, amountMinor: number, count: number): void {
  const known = map[key] ?? { count: 0, amountMinor: 0 };
  known.count += count;
  known.amountMinor += amountMinor;
  map[key] = known;
}

/**
 * Totals of payment lines, the agent's report or the cloud's answer alike: all of them in
 * `count` and `byState`; the charged ones (see {@link isCharged}) in `byCurrency` and `byBrand`
 * (a line without a brand counts as `unknown`).
 *
 * @param lines — `amountMinor` integer minor units of `currency` (ISO 4217); `count` how many
 *   payments the line stands for (a grouped line), default 1.
 */
export function totalsOf(
  lines: ReadonlyArray<{
    amountMinor: number;
    currency: string;
    brand?: string | undefined;
    state: string;
    count?: number;
  }>,
): BatchTotals {
  const totals: BatchTotals = { count: 0, byCurrency: {}, byBrand: {}, byState: {} };
  for (const line of lines) {
    const n = line.count ?? 1;
    totals.count += n;
    add((totals.byState[line.state] ??= {}), line.currency, line.amountMinor, n);
    if (!isCharged(line.state)) continue;
    add(totals.byCurrency, line.currency, line.amountMinor, n);
    add((totals.byBrand[line.brand ?? 'unknown'] ??= {}), line.currency, line.amountMinor, n);
  }
  return totals;
}
