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
