/**
 * Cloud commands: the replay and expiry guard (architecture.md §5: "a replayed or expired command is
 * refused"), and the bounds of issue 11: a command names the device it is for (refused for
 * another device or none, POS326) and lives at most `maxLifetimeMs` (POS327; one valid for
 * 1,000 years was accepted before). Downlink size is bounded before any of this, by the sync
 * worker (`maxMessageBytes`, POS314, {@link checkDownlinkSize}).
 *
 * A command is accepted once: its `id` is remembered until its `expiresAt` (after that the expiry
 * check alone refuses it), so memory is bounded by the commands live at one time. With a
 * {@link SeenCommandStore} the remembered ids survive a restart.
 */
import { type Clock, systemClock } from '../common/clock.js';
import { type PublicKeyLookup, openEnvelope } from './envelope.js';
import { syncError } from './errors.js';
import { type Command, CommandSchema } from './schemas.js';

/** A command id remembered by the guard until `expiresAt` (ms since the epoch). */
export interface SeenCommand {
  id: string;
  expiresAt: number;
}

/**
 * Where the guard keeps the ids it has accepted, so that a replay is refused after a restart too
 * (the persistent MQTT session may redeliver a command). cloud-sync holds no storage of its own:
 * the agent implements this (a small JSON file in its data directory).
 */
export interface SeenCommandStore {
  /** Every remembered id; expired ones are pruned by the guard. May throw: the guard starts empty. */
  load(): SeenCommand[];
  /** Replaces the remembered ids (only unexpired ones are passed); durable when it returns. */
  save(seen: SeenCommand[]): void;
}

/** Options of {@link CommandGuard}. */
export interface CommandGuardOptions {
  clock?: Clock;
  /** Persistence of the seen ids; none → memory only (a restart forgets them). */
  store?: SeenCommandStore;
  /** How far `issuedAt` may be in the future (clock skew between cloud and terminal), ms; default 300000. */
  maxClockSkewMs?: number;
  /**
   * This terminal's device id: a command must carry the same `deviceId` (POS326). Undefined →
   * not checked (the cloud core simulator's own guard; every agent sets it).
   */
  deviceId?: string;
  /**
   * Longest allowed lifetime `expiresAt − issuedAt`, ms (≥ 1000). Also bounds how long ids are
   * remembered. @default {@link DEFAULT_MAX_COMMAND_LIFETIME_MS} (24 h)
   */
  maxLifetimeMs?: number;
}

/** Default longest command lifetime: 24 h (a command waits at most a day for an offline store). */
export const DEFAULT_MAX_COMMAND_LIFETIME_MS = 86_400_000;

/**
 * Refuses a downlink payload larger than `maxBytes` before it is parsed or verified.
 *
 * @param payload — the MQTT payload.
 * @param maxBytes — the limit (the worker's `maxMessageBytes`, 128 KiB by default).
 * @throws AgentError POS314 naming the size and the limit.
 */
export function checkDownlinkSize(payload: Uint8Array, maxBytes: number): void {
  if (payload.length > maxBytes)
    throw syncError(
      'POS314',
      `Downlink of ${payload.length} bytes is over the limit of ${maxBytes} bytes (maxMessageBytes): refused unread; the cloud must send smaller messages`,
      { details: { bytes: payload.length, maxBytes } },
    );
}

/** Refuses expired, replayed and not-yet-valid commands. */
export class CommandGuard {
  #clock: Clock;
  #maxSkewMs: number;
  #seen = new Map<string, number>();
  #store: SeenCommandStore | undefined;
  #deviceId: string | undefined;
  #maxLifetimeMs: number;

  /**
   * @throws AgentError POS330 when `maxLifetimeMs` is not an integer ≥ 1000; whatever
   *   `options.store.load()` throws.
   */
  constructor(options: CommandGuardOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#maxSkewMs = options.maxClockSkewMs ?? 300_000;
    this.#deviceId = options.deviceId;
    this.#maxLifetimeMs = options.maxLifetimeMs ?? DEFAULT_MAX_COMMAND_LIFETIME_MS;
    if (!Number.isSafeInteger(this.#maxLifetimeMs) || this.#maxLifetimeMs < 1000)
      throw syncError(
        'POS330',
        `maxCommandLifetimeMs is ${String(options.maxLifetimeMs)}; it must be an integer ≥ 1000 ms (default ${DEFAULT_MAX_COMMAND_LIFETIME_MS}, 24 h)`,
      );
    if (options.store !== undefined) this.useStore(options.store);
  }

  /**
   * Persists the seen ids in `store` from now on; the ids it holds are remembered too (merged
   * with the ones seen so far, which are saved at once).
   *
   * @throws whatever `store.load()` or `store.save()` throws; the guard then keeps its old store.
   */
  useStore(store: SeenCommandStore): void {
    const now = this.#clock.now();
    for (const { id, expiresAt } of store.load()) {
      if (expiresAt > now && expiresAt > (this.#seen.get(id) ?? 0)) this.#seen.set(id, expiresAt);
    }
    store.save(this.#live(now));
    this.#store = store;
  }

  #live(now: number): SeenCommand[] {
    for (const [id, expiresAt] of this.#seen) if (expiresAt <= now) this.#seen.delete(id);
    return [...this.#seen].map(([id, expiresAt]) => ({ id, expiresAt }));
  }

  /**
   * Accepts a (signature-verified, schema-parsed) command once.
   *
   * With a store, the id is saved before the command is accepted: a command is never applied
   * unless its replay would be refused after a restart.
   *
   * @throws AgentError POS320 expired; POS326 for another device or none; POS327 lifetime over
   *   `maxLifetimeMs`; POS321 replayed (same id seen before); POS322 issued further in the
   *   future than the allowed clock skew; POS324 the seen ids could not be saved (the command
   *   is refused, not applied; a resend with the same id is accepted later).
   */
  accept(command: Command): void {
    const now = this.#clock.now();
    this.#live(now);
    const expiresAt = Date.parse(command.expiresAt);
    const issuedAt = Date.parse(command.issuedAt);
    if (expiresAt <= now) {
      throw syncError(
        'POS320',
        `Command ${command.id} (${command.command.type}) expired at ${command.expiresAt}, now is ${new Date(now).toISOString()}: the cloud must issue it again; check the terminal clock if this repeats`,
        { details: { id: command.id, type: command.command.type } },
      );
    }
    if (this.#deviceId !== undefined && command.deviceId !== this.#deviceId) {
      throw syncError(
        'POS326',
        command.deviceId === undefined
          ? `Command ${command.id} (${command.command.type}) names no deviceId: commands must be bound to the device they are for; the cloud must add "deviceId": "${this.#deviceId}" (inside the signed body)`
          : `Command ${command.id} (${command.command.type}) is for device ${JSON.stringify(command.deviceId.slice(0, 64))}, not ${this.#deviceId}: refused (a command replayed onto another terminal's topic)`,
        { details: { id: command.id, type: command.command.type } },
      );
    }
    if (expiresAt - issuedAt > this.#maxLifetimeMs) {
      throw syncError(
        'POS327',
        `Command ${command.id} (${command.command.type}) lives ${expiresAt - issuedAt} ms (${command.issuedAt} to ${command.expiresAt}), over the limit of ${this.#maxLifetimeMs} ms: the cloud must issue it with a shorter expiry (or raise sync.maxCommandLifetimeMs)`,
        { details: { id: command.id, type: command.command.type } },
      );
    }
    if (this.#seen.has(command.id)) {
      throw syncError(
        'POS321',
        `Command ${command.id} (${command.command.type}) was already received: a replay is refused; the cloud must use a new id for a new command`,
        { details: { id: command.id, type: command.command.type } },
      );
    }
    if (issuedAt > now + this.#maxSkewMs) {
      throw syncError(
        'POS322',
        `Command ${command.id} is issued at ${command.issuedAt}, more than ${this.#maxSkewMs} ms ahead of the terminal clock ${new Date(now).toISOString()}: fix the terminal's time (NTP)`,
        { details: { id: command.id, type: command.command.type } },
      );
    }
    this.#seen.set(command.id, expiresAt);
    if (this.#store === undefined) return;
    try {
      this.#store.save(this.#live(now));
    } catch (cause) {
      this.#seen.delete(command.id);
      throw syncError(
        'POS324',
        `Command ${command.id} (${command.command.type}) is refused because its id could not be saved (${String(cause)}): it could be applied twice after a restart; free disk space or fix the data directory's permissions, then the cloud may send it again`,
        { cause, details: { id: command.id, type: command.command.type } },
      );
    }
  }
}

/**
 * Opens a `down/commands` payload: verifies the envelope with the pinned cloud key(s), checks the
 * command schema, then the guard's replay, expiry, device and lifetime rules.
 *
 * @returns the command, accepted once (remembered by `guard`).
 * @throws AgentError the envelope's codes (POS310 malformed, POS311 bad signature, POS312 unknown
 *   key id, POS313 schema) or the guard's (POS320 expired, POS321 replayed, POS322 not yet
 *   valid, POS326 other device, POS327 lifetime too long).
 */
export function openCommand(payload: Buffer, keys: PublicKeyLookup, guard: CommandGuard): Command {
  const command = openEnvelope(payload, { keys }, CommandSchema);
  guard.accept(command);
  return command;
}
