/**
 * The POS3xx error codes of cloud sync (docs/error-codes.md: one `const` table per folder, a code
 * is never reused).
 *
 * Ranges inside POS3xx:
 * - POS30x — the MQTT session (broker, publish, subscribe, topics).
 * - POS31x — signed envelopes and the wire schemas (architecture.md §5).
 * - POS32x — cloud commands and online authorization.
 * - POS33x — the sync worker's own configuration and lifecycle.
 */
import {
  AgentError,
  errorRange,
  type AgentErrorOptions,
  type ErrorSpec,
} from '../common/agent-error.js';

/**
 * Code → {@link ErrorSpec}. The message of each error names the value, the limit and the fix;
 * the spec's `fix` is the general one for docs/error-codes.md. Adding a code is one entry here.
 */
export const SYNC_ERRORS = {
  POS301: {
    name: 'broker unreachable',
    fix: 'check broker.url, the network, the CA and client certificate; payments continue offline within the limits',
  },
  POS302: {
    name: 'publish failed',
    fix: 'none needed: the record stays in the outbox and is sent again when the broker acknowledges',
  },
  POS303: {
    name: 'subscribe failed',
    fix: "check that the broker's ACL allows this client id its topics (deploy/mosquitto/); on RabbitMQ, the user's topic permissions, and for the cloud core's AMQP queue its configure/read/write permissions (deploy/rabbitmq-cluster.sh)",
  },
  POS304: {
    name: 'invalid device id or topic prefix',
    fix: 'use 1–128 characters of A–Z a–z 0–9 . _ : - in deviceId, and topic levels of letters, digits, - and _ in broker.topicPrefix',
  },
  POS305: { name: 'session closed', fix: 'create a new MQTT session; the agent does on restart' },
  POS310: {
    name: 'bad envelope',
    fix: 'send { v: 1, kid, body, sig } with body a JSON string (architecture.md §5)',
  },
  POS311: {
    name: 'bad signature',
    fix: "sign the body's UTF-8 bytes with the Ed25519 key named by kid; check the pinned cloud key",
  },
  POS312: {
    name: 'unknown key id',
    fix: "provision the sender's public key (pos-agent provision) or sign with a registered key",
  },
  POS313: {
    name: 'body fails schema',
    fix: 'send the body the contract describes (docs/asyncapi.json); the message lists the fields',
  },
  POS314: {
    name: 'message too large',
    fix: 'keep each message under sync.maxMessageBytes; send fewer records per batch',
  },
  POS315: {
    name: 'bad key material',
    fix: 'provision the key again; the message names the key and the length it must have',
  },
  POS320: {
    name: 'command expired',
    fix: 'issue the command again; check the clocks of the cloud and the terminal',
  },
  POS321: { name: 'command replayed', fix: 'issue a new command with a new id' },
  POS322: {
    name: 'command not yet valid',
    fix: 'check the clocks of the cloud and the terminal (NTP)',
  },
  POS323: {
    name: 'authorization timed out',
    fix: 'none at the terminal: the outcome is ambiguous and is settled when the cloud answers or the reversal is sent',
  },
  POS324: {
    name: 'command guard not persisted',
    fix: 'free disk space or fix the data directory; the cloud may resend the command',
  },
  POS325: {
    name: 'authorization not sent (offline)',
    fix: 'none: the payment is declined or stored offline by the offline policy; check the broker link',
  },
  POS326: {
    name: 'command for another device',
    fix: "address the command to this terminal's deviceId",
  },
  POS327: {
    name: 'command lifetime too long',
    fix: 'issue the command with a shorter expiresAt − issuedAt',
  },
  POS330: {
    name: 'invalid sync option',
    fix: 'correct the sync option the message names (unit and range)',
  },
  POS331: {
    name: 'sync worker stopped',
    fix: 'none: the agent is stopping; pending records stay in the outbox',
  },
} as const satisfies Record<`POS3${number}`, ErrorSpec>;

/** One of the POS3xx codes above. */
export type SyncErrorCode = keyof typeof SYNC_ERRORS;

declare module '../common/agent-error.js' {
  interface ErrorFamilies {
    /** POS3xx, cloud-sync/errors.ts. */
    sync: SyncErrorCode;
  }
}

/**
 * Builds an {@link AgentError} with a POS3xx code.
 *
 * @param code — a code of {@link SYNC_ERRORS}.
 * @param message — what went wrong, the value, the limit and the fix (never card data or keys).
 */
export function syncError<C extends SyncErrorCode>(
  code: C,
  message: string,
  options: AgentErrorOptions = {},
): AgentError<C> {
  return new AgentError(code, message, options);
}

/** Any cloud sync error (POS3xx). */
export const isSyncError = errorRange('POS3');
/** The MQTT session (POS30x): broker unreachable, publish or subscribe failed, topics, closed. */
export const isSessionError = errorRange('POS30');
/** A signed envelope or wire schema refused (POS31x). */
export const isEnvelopeError = errorRange('POS31');
/** A cloud command refused or online authorization failed (POS32x). */
export const isCommandError = errorRange('POS32');
