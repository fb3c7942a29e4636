/**
 * Error codes of the agent's own areas (architecture.md §8): `POS4xx` local API and CLI commands
 * that talk to it, `POS5xx` config, keys, provisioning, doctor and cloud commands. Every code is
 * listed once here so that none is reused.
 *
 * This file also assembles {@link ERROR_TABLE}, the union of all four folder tables (only
 * `agent/` may import every folder, eslint.config.js), read by the local API for HTTP statuses
 * ({@link httpStatus}) and by `npm run contracts` for docs/error-codes.md.
 */
import {
  AgentError,
  errorRange,
  type AgentErrorOptions,
  type ErrorCode,
  type ErrorSpec,
} from '../common/agent-error.js';
import { SYNC_ERRORS } from '../cloud-sync/errors.js';
import { DRIVER_ERRORS } from '../drivers/errors.js';
import { STORE_ERRORS } from '../store-forward/errors.js';
import { RECONCILIATION_ERRORS } from '../store-forward/reconciliation-errors.js';

/**
 * Code → {@link ErrorSpec} of the agent's own codes. Adding a code is one entry here; `status`
 * on every code the local API answers with.
 */
export const AGENT_ERRORS = {
  POS400: {
    name: 'bad request',
    fix: 'correct the request: the message and details.problems list every field and header at fault',
    status: 400,
  },
  POS401: {
    name: 'unauthorized',
    fix: 'send "Authorization: Bearer <token>" with the token from the api.token file of the keys directory',
    status: 401,
  },
  POS402: {
    name: 'too many failed attempts',
    fix: 'wait for the Retry-After delay, then send the right bearer token',
    status: 429,
  },
  POS403: {
    name: 'forbidden address',
    fix: 'call the API from the terminal itself (loopback) or through api.socketPath',
    status: 403,
  },
  POS404: { name: 'payment not found', fix: 'check the payment id', status: 404 },
  POS405: {
    name: 'route not found',
    fix: 'use a route of GET /openapi.json (docs/openapi.json)',
    status: 404,
  },
  POS406: {
    name: 'Idempotency-Key missing',
    fix: 'send a new UUID as Idempotency-Key per payment and the same one on every retry of it',
    status: 400,
  },
  POS407: {
    name: 'cross-origin request',
    fix: 'call the API without an Origin header from the POS app, or open the status page with "pos-agent open"',
    status: 403,
  },
  POS408: {
    name: 'status page session expired',
    fix: 'run "pos-agent open" for a new login link',
    status: 401,
  },
  POS409: {
    name: 'idempotency conflict',
    fix: 'send a new Idempotency-Key for a new payment; resend the original parameters to retry the old one',
    status: 409,
  },
  POS410: {
    name: 'terminal busy',
    fix: 'wait for the current payment to finish or cancel it, then retry',
    status: 409,
  },
  POS420: {
    name: 'card read failed',
    fix: 'ask the customer to present the card again or use another card; the message names the reason',
    status: 422,
  },
  POS430: {
    name: 'PIN pad unavailable',
    fix: 'connect the PIN pad (or fix pinPad.path); GET /v1/status shows its state',
    status: 503,
  },
  POS431: {
    name: 'agent stopping',
    fix: 'retry once the agent runs again',
    status: 503,
  },
  POS440: {
    name: 'agent not answering',
    fix: 'start the agent ("pos-agent run --config FILE") or check api.host and api.port in the config',
  },
  POS441: {
    name: 'API on a UNIX socket only',
    fix: 'remove api.socketPath to serve the status page over loopback HTTP',
  },
  POS499: {
    name: 'internal error',
    fix: 'look up the request id in the agent log and report it',
    status: 500,
  },
  POS501: {
    name: 'bad config',
    fix: 'correct the config file: the message lists every problem with its key',
  },
  POS502: {
    name: 'bad key file',
    fix: 'provision the keys again ("pos-agent provision"); the message names the file',
  },
  POS503: {
    name: 'bad directory',
    fix: 'create the data or keys directory, owned by and writable for the agent user',
  },
  POS504: {
    name: 'provisioning input invalid',
    fix: 'correct the values "pos-agent provision" lists, each with its fix',
  },
  POS505: {
    name: 'provisioning failed',
    fix: 'install openssl, check the claim code and the network to the cloud, then run it again',
  },
  POS507: {
    name: 'cloud command failed',
    fix: 'correct the command arguments or the file permissions the message names; the cloud may resend it',
  },
  POS508: {
    name: 'secret file readable',
    fix: 'chmod 600 the file (config, key or TLS key) the message names',
  },
  POS509: {
    name: 'database damaged',
    fix: 'stop the agent and restore the database (docs/field-guide.md)',
  },
  POS510: {
    name: 'offline limits file bad',
    fix: 'delete the offline limits file; the cloud sends it again',
  },
  POS511: {
    name: 'dead records',
    fix: 'fix what the cloud refused, then "pos-agent queue --retry"',
  },
  POS512: {
    name: 'disk space low',
    fix: "free disk space on the data directory's file system",
  },
  POS513: { name: 'clock wrong', fix: 'set the system clock (enable NTP)' },
  POS514: {
    name: 'broker plaintext',
    fix: 'use mqtts:// with TLS outside a development setup',
  },
  POS515: {
    name: 'broker TLS failed',
    fix: 'check the CA, the broker host name and the client certificate',
  },
  POS516: {
    name: 'certificate validity',
    fix: 'renew the certificate before it expires ("pos-agent provision")',
  },
  POS517: {
    name: 'token key unprotected',
    fix: 'provide the host key-encryption key outside the data and keys folders (docs/security.md)',
  },
} as const satisfies Record<`POS${'4' | '5'}${number}`, ErrorSpec>;

/** One of the codes of {@link AGENT_ERRORS}. */
export type AgentErrorCode = keyof typeof AGENT_ERRORS;

declare module '../common/agent-error.js' {
  interface ErrorFamilies {
    /** POS4xx and POS5xx, agent/errors.ts. */
    agent: AgentErrorCode;
  }
}

/**
 * Builds an {@link AgentError} with a code of {@link AGENT_ERRORS}.
 *
 * @param code — a POS4xx or POS5xx code.
 * @param message — what went wrong, the value or limit, and the fix; never card data or keys.
 */
export function agentError<C extends AgentErrorCode>(
  code: C,
  message: string,
  options: AgentErrorOptions = {},
): AgentError<C> {
  return new AgentError(code, message, options);
}

/** A local API error (POS4xx). */
export const isApiError = errorRange('POS4');
/** A config, keys, provisioning, doctor or cloud command error (POS5xx). */
export const isConfigError = errorRange('POS5');

/** Every code of the agent, all folders: `code → spec`, in code order. */
export const ERROR_TABLE: Readonly<Record<ErrorCode, ErrorSpec>> = {
  ...DRIVER_ERRORS,
  ...STORE_ERRORS,
  ...SYNC_ERRORS,
  ...AGENT_ERRORS,
  ...RECONCILIATION_ERRORS,
};

/**
 * The HTTP status the local API answers with for `code`: the table's `status`, else 500 (a code
 * the API is not meant to return is the agent's fault, not the caller's).
 */
export function httpStatus(code: ErrorCode): number {
  // The error handler must answer even for a code that reached it past the type (a cast, a
  // deserialized error): unknown codes are 500, as before the tables.
  return Object.hasOwn(ERROR_TABLE, code) ? (ERROR_TABLE[code].status ?? 500) : 500;
}

export type { ErrorCode };
