/**
 * The error codes of store-and-forward (POS2xx, docs/error-codes.md).
 *
 * Each code is listed once here with its short name, its fix and, where the local API answers
 * with it, its HTTP status, so a code is never reused. Messages name the offending value (never
 * card data: the store only ever sees tokens, first 6 / last 4 and sealed blobs, and even those
 * are named by field, not echoed), the limit, and the fix.
 *
 * Ranges inside POS2xx: POS20x the database file and its schema, POS21x payments and the outbox,
 * POS22x the hash chain and projection, POS23x storage damage found at start or by the guard.
 */
import {
  AgentError,
  errorRange,
  type AgentErrorOptions,
  type ErrorSpec,
} from '../common/agent-error.js';

/**
 * Every store-forward error code → its {@link ErrorSpec}. Adding a code is one entry here;
 * `status` only where the local API answers with the code.
 */
export const STORE_ERRORS = {
  POS201: {
    name: 'database cannot be opened',
    fix: 'check that dataDir exists and is writable by the agent user, and that the disk is mounted',
  },
  POS202: {
    name: 'migration failed',
    fix: 'restore the database from the last backup or run the agent version that wrote it; the message names the step',
  },
  POS203: {
    name: 'database newer than this agent',
    fix: 'install the agent version that wrote the database (or newer); never downgrade over stored payments',
  },
  POS204: {
    name: 'not a pos-agent database',
    fix: "point dataDir at the agent's own data directory; move the foreign file away",
  },
  POS205: {
    name: 'durability settings not applied',
    fix: 'put the database on a local file system that supports WAL and fsync (not in memory, not a network share)',
  },
  POS206: {
    name: 'store is closed',
    fix: 'open a new PaymentStore; the agent restarts it on its own',
  },
  POS207: {
    name: 'storage write failed',
    fix: 'free disk space or fix the disk; retry after the Retry-After delay',
    status: 503,
  },
  POS208: {
    name: 'database older than this agent (read-only open cannot migrate)',
    fix: 'start the agent once so that it migrates the database, then run the command again',
  },
  POS209: {
    name: 'database damaged',
    fix: 'stop the agent and restore the database (docs/field-guide.md); "pos-agent verify" shows the damage',
    status: 503,
  },
  POS210: {
    name: 'idempotency key reused with other parameters',
    fix: 'send a new Idempotency-Key for a new payment; resend the original parameters to retry the old one',
    status: 409,
  },
  POS211: { name: 'payment not found', fix: 'check the payment id', status: 404 },
  POS212: {
    name: 'illegal state change',
    fix: 'read the payment first: the change is not allowed from its current state',
    status: 409,
  },
  POS213: { name: 'invalid field', fix: 'correct the field the message names', status: 400 },
  POS214: {
    name: 'PAN-shaped text refused',
    fix: 'never put card numbers in references or keys; send a reference without a 12–19 digit run',
    status: 400,
  },
  POS215: {
    name: 'unknown outbox key',
    fix: 'list the dead records with "pos-agent queue" and use one of their keys',
  },
  POS220: {
    name: 'hash chain broken',
    fix: 'the event log was edited or damaged: keep the file for analysis, and call support before taking payments',
  },
  POS221: {
    name: 'projection differs from events',
    fix: 'stop the agent and rebuild the projection from the events (support procedure); "pos-agent verify" names the payment',
  },
  POS222: {
    name: 'value not representable in canonical JSON',
    fix: 'store strings, safe integers, booleans, null, arrays and plain objects only',
  },
  POS230: {
    name: 'write-ahead log damaged',
    fix: 'stop the agent and restore the database with its WAL (docs/field-guide.md)',
    status: 503,
  },
  POS231: {
    name: 'store failed its integrity check; payments refused',
    fix: 'restore the database (docs/field-guide.md); payments are refused until it passes "pos-agent verify"',
    status: 503,
  },
} as const satisfies Record<`POS2${number}`, ErrorSpec>;

/** One of the codes of {@link STORE_ERRORS}. */
export type StoreErrorCode = keyof typeof STORE_ERRORS;

declare module '../common/agent-error.js' {
  interface ErrorFamilies {
    /** POS2xx, store-forward/errors.ts. */
    store: StoreErrorCode;
  }
}

/**
 * Builds an {@link AgentError} with a store-forward code.
 *
 * @param code — a code of {@link STORE_ERRORS}.
 * @param message — what went wrong, the value or limit, and the fix; never card data.
 * @param options.cause — the lower-level error (e.g. a `SqliteError`).
 * @param options.details — card-data-free structured context (field names, counts, versions).
 */
export function storeError<C extends StoreErrorCode>(
  code: C,
  message: string,
  options: AgentErrorOptions = {},
): AgentError<C> {
  return new AgentError(code, message, options);
}

/** Any store-forward error (POS2xx). */
export const isStoreError = errorRange('POS2');
/** The database file or its schema (POS20x): open, migrate, durability, closed, write failed. */
export const isDatabaseError = errorRange('POS20');
