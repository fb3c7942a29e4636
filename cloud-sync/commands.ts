/**
 * Cloud commands: the replay and expiry guard (DESIGN §5: "a replayed or expired command is
 * refused").
 *
 * A command is accepted once: its `id` is remembered until its `expiresAt` (after that the expiry
 * check alone refuses it), so memory is bounded by the commands live at one time.
 */
import { type Clock, systemClock } from '../common/clock.js';
import { syncError } from './errors.js';
import type { Command } from './schemas.js';

/** Options of {@link CommandGuard}. */
export interface CommandGuardOptions {
  clock?: Clock;
  /** How far `issuedAt` may be in the future (clock skew between cloud and terminal), ms; default 300000. */
  maxClockSkewMs?: number;
}

/** Refuses expired, replayed and not-yet-valid commands. */
export class CommandGuard {
  #clock: Clock;
  #maxSkewMs: number;
  #seen = new Map<string, number>();

  constructor(options: CommandGuardOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#maxSkewMs = options.maxClockSkewMs ?? 300_000;
  }

  /**
   * Accepts a (signature-verified, schema-parsed) command once.
   *
   * @throws AgentError POS320 expired; POS321 replayed (same id seen before); POS322 issued
   *   further in the future than the allowed clock skew.
   */
  accept(command: Command): void {
    const now = this.#clock.now();
    for (const [id, expiresAt] of this.#seen) if (expiresAt <= now) this.#seen.delete(id);
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
  }
}
