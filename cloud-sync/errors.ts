/**
 * The POS3xx error codes of cloud sync (docs/internal-contracts.md: one `const` table per
 * folder, a code is never reused).
 *
 * Ranges inside POS3xx:
 * - POS30x — the MQTT session (broker, publish, subscribe, topics).
 * - POS31x — signed envelopes and the wire schemas (architecture.md §5).
 * - POS32x — cloud commands and online authorization.
 * - POS33x — the sync worker's own configuration and lifecycle.
 */
import { AgentError } from '../common/agent-error.js';

/** Code → short name. The message of each error names the value, the limit and the fix. */
export const SYNC_ERROR_CODES = {
  /** The broker could not be reached (connection refused, TLS failure, CONNACK timeout). */
  POS301: 'broker unreachable',
  /** A PUBLISH was not acknowledged: not connected, connection closed before PUBACK, or refused. */
  POS302: 'publish failed',
  /** A SUBSCRIBE failed or the broker refused the subscription (SUBACK return code 0x80). */
  POS303: 'subscribe failed',
  /** A device id or topic prefix that is not a valid MQTT topic level or client id. */
  POS304: 'invalid device id or topic prefix',
  /** The session was used after `end()`. */
  POS305: 'session closed',
  /** The payload is not an envelope `{ v: 1, kid, body, sig }`, or its body is not JSON. */
  POS310: 'bad envelope',
  /** The Ed25519 signature does not verify over the body's UTF-8 bytes. */
  POS311: 'bad signature',
  /** The envelope names a key id that is not pinned/registered for this sender. */
  POS312: 'unknown key id',
  /** The body is JSON but fails the zod schema of the wire contract. */
  POS313: 'body fails schema',
  /** The message (or a single record) is larger than `maxMessageBytes`. */
  POS314: 'message too large',
  /** Key material of the wrong length or type. */
  POS315: 'bad key material',
  /** A cloud command past its `expiresAt`. */
  POS320: 'command expired',
  /** A cloud command whose id was already seen. */
  POS321: 'command replayed',
  /** A cloud command issued too far in the future (clock skew beyond the allowance). */
  POS322: 'command not yet valid',
  /** No authorization response from the cloud within the timeout (ambiguous outcome, architecture.md §5). */
  POS323: 'authorization timed out',
  /** The ids of accepted cloud commands could not be persisted; the command is refused. */
  POS324: 'command guard not persisted',
  /**
   * Online authorization not sent: the link to the broker is down, nothing left the terminal,
   * so — unlike POS323 or a POS302 after sending — the outcome is known: not authorized.
   */
  POS325: 'authorization not sent (offline)',
  /** A cloud command bound to another device id, or to none (issue 11: commands are per device). */
  POS326: 'command for another device',
  /** A cloud command whose lifetime (`expiresAt` − `issuedAt`) is over the allowed maximum. */
  POS327: 'command lifetime too long',
  /** Invalid sync worker option (unit and range in the message). */
  POS330: 'invalid sync option',
  /** The sync worker was stopped while the operation was pending. */
  POS331: 'sync worker stopped',
} as const;

/** One of the POS3xx codes above. */
export type SyncErrorCode = keyof typeof SYNC_ERROR_CODES;

/**
 * Builds an {@link AgentError} with a POS3xx code.
 *
 * @param code — a code of {@link SYNC_ERROR_CODES}.
 * @param message — what went wrong, the value, the limit and the fix (never card data or keys).
 */
export function syncError(
  code: SyncErrorCode,
  message: string,
  options: { cause?: unknown; details?: Record<string, unknown> } = {},
): AgentError {
  return new AgentError(code, message, options);
}
