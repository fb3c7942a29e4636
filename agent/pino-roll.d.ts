/**
 * Types of the parts of pino-roll (https://github.com/mcollina/pino-roll, v4) the agent uses; the
 * package ships JavaScript only. The stream it resolves to is a sonic-boom stream.
 */
declare module 'pino-roll' {
  import type { EventEmitter } from 'node:events';

  /** Options of pino-roll (its README; only the ones the agent uses). */
  interface PinoRollOptions {
    /** Base file; numbers go before the extension: `agent.log` → `agent.1.log`, `agent.2.log`. */
    file: string;
    /** Rotate at this size: a number of MB, or a string with a unit `b`, `k`, `m`, `g`. */
    size?: string | number;
    /** `daily`, `hourly` or ms. */
    frequency?: string | number;
    /** Rotated files kept besides the current one. */
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    /** Keep a `current.log` symlink to the file in use. */
    symlink?: boolean;
    /** Create the directory. */
    mkdir?: boolean;
  }

  /** The sonic-boom stream pino writes to. */
  interface RollStream extends EventEmitter {
    write(data: string): boolean;
    end(): void;
    flushSync(): void;
    readonly file: string;
  }

  export default function pinoRoll(options: PinoRollOptions): Promise<RollStream>;
}
