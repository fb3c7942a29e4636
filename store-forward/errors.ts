/**
 * The error codes of store-and-forward (`POS200`–`POS299`, docs/internal-contracts.md).
 *
 * Each code is listed once here with a short name, so a code is never reused. Messages name the
 * offending value (never card data: the store only ever sees tokens, first 6 / last 4 and sealed
 * blobs, and even those are named by field, not echoed), the limit, and the fix.
 */
import { AgentError } from '../common/agent-error.js';

/** Every store-forward error code → its short name. */
export const STORE_ERRORS = {
  POS201: 'database cannot be opened',
  POS202: 'migration failed',
  POS203: 'database newer than this agent',
  POS204: 'not a pos-agent database',
  POS205: 'durability settings not applied',
  POS206: 'store is closed',
  POS207: 'storage write failed',
  POS208: 'database older than this agent (read-only open cannot migrate)',
  POS209: 'database damaged',
  POS210: 'idempotency key reused with other parameters',
  POS211: 'payment not found',
  POS212: 'illegal state change',
  POS213: 'invalid field',
  POS214: 'PAN-shaped text refused',
  POS215: 'unknown outbox key',
  POS220: 'hash chain broken',
  POS221: 'projection differs from events',
  POS222: 'value not representable in canonical JSON',
  POS230: 'write-ahead log damaged',
  POS231: 'store failed its integrity check; payments refused',
} as const;

/** One of the codes of {@link STORE_ERRORS}. */
export type StoreErrorCode = keyof typeof STORE_ERRORS;

/**
 * Builds an {@link AgentError} with a store-forward code.
 *
 * @param code — a code of {@link STORE_ERRORS}.
 * @param message — what went wrong, the value or limit, and the fix; never card data.
 * @param options.cause — the lower-level error (e.g. a `SqliteError`).
 * @param options.details — card-data-free structured context (field names, counts, versions).
 */
export function storeError(
  code: StoreErrorCode,
  message: string,
  options: { cause?: unknown; details?: Record<string, unknown> } = {},
): AgentError {
  return new AgentError(code, message, options);
}
