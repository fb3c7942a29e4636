/**
 * The error codes of reconciliation (`POS600`–`POS699`, issue 17): terminal batches, their close,
 * the match with the cloud's ledger and the exceptions a field tech resolves
 * (store-forward/batches.ts, docs/reconciliation.md).
 *
 * Each code is listed once here with a short name, so a code is never reused. Messages name the
 * batch, exception or payment (ids and idempotency keys, never card data) and the fix.
 */
import { AgentError } from '../common/agent-error.js';

/** Every reconciliation error code → its short name. */
export const RECONCILIATION_ERRORS = {
  POS601: 'batch has unforwarded payments (close refused without --force)',
  POS602: 'batch has a payment in progress (close refused)',
  POS603: 'batch not found',
  POS604: 'exception not found or already resolved',
  POS605: 'resolution not allowed for this exception kind',
  POS606: 'resolution note missing or invalid',
  POS607: 'cloud batch answer malformed',
} as const;

/** One of the codes of {@link RECONCILIATION_ERRORS}. */
export type ReconciliationErrorCode = keyof typeof RECONCILIATION_ERRORS;

/**
 * Builds an {@link AgentError} with a reconciliation code.
 *
 * @param code — a code of {@link RECONCILIATION_ERRORS}.
 * @param message — what went wrong and the fix; never card data.
 * @param options.details — card-data-free context (batch id, exception id, keys, counts).
 */
export function reconError(
  code: ReconciliationErrorCode,
  message: string,
  options: { cause?: unknown; details?: Record<string, unknown> } = {},
): AgentError {
  return new AgentError(code, message, options);
}
