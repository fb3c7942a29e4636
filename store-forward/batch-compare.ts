/**
 * The comparison of a batch with the cloud's answer (issue 17, docs/reconciliation.md), pure: the
 * reconciliation state of a payment, totals of payment lines, and the findings that become
 * exceptions.
 *
 * Comparison rules (the agent's view is the payment's state once every record of the batch sent
 * before the report is acknowledged; a void queued after the report counts as not yet there):
 *
 * | here \ cloud            | charged                   | declined / voided | absent              |
 * |-------------------------|---------------------------|-------------------|---------------------|
 * | charged                 | amount_differs if amounts | state_differs     | missing_at_cloud    |
 * | not charged             | charged_declined_here     | —                 | —                   |
 * | absent                  | missing_here              | —                 | —                   |
 */
import { CLOUD_STATES, isCharged, totalsOf } from '../common/reconciliation.js';
import type { CloudBatchAnswer, ExceptionKind } from './batch-types.js';
import { canonicalJson } from './hash-chain.js';
import type { PaymentState, ReconState } from './model.js';

/** The reconciliation state of a payment (see `RECON_STATES`, common/reconciliation.ts). */
export function reconStateOf(payment: {
  state: PaymentState;
  approval?: 'online' | 'offline' | null | undefined;
}): ReconState {
  switch (payment.state) {
    case 'approved':
      // Online approvals always carry approval `online`; a payment stored without one (the
      // walking skeleton's createPayment) was approved offline.
      return payment.approval === 'online' ? 'approved_online' : 'approved_offline';
    case 'confirmed':
      return payment.approval === 'online' ? 'approved_online' : 'approved_offline';
    case 'stored':
    case 'forwarded':
      return 'pending_forward';
    case 'declined':
      return 'declined';
    case 'reversed':
      return 'reversed';
    case 'canceled':
      return payment.approval === undefined || payment.approval === null
        ? 'not_completed'
        : 'voided';
    default:
      return 'not_completed';
  }
}

/** One finding of {@link compareBatch}. */
export interface Finding {
  kind: ExceptionKind;
  key: string | null;
  paymentId: string | null;
  detail: Record<string, unknown>;
}

/**
 * Compares the agent's view of a batch with the cloud's answer, per payment (idempotency key,
 * amount, state: the table in the file comment) and per currency and brand of the charged
 * payments; a totals difference that no payment explains is `totals_differ`.
 */
export function compareBatch(
  here: ReadonlyArray<{
    key: string;
    paymentId: string | null;
    amountMinor: number;
    currency: string;
    brand?: string | undefined;
    state: ReconState;
  }>,
  cloud: CloudBatchAnswer,
): Finding[] {
  const findings: Finding[] = [];
  const there = new Map(cloud.payments.map((p) => [p.key, p]));
  const side = (p: { amountMinor: number; currency: string; state: string }) => ({
    amountMinor: p.amountMinor,
    currency: p.currency,
    state: p.state,
  });
  for (const mine of here) {
    const theirs = there.get(mine.key);
    there.delete(mine.key);
    const charged = isCharged(mine.state);
    const base = { key: mine.key, paymentId: mine.paymentId };
    if (theirs === undefined) {
      if (charged)
        findings.push({ ...base, kind: 'missing_at_cloud', detail: { here: side(mine) } });
      continue;
    }
    const detail = { here: side(mine), cloud: side(theirs) };
    const cloudCharged = theirs.state === 'charged';
    if (charged && cloudCharged) {
      if (theirs.amountMinor !== mine.amountMinor || theirs.currency !== mine.currency) {
        findings.push({ ...base, kind: 'amount_differs', detail });
      }
    } else if (charged && !cloudCharged) {
      findings.push({ ...base, kind: 'state_differs', detail });
    } else if (!charged && cloudCharged) {
      findings.push({ ...base, kind: 'charged_declined_here', detail });
    }
  }
  for (const theirs of there.values()) {
    if (theirs.state === 'charged') {
      findings.push({
        kind: 'missing_here',
        key: theirs.key,
        paymentId: null,
        detail: { cloud: side(theirs) },
      });
    }
  }
  if (findings.length === 0) {
    const mine = totalsOf(here);
    const theirs = cloud.totals;
    if (
      canonicalJson(mine.byCurrency) !== canonicalJson(theirs.byCurrency) ||
      canonicalJson(mine.byBrand) !== canonicalJson(theirs.byBrand)
    ) {
      findings.push({
        kind: 'totals_differ',
        key: null,
        paymentId: null,
        detail: {
          here: { byCurrency: mine.byCurrency, byBrand: mine.byBrand },
          cloud: { byCurrency: theirs.byCurrency, byBrand: theirs.byBrand },
        },
      });
    }
  }
  return findings;
}

/**
 * Light shape check of the cloud's answer (the envelope was verified, the schema parsed it).
 *
 * @returns what is wrong, in a sentence, or `undefined` when the answer has the shape of a
 *   {@link CloudBatchAnswer}.
 */
export function answerProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'the answer has no batch totals';
  const a = value as Partial<CloudBatchAnswer>;
  if (typeof a.id !== 'string') return 'the answer names no batch';
  if (typeof a.totals !== 'object' || a.totals === null) return 'the answer has no totals';
  if (!Array.isArray(a.payments)) return 'the answer has no payments list';
  for (const p of a.payments) {
    if (
      typeof p?.key !== 'string' ||
      !Number.isSafeInteger(p.amountMinor) ||
      typeof p.currency !== 'string' ||
      !(CLOUD_STATES as readonly string[]).includes(p.state)
    ) {
      return 'a payment of the answer is malformed';
    }
  }
  return undefined;
}
