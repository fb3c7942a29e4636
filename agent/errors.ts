/**
 * Error codes of the agent's own areas (DESIGN §8): `POS4xx` local API, `POS5xx` config,
 * keys and provisioning. Every code is listed once here so that none is reused.
 */
export const AGENT_ERRORS = {
  /** The request body or query failed validation; the message lists every problem. */
  POS400: 'bad_request',
  /** Missing or wrong bearer token. */
  POS401: 'unauthorized',
  /** Too many failed token attempts from this client; retry after the delay in the message. */
  POS402: 'too_many_failed_attempts',
  /** The request did not come from loopback or the UNIX socket. */
  POS403: 'forbidden_address',
  /** No payment with that id. */
  POS404: 'payment_not_found',
  /** No such route in the local API. */
  POS405: 'route_not_found',
  /** The idempotency key was used before with other parameters. */
  POS409: 'idempotency_conflict',
  /** The PIN pad is busy with another payment. */
  POS410: 'terminal_busy',
  /** The card could not be read or was refused at the card boundary; names the reason. */
  POS420: 'card_read_failed',
  /** The PIN pad is not connected. */
  POS430: 'pin_pad_unavailable',
  /** The agent is stopping: no new payment is started; retry once it runs again. */
  POS431: 'agent_stopping',
  /** Unexpected failure inside the agent; details are in the log under the request id. */
  POS499: 'internal_error',
  /** The config file is missing, not JSON, or fails the schema; every problem is listed. */
  POS501: 'bad_config',
  /** A key file is missing, unreadable or of the wrong length. */
  POS502: 'bad_key_file',
  /** The data or keys directory cannot be created or written. */
  POS503: 'bad_directory',
  /** `pos-agent provision` was given invalid values; every problem is listed with its fix. */
  POS504: 'provisioning_invalid',
  /** A provisioning step failed (openssl missing or failing, claim not answered). */
  POS505: 'provisioning_failed',
  /** `pos-agent doctor` found problems; each is listed with its fix. */
  POS506: 'doctor_problems',
  /** A verified cloud command could not be applied (bad arguments, cannot write its file). */
  POS507: 'command_failed',
  /**
   * The token key cannot be protected or opened: no host key-encryption key (or the wrong one),
   * or a host key inside the data or keys folder (issue 11, docs/security.md).
   */
  POS508: 'token_key_unprotected',
} as const;

/** One of the codes above. */
export type AgentErrorCode = keyof typeof AGENT_ERRORS;
