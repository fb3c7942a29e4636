/**
 * Cloud commands: the replay and expiry guard (DESIGN §5: "a replayed or expired command is
 * refused").
 *
 * A command is accepted once: its `id` is remembered until its `expiresAt` (after that the expiry
 * check alone refuses it), so memory is bounded by the commands live at one time. With a
 * {@link SeenCommandStore} the remembered ids survive a restart.
 */
import { type Clock, systemClock } from '../common/clock.js';
import { syncError } from './errors.js';
import type { Command } from './schemas.js';

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
}

/** Refuses expired, replayed and not-yet-valid commands. */
export class CommandGuard {
  #clock: Clock;
  #maxSkewMs: number;
  #seen = new Map<string, number>();
  #store: SeenCommandStore | undefined;

  /** @throws whatever `options.store.load()` throws. */
  constructor(options: CommandGuardOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#maxSkewMs = options.maxClockSkewMs ?? 300_000;
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
   * @throws AgentError POS320 expired; POS321 replayed (same id seen before); POS322 issued
   *   further in the future than the allowed clock skew; POS324 the seen ids could not be saved
   *   (the command is refused, not applied; a resend with the same id is accepted later).
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
