/**
 * Runs the {@link LinkMachine} over a byte channel (architecture.md §3 layer 3): writes what it says,
 * keeps its timers on an injected {@link Clock}, queues outgoing frames (stop-and-wait sends one
 * at a time) and hands received payloads to the device layer.
 *
 * The link does not own the channel: the device layer opens/closes the transport, feeds received
 * bytes to {@link SerialLink.receive} and calls {@link SerialLink.shutdown} on disconnect.
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../../common/clock.js';
import { driverError } from '../errors.js';
import type { BadFrameReason } from './framing.js';
import {
  LinkMachine,
  type LinkCommand,
  type LinkInput,
  type LinkTimer,
  type LinkTimings,
} from './link-machine.js';

/** Where the link writes bytes (a Transport, a simulator endpoint). */
export type ByteWriter = (bytes: Buffer) => Promise<void> | void;

/** Options of {@link SerialLink}. */
export interface SerialLinkOptions {
  /** Link timings; defaults per architecture.md §3.1. */
  timings?: Partial<LinkTimings>;
  /** Time source and timers. @default systemClock */
  clock?: Clock;
  /**
   * Sees every outgoing write and may replace it (return other bytes) or drop it (`null`).
   * For the simulator's fault switches (bad LRC, dropped ACK); the agent does not set it.
   */
  outgoingFilter?: (bytes: Buffer, what: 'frame' | 'ack' | 'nak' | 'eot') => Buffer | null;
}

/** Link counters for `pos-agent doctor` and the status page. */
export interface LinkStats {
  framesSent: number;
  framesReceived: number;
  retransmissions: number;
  badFramesReceived: number;
  bytesDiscarded: number;
  failures: number;
}

/** Link counters all at zero: a new link's, and what a device reports while it has none. */
export function emptyLinkStats(): LinkStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    retransmissions: 0,
    badFramesReceived: 0,
    bytesDiscarded: 0,
    failures: 0,
  };
}

type LinkEvents = {
  /** A valid payload from the peer (the listener owns it; wipe it after use). */
  frame: [payload: Buffer];
  /** A bad frame was received and NAKed. */
  'bad-frame': [reason: BadFrameReason];
};

interface Pending {
  payload: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * A running link. `send()` resolves when the peer ACKed the frame; rejects with `POS111`
 * after `maxTransmissions` (EOT was sent, `details.reason` is `'ACK timeout'` or `'NAK'`),
 * `POS112` when the link is shut down first, or the channel's own write error (`POS102`).
 */
export class SerialLink extends EventEmitter<LinkEvents> {
  readonly #machine: LinkMachine;
  readonly #clock: Clock;
  readonly #write: ByteWriter;
  readonly #filter: SerialLinkOptions['outgoingFilter'];
  readonly #timers = new Map<LinkTimer, TimerHandle>();
  readonly #queue: Pending[] = [];
  #current: Pending | undefined;
  #closed: Error | undefined;
  readonly #stats: LinkStats = emptyLinkStats();

  /** @param write — where bytes go; @param options — timings, clock, fault filter. */
  constructor(write: ByteWriter, options: SerialLinkOptions = {}) {
    super();
    this.#write = write;
    this.#clock = options.clock ?? systemClock;
    this.#machine = new LinkMachine(options.timings);
    this.#filter = options.outgoingFilter;
  }

  /** Counters since construction. */
  get stats(): Readonly<LinkStats> {
    return { ...this.#stats };
  }

  /** Queues a payload (1..1024 bytes, see framing.ts); resolves once ACKed. */
  send(payload: Uint8Array): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ payload: Buffer.from(payload), resolve, reject });
      this.#pump();
    });
  }

  /** Feeds bytes received from the peer; the caller may wipe `bytes` afterwards. */
  receive(bytes: Uint8Array): void {
    if (this.#closed !== undefined) return;
    this.#run({ type: 'bytes', bytes, nowMs: this.#clock.now() });
  }

  /**
   * Stops the link: clears timers, rejects the frame in flight and every queued one with
   * `error` (default `POS112`). Further `send()` calls reject with the same error.
   */
  shutdown(error?: Error): void {
    if (this.#closed !== undefined) return;
    this.#closed =
      error ?? driverError('POS112', 'The serial link was closed with frames still queued');
    for (const handle of this.#timers.values()) this.#clock.clearTimeout(handle);
    this.#timers.clear();
    this.#machine.reset();
    const pending = [...(this.#current === undefined ? [] : [this.#current]), ...this.#queue];
    this.#current = undefined;
    this.#queue.length = 0;
    for (const p of pending) p.reject(this.#closed);
  }

  #pump(): void {
    if (this.#current !== undefined || this.#closed !== undefined) return;
    const next = this.#queue.shift();
    if (next === undefined) return;
    this.#current = next;
    try {
      this.#run({ type: 'send', payload: next.payload });
    } catch (error) {
      this.#current = undefined;
      next.reject(error as Error);
      this.#pump();
    }
  }

  #run(input: LinkInput): void {
    for (const command of this.#machine.handle(input)) this.#execute(command);
  }

  #execute(command: LinkCommand): void {
    switch (command.type) {
      case 'write': {
        if (command.what === 'frame') {
          const state = this.#machine.state;
          if (state.kind === 'awaiting-ack' && state.transmissions > 1)
            this.#stats.retransmissions++;
          else this.#stats.framesSent++;
        }
        const bytes =
          this.#filter === undefined ? command.bytes : this.#filter(command.bytes, command.what);
        if (bytes === null) return;
        Promise.resolve()
          .then(() => this.#write(bytes))
          .catch((error: unknown) => this.#writeFailed(error));
        return;
      }
      case 'start-timer': {
        this.#stopTimer(command.timer);
        const timer = command.timer;
        this.#timers.set(
          timer,
          this.#clock.setTimeout(() => {
            this.#timers.delete(timer);
            if (this.#closed === undefined)
              this.#run({ type: 'timeout', timer, nowMs: this.#clock.now() });
          }, command.delayMs),
        );
        return;
      }
      case 'stop-timer':
        this.#stopTimer(command.timer);
        return;
      case 'deliver':
        this.#stats.framesReceived++;
        this.emit('frame', command.payload);
        return;
      case 'sent': {
        const done = this.#current;
        this.#current = undefined;
        done?.resolve();
        this.#pump();
        return;
      }
      case 'fail': {
        this.#stats.failures++;
        const failed = this.#current;
        this.#current = undefined;
        failed?.reject(
          driverError(
            'POS111',
            `No ACK from the device after ${command.transmissions} transmissions (${command.failure.reason}, ackTimeoutMs ${this.#machine.timings.ackTimeoutMs}); EOT sent. Check the cable and the device's baud rate, or raise maxTransmissions`,
            { details: { reason: command.failure.reason, transmissions: command.transmissions } },
          ),
        );
        this.#pump();
        return;
      }
      case 'bad-frame':
        this.#stats.badFramesReceived++;
        this.emit('bad-frame', command.reason);
        return;
      case 'discarded':
        this.#stats.bytesDiscarded += command.count;
        return;
    }
  }

  #stopTimer(timer: LinkTimer): void {
    const handle = this.#timers.get(timer);
    if (handle !== undefined) {
      this.#clock.clearTimeout(handle);
      this.#timers.delete(timer);
    }
  }

  #writeFailed(error: unknown): void {
    // A failed write means the channel is gone; the device layer learns it from the
    // transport's 'close' and shuts the link down. Fail the frame in flight now.
    const failed = this.#current;
    if (failed === undefined) return;
    this.#current = undefined;
    this.#stopTimer('ack');
    this.#machine.reset();
    failed.reject(error instanceof Error ? error : new Error(String(error)));
    this.#pump();
  }
}
