/**
 * The link state machine of the STX/ETX/LRC serial link (architecture.md §3.1, §3 layer 3), pure in the
 * zwave-js way: inputs in, commands out. It never writes, never starts a timer and never reads
 * the clock; {@link SerialLink} (serial-link.ts) carries the commands out.
 *
 * ```
 *  sender (stop-and-wait)                        receiver
 *
 *   idle ──send──► awaiting-ack (n=1)             valid frame      → write ACK, deliver
 *                   │ ACK → idle, 'sent'           bad frame        → write NAK
 *                   │ NAK / ack timeout:           ACK/NAK/EOT idle → ignored (stray)
 *                   │   n < max → resend, n+1
 *                   │   n = max → write EOT, idle, 'fail' {reason:'NAK'|'ACK timeout'}
 * ```
 *
 * The link has no sequence numbers: when an ACK is lost the peer receives the same frame twice.
 * The device layer treats a reply that arrives out of turn as such (see PinPad).
 */
import { Buffer } from 'node:buffer';
import { ACK, EOT, FrameDecoder, NAK, encodeFrame, type BadFrameReason } from './framing.js';

/** Timing and retry settings of the link; every number has its unit in its name. */
export interface LinkTimings {
  /** How long the sender waits for ACK/NAK after a frame. ms, ≥ 1, default: 1000 */
  ackTimeoutMs: number;
  /** How many times a frame is sent before EOT and failure. ≥ 1, default: 3 */
  maxTransmissions: number;
  /** Largest gap between two bytes inside a frame. ms, ≥ 1, default: 500 */
  interByteTimeoutMs: number;
}

/** architecture.md §3.1 defaults. */
export const DEFAULT_LINK_TIMINGS: Readonly<LinkTimings> = {
  ackTimeoutMs: 1000,
  maxTransmissions: 3,
  interByteTimeoutMs: 500,
};

/** The timers the machine asks for. */
export type LinkTimer = 'ack' | 'inter-byte';

/** Why a frame could not be delivered (the zwave-js style failure reasons). */
export type LinkFailure = { reason: 'ACK timeout' } | { reason: 'NAK' };

/** An input to {@link LinkMachine.handle}. */
export type LinkInput =
  /** Send a frame; only valid in state `idle` (the runner queues the rest). */
  | { type: 'send'; payload: Uint8Array }
  /** Bytes arrived at `nowMs`. */
  | { type: 'bytes'; bytes: Uint8Array; nowMs: number }
  /** A timer the machine started has fired. */
  | { type: 'timeout'; timer: LinkTimer; nowMs: number };

/** A command for the runner. */
export type LinkCommand =
  | { type: 'write'; what: 'frame' | 'ack' | 'nak' | 'eot'; bytes: Buffer }
  | { type: 'start-timer'; timer: LinkTimer; delayMs: number }
  | { type: 'stop-timer'; timer: LinkTimer }
  /** A valid frame from the peer: the payload is the runner's to use and wipe. */
  | { type: 'deliver'; payload: Buffer }
  /** The frame in flight was acknowledged. */
  | { type: 'sent'; transmissions: number }
  /** The frame in flight failed after `transmissions` tries; EOT was written before this. */
  | { type: 'fail'; failure: LinkFailure; transmissions: number }
  /** Diagnostics: a bad frame was NAKed, or garbage was discarded. */
  | { type: 'bad-frame'; reason: BadFrameReason }
  | { type: 'discarded'; count: number };

/** State of the sending side. */
export type LinkState =
  { kind: 'idle' } | { kind: 'awaiting-ack'; frame: Buffer; transmissions: number };

/**
 * The link state machine. Deterministic: the same inputs give the same commands.
 * `handle({ type: 'send' })` while not idle throws a programming error (the runner queues).
 */
export class LinkMachine {
  readonly #timings: LinkTimings;
  readonly #decoder: FrameDecoder;
  #state: LinkState = { kind: 'idle' };

  /** @param timings — partial {@link LinkTimings}; missing values take the architecture.md §3.1 defaults. */
  constructor(timings: Partial<LinkTimings> = {}) {
    this.#timings = { ...DEFAULT_LINK_TIMINGS, ...timings };
    this.#decoder = new FrameDecoder({ interByteTimeoutMs: this.#timings.interByteTimeoutMs });
  }

  /** The sender state. */
  get state(): Readonly<LinkState> {
    return this.#state;
  }

  /** The effective timings. */
  get timings(): Readonly<LinkTimings> {
    return this.#timings;
  }

  /** Bytes discarded outside frames so far. */
  get discardedTotal(): number {
    return this.#decoder.discardedTotal;
  }

  /** Feeds one input; returns the commands to carry out, in order. */
  handle(input: LinkInput): LinkCommand[] {
    switch (input.type) {
      case 'send':
        return this.#send(input.payload);
      case 'bytes':
        return this.#bytes(input.bytes, input.nowMs);
      case 'timeout':
        return input.timer === 'ack' ? this.#ackTimeout() : this.#interByte(input.nowMs);
    }
  }

  /** Forgets the frame in flight and any partial frame (after a disconnect). */
  reset(): void {
    this.#state = { kind: 'idle' };
    this.#decoder.reset();
  }

  #send(payload: Uint8Array): LinkCommand[] {
    if (this.#state.kind !== 'idle')
      throw new Error('LinkMachine: send while a frame awaits its ACK; queue it in the runner');
    const frame = encodeFrame(payload);
    this.#state = { kind: 'awaiting-ack', frame, transmissions: 1 };
    return [
      { type: 'write', what: 'frame', bytes: frame },
      { type: 'start-timer', timer: 'ack', delayMs: this.#timings.ackTimeoutMs },
    ];
  }

  #bytes(bytes: Uint8Array, nowMs: number): LinkCommand[] {
    const commands: LinkCommand[] = [];
    for (const output of this.#decoder.push(bytes, nowMs)) {
      switch (output.kind) {
        case 'frame':
          commands.push({ type: 'write', what: 'ack', bytes: Buffer.of(ACK) });
          commands.push({ type: 'deliver', payload: output.payload });
          break;
        case 'bad-frame':
          commands.push({ type: 'write', what: 'nak', bytes: Buffer.of(NAK) });
          commands.push({ type: 'bad-frame', reason: output.reason });
          break;
        case 'ack':
          if (this.#state.kind === 'awaiting-ack') {
            const { transmissions } = this.#state;
            this.#state = { kind: 'idle' };
            commands.push({ type: 'stop-timer', timer: 'ack' }, { type: 'sent', transmissions });
          }
          break;
        case 'nak':
          if (this.#state.kind === 'awaiting-ack') {
            commands.push({ type: 'stop-timer', timer: 'ack' }, ...this.#retry({ reason: 'NAK' }));
          }
          break;
        case 'eot':
          break;
        case 'discarded':
          commands.push({ type: 'discarded', count: output.count });
          break;
      }
    }
    if (this.#decoder.inFrame)
      commands.push({
        type: 'start-timer',
        timer: 'inter-byte',
        delayMs: this.#timings.interByteTimeoutMs + 1,
      });
    else if (bytes.length > 0) commands.push({ type: 'stop-timer', timer: 'inter-byte' });
    return commands;
  }

  #ackTimeout(): LinkCommand[] {
    if (this.#state.kind !== 'awaiting-ack') return [];
    return this.#retry({ reason: 'ACK timeout' });
  }

  #interByte(nowMs: number): LinkCommand[] {
    return this.#decoder.expire(nowMs).flatMap((output): LinkCommand[] =>
      output.kind === 'bad-frame'
        ? [
            { type: 'write', what: 'nak', bytes: Buffer.of(NAK) },
            { type: 'bad-frame', reason: output.reason },
          ]
        : [],
    );
  }

  #retry(failure: LinkFailure): LinkCommand[] {
    const state = this.#state;
    if (state.kind !== 'awaiting-ack') return [];
    if (state.transmissions >= this.#timings.maxTransmissions) {
      this.#state = { kind: 'idle' };
      return [
        { type: 'write', what: 'eot', bytes: Buffer.of(EOT) },
        { type: 'fail', failure, transmissions: state.transmissions },
      ];
    }
    this.#state = { ...state, transmissions: state.transmissions + 1 };
    return [
      { type: 'write', what: 'frame', bytes: state.frame },
      { type: 'start-timer', timer: 'ack', delayMs: this.#timings.ackTimeoutMs },
    ];
  }
}
