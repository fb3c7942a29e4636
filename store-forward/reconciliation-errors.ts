/**
 * The error codes of reconciliation (POS6xx, issue 17, docs/error-codes.md): terminal batches,
 * their close, the match with the cloud's ledger and the exceptions a field tech resolves
 * (store-forward/batches.ts, docs/reconciliation.md).
 *
 * Each code is listed once here with its short name and its fix, so a code is never reused.
 * Messages name the batch, exception or payment (ids and idempotency keys, never card data) and
 * the fix.
 */
import {
  AgentError,
  errorRange,
  type AgentErrorOptions,
  type ErrorSpec,
} from '../common/agent-error.js';

/** Every reconciliation error code → its {@link ErrorSpec}. Adding a code is one entry here. */
export const RECONCILIATION_ERRORS = {
  POS601: {
    name: 'batch has unforwarded payments (close refused without --force)',
    fix: 'wait until the queue is forwarded ("pos-agent queue"), or close with --force, which lists the payments left out',
  },
  POS602: {
    name: 'batch has a payment in progress (close refused)',
    fix: 'let the payment in progress finish, then close again',
  },
  POS603: {
    name: 'batch not found',
    fix: 'list the batches with "pos-agent batch show --json" and use one of their ids',
  },
  POS604: {
    name: 'exception not found or already resolved',
    fix: 'list the open exceptions with "pos-agent batch exceptions" and use one of their ids',
  },
  POS605: {
    name: 'resolution not allowed for this exception kind',
    fix: 'use a resolution the runbook lists for this kind (docs/reconciliation.md)',
  },
  POS606: {
    name: 'resolution note missing or invalid',
    fix: 'give --note with what was checked, 1–500 characters',
  },
  POS607: {
    name: 'cloud batch answer malformed',
    fix: 'none on the terminal: the answer is dropped and the batch stays unmatched until the cloud answers again; report it to the cloud team',
  },
} as const satisfies Record<`POS6${number}`, ErrorSpec>;

/** One of the codes of {@link RECONCILIATION_ERRORS}. */
export type ReconciliationErrorCode = keyof typeof RECONCILIATION_ERRORS;

declare module '../common/agent-error.js' {
  interface ErrorFamilies {
    /** POS6xx, store-forward/reconciliation-errors.ts. */
    reconciliation: ReconciliationErrorCode;
  }
}

/** A reconciliation error (POS6xx). */
export const isReconciliationError = errorRange('POS6');

/**
 * Builds an {@link AgentError} with a reconciliation code.
 *
 * @param code — a code of {@link RECONCILIATION_ERRORS}.
 * @param message — what went wrong and the fix; never card data.
 * @param options.details — card-data-free context (batch id, exception id, keys, counts).
 */
export function reconError<C extends ReconciliationErrorCode>(
  code: C,
  message: string,
  options: AgentErrorOptions = {},
): AgentError<C> {
  return new AgentError(code, message, options);
}
