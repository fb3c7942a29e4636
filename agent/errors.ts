/**
 * Error codes of the agent's own areas (architecture.md §8): `POS4xx` local API, `POS5xx` config,
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
  /** doctor: a secret file (config, key, TLS key) is readable by group or others. */
  POS508: 'secret_file_readable',
  /** doctor: the database file is damaged (bad header or SQLite quick_check fails). */
  POS509: 'database_damaged',
  /** doctor: the cloud's offline limits file in the data directory is not JSON. */
  POS510: 'offline_limits_file_bad',
  /** doctor: outbox records are dead (refused by the cloud) and wait for `queue --retry`. */
  POS511: 'dead_records',
  /** doctor: too little free disk space to store payments while offline. */
  POS512: 'disk_space_low',
  /** doctor: the system clock cannot be right. */
  POS513: 'clock_wrong',
  /** doctor: the broker URL is plaintext mqtt:// (a development setup). */
  POS514: 'broker_plaintext',
  /** doctor: the TLS handshake with the broker failed (CA, host name, client certificate). */
  POS515: 'broker_tls_failed',
  /** doctor: a certificate has expired, is not valid yet, or expires within 30 days. */
  POS516: 'certificate_validity',
  /**
   * The token key cannot be protected or opened: no host key-encryption key (or the wrong one),
   * or a host key inside the data or keys folder (issue 11, docs/security.md).
   */
  POS517: 'token_key_unprotected',
} as const;

/** One of the codes above. */
export type AgentErrorCode = keyof typeof AGENT_ERRORS;
