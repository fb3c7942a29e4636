/**
 * Applying cloud commands (architecture.md §5 `down/commands`, issue 5) and reporting each result on
 * `{p}/{d}/up/command-results`.
 *
 * ```
 * down/commands ─► SyncWorker: verify signature (pinned cloud key) → schema → CommandGuard
 *                  (expiry, replay, clock skew) ─► 'command' ─► CloudCommands.apply ─► result
 *                                                └► 'rejected-downlink' ─► counted, logged
 * ```
 * - A command whose signature does not verify (POS311), whose key id is not pinned (POS312),
 *   that is not an envelope (POS310) or fails the schema (POS313) is counted and logged, and
 *   **not** answered: its content is unauthenticated, and answering would let anyone make the
 *   terminal publish.
 * - A verified command refused as expired (POS320), replayed (POS321) or not yet valid (POS322)
 *   is answered `refused` with its code. Nothing is applied in either case.
 * - A verified, fresh command is applied and answered `applied` (with data) or `failed`.
 *
 * Commands:
 * - `set_log_level` — pino's `logger.level`, effective at once, until the next restart.
 * - `set_offline_limits` — merged into `DATA_DIR/offline-limits.json` (0600, atomic rename);
 *   {@link loadOfflineLimitOverrides} (agent/command-files.ts) reads it. The agent applies these values over the config
 *   file's `offline` section at start-up and whenever {@link CloudCommands} emits
 *   `offline-limits` ({@link applyOfflineLimitOverrides}): a value set by the cloud wins.
 * - `rotate_signing_key` — a new Ed25519 key pair; the new public key is announced in the
 *   command result, signed by the OLD key (so the cloud can trust it); after the broker's PUBACK
 *   the new secret key replaces `device-signing.key` (atomic rename) and signs every later
 *   uplink. If the announcement cannot be published the old key stays.
 * - `request_diagnostics` — status, queue and a summary of recent payments by state; counts,
 *   states and times only, never card data (not even the token).
 * - `close_batch` — closes the open terminal batch (issue 17, docs/reconciliation.md); the
 *   result carries the batch id and totals, or fails with POS601 (unforwarded payments, unless
 *   `force`) or POS602 (a payment in progress).
 */
import { EventEmitter } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import { AgentError, isAgentError } from '../common/agent-error.js';
import { type Clock, systemClock } from '../common/clock.js';
import type { SeenCommandStore } from '../cloud-sync/commands.js';
import { type EnvelopeSigner, keyId, signEnvelope } from '../cloud-sync/envelope.js';
import { type Command, type CommandResult, CommandResultSchema } from '../cloud-sync/schemas.js';
import { replaceDeviceSigningKey } from './keys.js';
import type { Logger } from './logger.js';
import {
  OFFLINE_LIMITS_FILE,
  type OfflineLimitOverrides,
  loadOfflineLimitOverrides,
  FileSeenCommandStore,
} from './command-files.js';

/** What the worker side must offer: the SyncWorker's events and signer swap. */
export interface CommandSource {
  on(event: 'command', listener: (command: Command) => void): unknown;
  on(
    event: 'rejected-downlink',
    listener: (info: { topic: string; error: AgentError }) => void,
  ): unknown;
  setSigner(signer: EnvelopeSigner): void;
  /** Persists the ids of accepted commands (SyncWorker.useSeenCommandStore). */
  useSeenCommandStore?(store: SeenCommandStore): void;
  readonly topics: { commands: string; commandResults: string };
}

/** Options of {@link CloudCommands}. */
export interface CloudCommandsOptions {
  source: CommandSource;
  /** Publishes with QoS 1 and resolves on PUBACK (MqttSession.publish). */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /** The device's current signing key (64-byte Ed25519 secret key). */
  deviceSecretKey: Uint8Array;
  /** Where `device-signing.key` lives (rotation replaces it). */
  keysDir: string;
  /** Where `offline-limits.json` goes. */
  dataDir: string;
  /** The agent's pino logger (its level is what `set_log_level` sets). */
  logger: Logger;
  /** Diagnostics data; must hold no card data. */
  diagnostics: () => NonNullable<CommandResult['data']>;
  /**
   * `close_batch` (issue 17): closes the open batch and returns what the result says (batch id,
   * totals, unforwarded payments); throws POS601/POS602 when it cannot close.
   */
  closeBatch?: (force: boolean) => NonNullable<CommandResult['data']>;
  clock?: Clock;
}

/** Counters for `/metrics` and tests. */
export interface CloudCommandCounters {
  applied: number;
  failed: number;
  /** Refused commands by code (POS310–POS313, POS320–POS322). */
  refused: Record<string, number>;
  /** Results that could not be published. */
  unreported: number;
}

/** Events of {@link CloudCommands}. */
export interface CloudCommandsEvents {
  /** A result was produced (and publishing it was attempted). */
  result: [result: CommandResult];
  /** New offline limits were stored. */
  'offline-limits': [limits: OfflineLimitOverrides];
  /** The signing key was rotated; the new key id. */
  rotated: [kid: string];
}

/** Applies verified cloud commands; see the file header. */
export class CloudCommands extends EventEmitter<CloudCommandsEvents> {
  #o: CloudCommandsOptions;
  #secretKey: Uint8Array;
  #clock: Clock;
  #queue: Promise<void> = Promise.resolve();
  #counters: CloudCommandCounters = { applied: 0, failed: 0, refused: {}, unreported: 0 };

  constructor(options: CloudCommandsOptions) {
    super();
    this.#o = options;
    this.#secretKey = options.deviceSecretKey;
    this.#clock = options.clock ?? systemClock;
    // Reports a broken overrides file once at start-up (the agent then runs on the config's limits).
    loadOfflineLimitOverrides(options.dataDir, options.logger);
    // Accepted command ids survive a restart: a replayed, still-valid command is refused (POS321).
    try {
      options.source.useSeenCommandStore?.(
        new FileSeenCommandStore(options.dataDir, { clock: this.#clock, logger: options.logger }),
      );
    } catch (error) {
      options.logger.warn(
        { code: 'POS507', err: error },
        `the seen cloud commands file cannot be written in ${options.dataDir}; replays are refused only until the next restart (fix the data directory's permissions or free disk space)`,
      );
    }
    // Commands are applied one at a time, in arrival order (a rotation must finish first).
    options.source.on('command', (command) => {
      this.#enqueue(command.id, () => this.#apply(command));
    });
    options.source.on('rejected-downlink', ({ topic, error }) => {
      if (topic !== options.source.topics.commands) return;
      this.#counters.refused[error.code] = (this.#counters.refused[error.code] ?? 0) + 1;
      options.logger.warn({ code: error.code, err: error }, 'cloud command refused');
      const id = error.details?.id;
      const type = error.details?.type;
      if (['POS320', 'POS321', 'POS322'].includes(error.code) && typeof id === 'string') {
        this.#enqueue(id, () =>
          this.#report({
            id,
            type: typeof type === 'string' ? type : 'unknown',
            status: 'refused',
            at: this.#now(),
            code: error.code,
            reason: error.reason.slice(0, 512),
          }),
        );
      }
    });
  }

  /**
   * Chains `step` after the commands before it. A step that throws (a 'result' listener, the
   * logger) is logged under POS507 and the queue stays alive: later commands are still applied,
   * and no rejection is left unhandled (which would end Node 20).
   */
  #enqueue(id: string, step: () => Promise<void>): void {
    this.#queue = this.#queue.then(step).catch((error: unknown) => {
      this.#counters.failed += 1;
      try {
        this.#o.logger.error(
          { code: 'POS507', err: error, command: id },
          'handling the cloud command failed; the next commands are still applied',
        );
      } catch {
        // A throwing logger must not break the queue either.
      }
    });
  }

  /** Counters (a copy). */
  counters(): CloudCommandCounters {
    return { ...this.#counters, refused: { ...this.#counters.refused } };
  }

  /** Resolves when every command received so far has been applied and reported. */
  idle(): Promise<void> {
    return this.#queue;
  }

  #now(): string {
    return new Date(this.#clock.now()).toISOString();
  }

  async #apply(command: Command): Promise<void> {
    const base = { id: command.id, type: command.command.type, at: this.#now() };
    const body = command.command;
    try {
      switch (body.type) {
        case 'set_log_level': {
          this.#o.logger.level = body.level;
          await this.#done({ ...base, status: 'applied', data: { level: body.level } });
          return;
        }
        case 'request_diagnostics': {
          await this.#done({ ...base, status: 'applied', data: this.#o.diagnostics() });
          return;
        }
        case 'set_offline_limits': {
          const stored = loadOfflineLimitOverrides(this.#o.dataDir, this.#o.logger);
          const merged: OfflineLimitOverrides = { ...stored, ...body.limits };
          if (stored.perTransactionLimitMinor && body.limits.perTransactionLimitMinor)
            merged.perTransactionLimitMinor = {
              ...stored.perTransactionLimitMinor,
              ...body.limits.perTransactionLimitMinor,
            };
          if (stored.totalLimitMinor && body.limits.totalLimitMinor)
            merged.totalLimitMinor = { ...stored.totalLimitMinor, ...body.limits.totalLimitMinor };
          const file = path.join(this.#o.dataDir, OFFLINE_LIMITS_FILE);
          writeFileSync(`${file}.new`, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
          renameSync(`${file}.new`, file);
          this.emit('offline-limits', merged);
          await this.#done({ ...base, status: 'applied', data: { limits: merged } });
          return;
        }
        case 'rotate_signing_key': {
          await this.#rotate(base);
          return;
        }
        case 'close_batch': {
          if (this.#o.closeBatch === undefined) {
            throw new AgentError('POS507', 'this agent has no batches to close');
          }
          const data = this.#o.closeBatch(body.force === true);
          await this.#done({ ...base, status: 'applied', data });
          return;
        }
      }
    } catch (error) {
      this.#counters.failed += 1;
      const agentError = isAgentError(error)
        ? error
        : new AgentError('POS507', `command ${command.id} (${body.type}) failed`, { cause: error });
      this.#o.logger.error({ err: agentError, command: command.id }, 'cloud command failed');
      await this.#report({
        ...base,
        status: 'failed',
        code: agentError.code,
        reason: agentError.reason.slice(0, 512),
      });
    }
  }

  async #rotate(base: { id: string; type: string; at: string }): Promise<void> {
    const next = nacl.sign.keyPair();
    const kid = keyId(next.publicKey);
    const result: CommandResult = {
      ...base,
      status: 'applied',
      data: {
        publicKey: Buffer.from(next.publicKey).toString('base64'),
        kid,
        previousKid: keyId(this.#secretKey.subarray(32)),
      },
    };
    // Signed by the OLD key: the cloud trusts the new key because the old one vouches for it.
    const payload = signEnvelope(result, { secretKey: this.#secretKey }, CommandResultSchema);
    try {
      await this.#o.publish(this.#o.source.topics.commandResults, payload);
    } catch (cause) {
      next.secretKey.fill(0);
      throw new AgentError(
        'POS507',
        'the new signing key could not be announced (no PUBACK); the old key stays in use, the cloud may send rotate_signing_key again',
        { cause },
      );
    }
    replaceDeviceSigningKey(this.#o.keysDir, next.secretKey);
    this.#secretKey = next.secretKey;
    this.#o.source.setSigner({ secretKey: next.secretKey });
    this.#counters.applied += 1;
    this.#o.logger.info({ kid }, 'device signing key rotated');
    this.emit('result', result);
    this.emit('rotated', kid);
  }

  async #done(result: CommandResult): Promise<void> {
    this.#counters.applied += 1;
    this.#o.logger.info({ command: result.id, type: result.type }, 'cloud command applied');
    await this.#report(result);
  }

  async #report(result: CommandResult): Promise<void> {
    this.emit('result', result);
    try {
      const payload = signEnvelope(result, { secretKey: this.#secretKey }, CommandResultSchema);
      await this.#o.publish(this.#o.source.topics.commandResults, payload);
    } catch (error) {
      this.#counters.unreported += 1;
      this.#o.logger.warn({ err: error, command: result.id }, 'command result not published');
    }
  }
}

/**
 * The `request_diagnostics` answer: the agent's status (devices, link, queue) and a summary of
 * recent payments — counts by state and the newest and oldest times. Never card data: payments
 * contribute only their state and creation time.
 */
export function diagnostics(
  status: object,
  recent: ReadonlyArray<{ state: string; createdAt: string }>,
): NonNullable<CommandResult['data']> {
  const byState: Record<string, number> = {};
  for (const p of recent) byState[p.state] = (byState[p.state] ?? 0) + 1;
  const times = recent.map((p) => p.createdAt).sort();
  return {
    status: JSON.parse(JSON.stringify(status)) as Record<string, unknown>,
    recentPayments: {
      count: recent.length,
      byState,
      oldestAt: times[0] ?? null,
      newestAt: times[times.length - 1] ?? null,
    },
  };
}
