/**
 * The card reader device (architecture.md §3 layer 4): a magnetic stripe reader on any transport, its
 * input decoded by kind, every swipe tokenized by the {@link CardBoundary} at once, and the raw
 * bytes wiped. Keeps its transport open, reopening with backoff after an unplug.
 *
 * ```
 *  kind     transport                 bytes                       decoder
 *  hid-msr  hid://VID:PID             one 337-byte report/chunk   hid-msr-report.ts
 *                                      or one 692-byte SRED report sred-hid-report.ts → tokenizeSred
 *  wedge    hid://VID:PID             8-byte keyboard reports     keyboard-wedge.ts → swipe-text.ts
 *  serial   /dev/…, tcp://, mock://   text lines (CR LF)          @serialport/parser-readline → swipe-text.ts
 *
 *  swipe ─► tracks ─► armed?  yes ─► CardBoundary.tokenize ─► read() resolves { ok, card | reason }
 *                             no  ─► wipe, emit 'swipe-discarded'  (no payment in progress)
 *
 *  state:  connecting ─► connected ─(unplug)─► disconnected ─(backoff)─► connected …  ─► closed
 * ```
 *
 * A read in progress when the reader is unplugged ends as `reader_disconnected` (POS144): the
 * payment fails safely and is never left waiting for a device that is gone.
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { ReadlineParser } from '@serialport/parser-readline';
import { isAgentError, type AgentError } from '../../common/agent-error.js';
import { backoffDelayMs } from '../../common/backoff.js';
import { systemClock, type Clock, type TimerHandle } from '../../common/clock.js';
import type { CardBoundary } from '../boundary/card-boundary.js';
import type { CardReadFailure, CardToken } from '../boundary/card-token.js';
import { driverError } from '../errors.js';
import type { Transport } from '../transport/transport.js';
import { parseHidMsrReport } from './hid-msr-report.js';
import { WedgeDecoder } from './keyboard-wedge.js';
import { isSredHidReportSize, parseSredHidReport, sredReadOf } from './sred-hid-report.js';
import { splitSwipeText } from './swipe-text.js';

/** How the reader's bytes are decoded. */
export type CardReaderKind = 'hid-msr' | 'wedge' | 'serial';

/** Connection state, as shown in `/v1/status`. */
export type CardReaderState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** Result of {@link CardReader.read}, the same shape as the PIN pad's. */
export type CardReaderResult =
  { ok: true; card: CardToken } | { ok: false; reason: CardReadFailure };

/** Why a swipe was thrown away without being tokenized. */
export interface DiscardedSwipe {
  /** The reader's configured name. */
  reader: string;
  /** `no_payment` when no read was armed; otherwise what was wrong with the input. */
  reason: 'no_payment' | 'bad_input';
}

/** Options of {@link CardReader}. */
export interface CardReaderOptions {
  /** Name from the config, e.g. `counter-msr`. */
  name: string;
  kind: CardReaderKind;
  /** The reader opens, reopens and closes it. */
  transport: Transport;
  boundary: CardBoundary;
  /** @default systemClock */
  clock?: Clock;
  /**
   * Reopen after an unplug (or a failed first open) with exponential backoff from
   * `initialDelayMs` (default 500 ms) doubling to `maxDelayMs` (default 30000 ms); `false` = off.
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number } | false;
}

type CardReaderEvents = {
  /** The state changed; `error` says why for `disconnected` (POS101/POS102/POS104). */
  state: [state: CardReaderState, error?: AgentError];
  /** A swipe arrived with no read armed, or input could not be decoded; its bytes were wiped. */
  'swipe-discarded': [swipe: DiscardedSwipe];
  /** A problem that did not fail a read (undecodable report while idle, a failed reopen). */
  warning: [warning: AgentError];
};

interface Armed {
  resolve: (result: CardReaderResult) => void;
  onAbort: () => void;
  signal: AbortSignal | undefined;
}

/** See the module comment. */
export class CardReader extends EventEmitter<CardReaderEvents> {
  readonly name: string;
  readonly kind: CardReaderKind;
  readonly #transport: Transport;
  readonly #boundary: CardBoundary;
  readonly #clock: Clock;
  readonly #reconnect: { initialDelayMs: number; maxDelayMs: number } | false;
  #state: CardReaderState = 'connecting';
  #lastError: AgentError | undefined;
  #armed: Armed | undefined;
  #wedge = new WedgeDecoder();
  #lines: ReadlineParser | undefined;
  #reconnectTimer: TimerHandle | undefined;
  /** Reopen attempts since the last open (the backoff's attempt number). */
  #attempt = 0;
  #closed = false;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onClose = (error?: Error): void => this.#disconnected(error);

  /** Does not open: call {@link CardReader.start}. */
  constructor(opts: CardReaderOptions) {
    super();
    this.name = opts.name;
    this.kind = opts.kind;
    this.#transport = opts.transport;
    this.#boundary = opts.boundary;
    this.#clock = opts.clock ?? systemClock;
    this.#reconnect =
      opts.reconnect === false
        ? false
        : {
            initialDelayMs: opts.reconnect?.initialDelayMs ?? 500,
            maxDelayMs: opts.reconnect?.maxDelayMs ?? 30_000,
          };
  }

  /** The configured transport path. */
  get path(): string {
    return this.#transport.path;
  }

  /** Current state. */
  get state(): CardReaderState {
    return this.#state;
  }

  /** Why it is not connected (the last open or disconnect error), for status pages. */
  get lastError(): AgentError | undefined {
    return this.#lastError;
  }

  /** True while a {@link CardReader.read} is waiting for a card. */
  get armed(): boolean {
    return this.#armed !== undefined;
  }

  /**
   * Opens the transport; on failure the state is `disconnected` (with the error) and reopening
   * is scheduled. Never throws: a missing reader does not stop the agent.
   */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (error) {
      this.#lastError = asAgentError(error, this.path);
      this.#setState('disconnected', this.#lastError);
      this.#scheduleReconnect();
    }
  }

  /**
   * Waits for the next card on this reader and tokenizes it. One read at a time.
   * Resolves `{ ok: false, reason }` with `canceled` (signal aborted), `reader_disconnected`
   * (not connected, or unplugged during the read), or the boundary's verdict (`bad_read`,
   * `no_start_sentinel`, `chip_required`, `invalid_pan`, `expired`). Never rejects.
   */
  read(signal?: AbortSignal): Promise<CardReaderResult> {
    if (this.#state !== 'connected') return Promise.resolve(fail('reader_disconnected'));
    if (signal?.aborted === true) return Promise.resolve(fail('canceled'));
    if (this.#armed !== undefined) this.#settle(fail('canceled'));
    return new Promise<CardReaderResult>((resolve) => {
      const armed: Armed = {
        resolve,
        signal,
        onAbort: () => {
          if (this.#armed === armed) this.#settle(fail('canceled'));
        },
      };
      this.#armed = armed;
      signal?.addEventListener('abort', armed.onAbort, { once: true });
    });
  }

  /** Closes the transport and stops reconnecting; a pending read ends as `canceled`. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) this.#clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#settle(fail('canceled'));
    this.#detach();
    await this.#transport.close().catch(() => undefined);
    this.#setState('closed');
  }

  async #connect(): Promise<void> {
    await this.#transport.open();
    if (this.#closed) {
      await this.#transport.close().catch(() => undefined);
      return;
    }
    this.#wedge.reset();
    if (this.kind === 'serial') {
      // encoding undefined: lines stay Buffers (a string could not be wiped, architecture.md §2).
      const lines = new ReadlineParser({ delimiter: '\n', encoding: undefined as never });
      lines.on('data', (line: Buffer) => this.#swipeText(line));
      this.#lines = lines;
    }
    this.#transport.on('data', this.#onData);
    this.#transport.on('close', this.#onClose);
    this.#attempt = 0;
    this.#lastError = undefined;
    this.#setState('connected');
  }

  #detach(): void {
    this.#transport.off('data', this.#onData);
    this.#transport.off('close', this.#onClose);
    this.#wedge.reset();
    const lines = this.#lines;
    this.#lines = undefined;
    if (lines !== undefined) {
      (lines as unknown as { buffer: Buffer }).buffer.fill(0);
      lines.removeAllListeners('data');
      lines.destroy();
    }
  }

  #disconnected(error?: Error): void {
    this.#detach();
    this.#lastError =
      error === undefined
        ? driverError('POS144', `Card reader ${this.name} (${this.path}) closed`)
        : asAgentError(error, this.path);
    this.#settle(fail('reader_disconnected'));
    this.#setState('disconnected', this.#lastError);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnect === false || this.#reconnectTimer !== undefined) return;
    const { initialDelayMs, maxDelayMs } = this.#reconnect;
    this.#attempt += 1;
    const delayMs = backoffDelayMs(this.#attempt, { baseMs: initialDelayMs, maxMs: maxDelayMs });
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#closed) return;
      this.#setState('connecting');
      this.#connect().catch((error: unknown) => {
        this.#lastError = asAgentError(error, this.path);
        this.emit('warning', this.#lastError);
        this.#setState('disconnected', this.#lastError);
        this.#scheduleReconnect();
      });
    }, delayMs);
  }

  #setState(state: CardReaderState, error?: AgentError): void {
    if (this.#state === state) return;
    this.#state = state;
    if (error === undefined) this.emit('state', state);
    else this.emit('state', state, error);
  }

  #settle(result: CardReaderResult): void {
    const armed = this.#armed;
    if (armed === undefined) return;
    this.#armed = undefined;
    armed.signal?.removeEventListener('abort', armed.onAbort);
    armed.resolve(result);
  }

  #receive(chunk: Buffer): void {
    try {
      if (this.kind === 'hid-msr') this.#hidReport(chunk);
      else if (this.kind === 'wedge') {
        for (const out of this.#wedge.push(chunk)) {
          if (out.kind === 'swipe') this.#swipeText(out.text);
          else this.#badInput(out.error);
        }
      } else this.#serialChunk(chunk);
    } finally {
      chunk.fill(0);
    }
  }

  #serialChunk(chunk: Buffer): void {
    const lines = this.#lines;
    if (lines === undefined) return;
    const previous = (lines as unknown as { buffer: Buffer }).buffer;
    lines.write(chunk);
    // DelimiterParser copied the previous partial line into a new buffer: wipe the old copy.
    if ((lines as unknown as { buffer: Buffer }).buffer !== previous) previous.fill(0);
  }

  #hidReport(report: Buffer): void {
    if (isSredHidReportSize(report.length)) {
      this.#sredReport(report);
      return;
    }
    const parsed = parseHidMsrReport(report);
    if (!parsed.ok) {
      this.#badInput(parsed.error);
      return;
    }
    const { track1, track2, track3 } = parsed.report;
    track3?.fill(0);
    if (track1 === undefined && track2 === undefined) {
      this.#deliver(() => fail('bad_read'));
      return;
    }
    this.#deliver(() => this.#tokenize(track1, track2));
  }

  /**
   * An encrypting reader's report (sred-hid-report.ts): masked data and ciphertext pass through
   * `tokenizeSred` unopened; the report (encrypted and masked tracks) is wiped by the caller.
   */
  #sredReport(report: Buffer): void {
    const parsed = parseSredHidReport(report);
    if (!parsed.ok) {
      this.#badInput(parsed.error);
      return;
    }
    const read = sredReadOf(parsed.report);
    if (!read.ok) {
      this.emit('warning', read.error);
      this.#deliver(() => fail(read.reason));
      return;
    }
    this.#deliver(() => {
      const result = this.#boundary.tokenizeSred(read.read);
      return result.ok ? result : fail(result.reason);
    });
  }

  #swipeText(text: Buffer): void {
    try {
      let start = 0;
      while (start < text.length && (text[start] === 0x0d || text[start] === 0x0a)) start++;
      if (start === text.length) return; // an empty line: nothing was swiped
      const first = text[start];
      const tracks = splitSwipeText(text.subarray(start));
      tracks.track3?.fill(0);
      if (first !== 0x25 && first !== 0x3b) {
        // ISO/IEC 7813: a swipe begins with a start sentinel; anything else is a reversed or
        // partial swipe, or not card data at all.
        this.#deliver(() => fail('no_start_sentinel'));
        return;
      }
      this.#deliver(() => this.#tokenize(tracks.track1, tracks.track2));
    } finally {
      text.fill(0);
    }
  }

  #tokenize(track1: Buffer | undefined, track2: Buffer | undefined): CardReaderResult {
    const result = this.#boundary.tokenize({
      entryMode: 'swipe',
      ...(track1 === undefined ? {} : { track1 }),
      ...(track2 === undefined ? {} : { track2 }),
    });
    return result.ok ? result : fail(result.reason);
  }

  /** Tokenizes only when a read is armed; otherwise the caller's finally-wipe discards it. */
  #deliver(produce: () => CardReaderResult): void {
    if (this.#armed === undefined) {
      this.emit('swipe-discarded', { reader: this.name, reason: 'no_payment' });
      return;
    }
    this.#settle(produce());
  }

  #badInput(error: AgentError): void {
    this.emit('warning', error);
    if (this.#armed !== undefined) this.#settle(fail('bad_read'));
    else this.emit('swipe-discarded', { reader: this.name, reason: 'bad_input' });
  }
}

function fail(reason: CardReadFailure): CardReaderResult {
  return { ok: false, reason };
}

function asAgentError(error: unknown, path: string): AgentError {
  if (isAgentError(error)) return error;
  return driverError('POS144', `Card reader ${path} failed: ${(error as Error).message}`, {
    cause: error,
  });
}
