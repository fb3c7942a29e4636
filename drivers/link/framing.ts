/**
 * Framing of the STX/ETX/LRC serial link (architecture.md §3.1). Pure: bytes in, outputs out; no timers,
 * no I/O — the caller passes the arrival time of every chunk.
 *
 * ```
 *  ┌──────┬──────────────────────────────────┬──────┬──────┐
 *  │ STX  │ payload: 1..1024 bytes           │ ETX  │ LRC  │
 *  │ 0x02 │ 0x20–0x7E, FS 0x1C between fields│ 0x03 │      │
 *  └──────┴──────────────────────────────────┴──────┴──────┘
 *          └──────────── LRC = XOR of these bytes ─────┘      (STX excluded)
 *
 *  single bytes outside a frame:  ACK 0x06   NAK 0x15   EOT 0x04
 * ```
 *
 * The byte after ETX is always the LRC, even when it equals ACK, NAK, STX or ETX: the decoder
 * works by state and never scans for control bytes. Payload bytes are copied out of the decoder
 * and its working buffer is wiped, because a payload may carry track data (architecture.md §2).
 */
import { Buffer } from 'node:buffer';
import { driverError } from '../errors.js';

/** Start of text. */
export const STX = 0x02;
/** End of text; the LRC follows. */
export const ETX = 0x03;
/** End of transmission: the sender gave up on a frame. */
export const EOT = 0x04;
/** Positive acknowledgement of a frame. */
export const ACK = 0x06;
/** Negative acknowledgement: the frame was bad, send it again. */
export const NAK = 0x15;
/** Field separator inside a payload. */
export const FS = 0x1c;
/** Largest payload in bytes (architecture.md §3.1). */
export const MAX_PAYLOAD_BYTES = 1024;

/** True for a byte allowed inside a payload: printable ASCII 0x20–0x7E or FS. */
export function isPayloadByte(byte: number): boolean {
  return (byte >= 0x20 && byte <= 0x7e) || byte === FS;
}

/** LRC of a payload: XOR of every payload byte and of ETX (architecture.md §3.1; STX is not included). */
export function computeLrc(payload: Uint8Array): number {
  let lrc = 0;
  for (const byte of payload) lrc ^= byte;
  return lrc ^ ETX;
}

/**
 * Encodes one frame: `STX payload ETX LRC`.
 * @param payload — 1..1024 bytes of 0x20–0x7E or FS.
 * @throws AgentError `POS110` when the payload is empty, too long or holds another byte
 *   (the message gives the length or the offending offset, never the content).
 */
export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length < 1 || payload.length > MAX_PAYLOAD_BYTES)
    throw driverError(
      'POS110',
      `Frame payload is ${payload.length} bytes; it must be 1–${MAX_PAYLOAD_BYTES} bytes (architecture.md §3.1)`,
      { details: { length: payload.length } },
    );
  for (let i = 0; i < payload.length; i++) {
    const byte = payload[i] ?? 0;
    if (!isPayloadByte(byte))
      throw driverError(
        'POS110',
        `Frame payload byte at offset ${i} is 0x${byte.toString(16).padStart(2, '0')}; only 0x20–0x7E and FS (0x1C) are allowed`,
        { details: { offset: i } },
      );
  }
  const frame = Buffer.allocUnsafe(payload.length + 3);
  frame[0] = STX;
  frame.set(payload, 1);
  frame[payload.length + 1] = ETX;
  frame[payload.length + 2] = computeLrc(payload);
  return frame;
}

/** Why a frame was rejected; the receiver answers NAK for each. */
export type BadFrameReason = 'lrc' | 'too-long' | 'inter-byte-timeout' | 'bad-byte';

/** One result of {@link FrameDecoder.push}. */
export type DecoderOutput =
  /** A valid frame; `payload` is a fresh copy the receiver owns (and should wipe after use). */
  | { kind: 'frame'; payload: Buffer }
  | { kind: 'ack' }
  | { kind: 'nak' }
  | { kind: 'eot' }
  /** A frame that must be NAKed. */
  | { kind: 'bad-frame'; reason: BadFrameReason }
  /** `count` bytes outside any frame that were not ACK/NAK/EOT/STX, thrown away. */
  | { kind: 'discarded'; count: number };

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest gap between two bytes of one frame; a longer gap ends the frame as bad. @default 500 ms */
  interByteTimeoutMs?: number;
}

type DecoderState =
  | { kind: 'idle' }
  /** Between STX and ETX; `error` is set once the frame is known to be bad (reported at its end). */
  | { kind: 'payload'; length: number; error: BadFrameReason | undefined }
  /** After ETX: the next byte is the LRC, whatever its value. */
  | { kind: 'lrc'; length: number; error: BadFrameReason | undefined };

/**
 * Stateful, pure frame decoder: feed it chunks with their arrival time, get frames and control
 * bytes back. Never throws on any input, never loops on its own (see the fast-check property in
 * test/drivers/framing.test.ts).
 *
 * - An over-long payload or a byte outside 0x20–0x7E/FS marks the frame bad; the decoder still
 *   swallows it through ETX and the LRC byte, then reports `bad-frame` once, so the NAK goes out
 *   when the sender waits for it and no byte of the bad frame is mistaken for a control byte.
 * - An STX inside a payload restarts the frame (the old one is reported as `bad-byte`).
 * - A gap longer than `interByteTimeoutMs` inside a frame reports `inter-byte-timeout`, then the
 *   new byte is handled as if outside a frame. {@link FrameDecoder.expire} does the same check
 *   without new bytes, for a runner that keeps an inter-byte timer.
 */
export class FrameDecoder {
  readonly #interByteTimeoutMs: number;
  readonly #buffer = Buffer.alloc(MAX_PAYLOAD_BYTES);
  #state: DecoderState = { kind: 'idle' };
  #lastByteAtMs = 0;
  #discardedTotal = 0;

  /** @param options.interByteTimeoutMs — ms, ≥ 1, default 500. */
  constructor(options: FrameDecoderOptions = {}) {
    this.#interByteTimeoutMs = options.interByteTimeoutMs ?? 500;
  }

  /** Total number of bytes discarded outside frames since construction. */
  get discardedTotal(): number {
    return this.#discardedTotal;
  }

  /** True while a frame has started (STX seen) and not ended. */
  get inFrame(): boolean {
    return this.#state.kind !== 'idle';
  }

  /**
   * Decodes a chunk.
   * @param bytes — received bytes (not kept: the caller may wipe them afterwards).
   * @param nowMs — arrival time of the chunk in ms (any monotonic origin).
   */
  push(bytes: Uint8Array, nowMs: number): DecoderOutput[] {
    const out: DecoderOutput[] = [];
    let discarded = 0;
    const flushDiscarded = (): void => {
      if (discarded > 0) {
        out.push({ kind: 'discarded', count: discarded });
        this.#discardedTotal += discarded;
        discarded = 0;
      }
    };
    if (bytes.length > 0 && this.#state.kind !== 'idle') {
      if (nowMs - this.#lastByteAtMs > this.#interByteTimeoutMs) {
        this.#reset();
        out.push({ kind: 'bad-frame', reason: 'inter-byte-timeout' });
      }
    }
    for (const byte of bytes) {
      const state = this.#state;
      switch (state.kind) {
        case 'idle':
          if (byte === STX) {
            flushDiscarded();
            this.#state = { kind: 'payload', length: 0, error: undefined };
          } else if (byte === ACK || byte === NAK || byte === EOT) {
            flushDiscarded();
            out.push({ kind: byte === ACK ? 'ack' : byte === NAK ? 'nak' : 'eot' });
          } else discarded++;
          break;
        case 'payload':
          if (byte === ETX) {
            this.#state = { kind: 'lrc', length: state.length, error: state.error };
          } else if (byte === STX) {
            this.#reset();
            out.push({ kind: 'bad-frame', reason: 'bad-byte' });
            this.#state = { kind: 'payload', length: 0, error: undefined };
          } else if (state.length >= MAX_PAYLOAD_BYTES) {
            state.error ??= 'too-long';
          } else {
            if (!isPayloadByte(byte)) state.error ??= 'bad-byte';
            this.#buffer[state.length] = byte;
            state.length++;
          }
          break;
        case 'lrc':
          out.push(this.#finish(state, byte));
          break;
      }
    }
    flushDiscarded();
    if (bytes.length > 0) this.#lastByteAtMs = nowMs;
    return out;
  }

  /**
   * Ends a frame whose last byte came more than `interByteTimeoutMs` before `nowMs`.
   * Returns `[{ kind: 'bad-frame', reason: 'inter-byte-timeout' }]` or `[]`.
   */
  expire(nowMs: number): DecoderOutput[] {
    if (this.#state.kind === 'idle' || nowMs - this.#lastByteAtMs <= this.#interByteTimeoutMs)
      return [];
    this.#reset();
    return [{ kind: 'bad-frame', reason: 'inter-byte-timeout' }];
  }

  /** Drops any partial frame and wipes the working buffer (e.g. after a disconnect). */
  reset(): void {
    this.#reset();
  }

  #finish(
    state: { length: number; error: BadFrameReason | undefined },
    lrc: number,
  ): DecoderOutput {
    const payload = this.#buffer.subarray(0, state.length);
    let result: DecoderOutput;
    if (state.error !== undefined) result = { kind: 'bad-frame', reason: state.error };
    else if (state.length === 0) result = { kind: 'bad-frame', reason: 'bad-byte' };
    else if (computeLrc(payload) !== lrc) result = { kind: 'bad-frame', reason: 'lrc' };
    else result = { kind: 'frame', payload: Buffer.from(payload) };
    this.#reset();
    return result;
  }

  #reset(): void {
    this.#buffer.fill(0);
    this.#state = { kind: 'idle' };
  }
}
