/**
 * The PIN pad device (architecture.md §3 layer 4): typed async methods and events over the reference
 * message set (messages.ts, architecture.md §3.2), the STX/ETX/LRC link (serial-link.ts, §3.1) and a
 * {@link Transport}. Card data from message 21 goes straight into the {@link CardBoundary};
 * callers only ever see a {@link CardToken}.
 *
 * ```
 *  host                         pad
 *   20 read card ───────────►          (ACK)
 *            ◄────────────── 21 / 22 / 29            → CardBoundary → CardToken
 *   30 PIN      ───────────►
 *            ◄────────────── 31 / 39
 *   40 cancel   ───────────►  (any time; the pending 20/30 ends as 'canceled')
 *            ◄────────────── 41
 *            ◄────────────── 90 event (unsolicited, any time)
 * ```
 *
 * Operations run one at a time (a second call waits for the first), except `cancel()`, which is
 * sent at once. A message that arrives out of turn (a late reply after a timeout, a duplicate
 * after a lost ACK) is reported as a `'warning'` and ignored; card data in it is wiped.
 *
 * Cancel without ambiguity: the message set has no request ids, so a late 21 for an operation
 * the host gave up on could be taken as the answer to the next request. When the host abandons a
 * 20/30 without the pad's 41 (cancel() gave up, or the answer did not come in time), the next
 * operation first sends 40 again and waits for its 41; what the pad sends before that 41 belongs
 * to the abandoned operation and is discarded as out of turn:
 *
 * ```
 *   20 ──►            40 ──► (no 41: abandoned)      next call:  40 ──►
 *                                                          ◄── 21 (late, old card: discarded)
 *                                                          ◄── 41 (the pad is idle now)
 *                                                    20 ──►  ◄── 21 (this payment's card)
 * ```
 *
 * Why this file is over 500 lines: nearly all of it is the one class `PinPad`, whose methods share
 * its private state (the link, the waiters, the serialized operation chain, the abandoned-cancel
 * flag, the reconnect timer); split, that state would have to be exposed. Its API shapes are in
 * pin-pad-types.ts, the backoff in common/backoff.ts.
 */
import type { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { isAgentError, type AgentError } from '../../common/agent-error.js';
import { backoffDelayMs } from '../../common/backoff.js';
import { systemClock, type Clock, type TimerHandle } from '../../common/clock.js';
import type { CardBoundary } from '../boundary/card-boundary.js';
import type { EntryMode } from '../boundary/card-token.js';
import { driverError } from '../errors.js';
import type { LinkStats } from '../link/serial-link.js';
import { emptyLinkStats, SerialLink } from '../link/serial-link.js';
import type { LinkTimings } from '../link/link-machine.js';
import type { Transport } from '../transport/transport.js';
import {
  decodeMessage,
  encodeMessage,
  isHostMessage,
  type EntryModeCode,
  type HostMessage,
  type PadEvent,
  type PadMessage,
  REQUEST_ID_CAPABILITY,
  type ResultOutcome,
} from './messages.js';
import type {
  PinPadOptions,
  PinPadState,
  PinPadStatus,
  PinRequest,
  PinResult,
  ReadCardRequest,
  ReadCardResult,
} from './pin-pad-types.js';

export type * from './pin-pad-types.js';

type PinPadEvents = {
  /** Connection state changed. */
  state: [state: PinPadState];
  /** Unsolicited device event (message 90). */
  'device-event': [event: PadEvent];
  /** A problem that did not fail a call: out-of-turn or malformed message (POS121), bad frame (POS110). */
  warning: [warning: AgentError];
};

interface Waiter {
  accepts: ReadonlySet<PadMessage['id']>;
  /** For 20/30: what the pending operation becomes when the pad answers 41 only. */
  onCanceled?: PadMessage;
  resolve: (message: PadMessage) => void;
  reject: (error: Error) => void;
  timer: TimerHandle | undefined;
  request: HostMessage['id'];
  /** The request id sent with 20/30 (pads with `RID`): only an answer repeating it is taken. */
  requestId?: string;
}

const ENTRY_MODE: Record<EntryModeCode, EntryMode> = { S: 'swipe', C: 'chip', T: 'contactless' };

/**
 * A PIN pad speaking the reference message set (architecture.md §3.2).
 *
 * Errors of every method: `POS102` while disconnected or when the connection drops during the
 * call, `POS111` when the pad does not ACK, `POS120` when it does not answer in time,
 * `POS122` for an invalid request.
 */
export class PinPad extends EventEmitter<PinPadEvents> {
  readonly #transport: Transport;
  readonly #boundary: CardBoundary;
  readonly #clock: Clock;
  readonly #timings: Partial<LinkTimings>;
  readonly #responseTimeoutMs: number;
  readonly #resultTimeoutMs: number;
  readonly #reconnect: { initialDelayMs: number; maxDelayMs: number } | false;
  #link: SerialLink | undefined;
  #state: PinPadState = 'disconnected';
  #waiters: Waiter[] = [];
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** A 20/30 was abandoned without the pad's 41: send 40 again before the next operation. */
  #unconfirmed = false;
  /** The pad announced `RID` in its status (message 01): 20/30 carry request ids. */
  #requestIds = false;
  #lastRequestId = 0;
  #reconnectTimer: TimerHandle | undefined;
  /** Reconnect attempts since the last connection (the backoff's attempt number). */
  #reconnectAttempt = 0;
  readonly #onData = (chunk: Buffer): void => {
    this.#link?.receive(chunk);
    chunk.fill(0);
  };
  readonly #onClose = (error?: Error): void => this.#disconnected(error);

  private constructor(opts: PinPadOptions) {
    super();
    this.#transport = opts.transport;
    this.#boundary = opts.boundary;
    this.#clock = opts.clock ?? systemClock;
    this.#timings = opts.link ?? {};
    this.#responseTimeoutMs = opts.responseTimeoutMs ?? 5000;
    this.#resultTimeoutMs = opts.resultTimeoutMs ?? 30_000;
    this.#reconnect =
      opts.reconnect === false
        ? false
        : {
            initialDelayMs: opts.reconnect?.initialDelayMs ?? 500,
            maxDelayMs: opts.reconnect?.maxDelayMs ?? 30_000,
          };
  }

  /**
   * Opens the transport and returns a connected pad.
   * @throws AgentError `POS101` when the transport cannot be opened.
   */
  static async open(opts: PinPadOptions): Promise<PinPad> {
    const pad = new PinPad(opts);
    await pad.#connect();
    return pad;
  }

  /**
   * A pad that is not opened yet: attach the `'state'` and `'warning'` listeners, then
   * {@link start} it. For a host that must run while the pad is absent (the agent).
   */
  static create(opts: PinPadOptions): PinPad {
    return new PinPad(opts);
  }

  /**
   * Opens the transport; resolves after this first attempt whether or not it succeeded. A pad
   * that cannot be opened now (unplugged, ser2net not up yet) stays `'disconnected'`, emits the
   * failure as `'warning'` (`POS101`) and is reopened by the same backoff as after a disconnect
   * (`reconnect`); `'state'` says `'connected'` once it opens.
   */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (error) {
      if (isAgentError(error)) this.emit('warning', error);
      this.#scheduleReconnect();
    }
  }

  /** Current connection state. */
  get state(): PinPadState {
    return this.#state;
  }

  /** Link counters of the current connection (zeros while disconnected). */
  get linkStats(): LinkStats {
    return this.#link?.stats ?? emptyLinkStats();
  }

  /** Asks for the pad's status (00 → 01). */
  async status(): Promise<PinPadStatus> {
    const reply = await this.#serialize(() =>
      this.#exchange({ id: '00' }, ['01'], this.#responseTimeoutMs),
    );
    if (reply.id !== '01') throw this.#unexpected(reply.id, '00');
    const { model, serial, firmware, capabilities } = reply;
    this.#requestIds = capabilities.includes(REQUEST_ID_CAPABILITY);
    return { model, serial, firmware, capabilities };
  }

  /** Shows two lines of at most 32 printable ASCII characters (10; done when the pad ACKs). */
  async display(line1: string, line2: string): Promise<void> {
    await this.#serialize(() => this.#sendOnly({ id: '10', line1, line2 }));
  }

  /**
   * Asks for a card (20) and tokenizes it (21 → CardBoundary; 22 → SRED pass-through).
   * Waits `timeoutSeconds` plus `responseTimeoutMs`. Card failures (29 and the boundary's own
   * verdicts) resolve as `{ ok: false, reason }`; transport and protocol problems throw.
   */
  async readCard(req: ReadCardRequest): Promise<ReadCardResult> {
    const reply = await this.#serialize(() =>
      this.#exchange(
        { id: '20', ...req, ...this.#requestId() },
        ['21', '22', '29'],
        req.timeoutSeconds * 1000 + this.#responseTimeoutMs,
        { id: '29', reason: 'canceled' },
      ),
    );
    switch (reply.id) {
      case '21': {
        const result = this.#boundary.tokenize({
          entryMode: ENTRY_MODE[reply.entryMode],
          track1: reply.track1,
          track2: reply.track2,
          emvTlv: reply.emvTlv,
        });
        return result.ok ? result : { ok: false, reason: result.reason };
      }
      case '22': {
        const result = this.#boundary.tokenizeSred({
          ...reply,
          entryMode: ENTRY_MODE[reply.entryMode],
        });
        return result.ok ? result : { ok: false, reason: result.reason };
      }
      case '29':
        return { ok: false, reason: reply.reason };
      default:
        throw this.#unexpected(reply.id, '20');
    }
  }

  /** Asks for the PIN of the card just read (30 → 31 encrypted PIN block, or 39). */
  async requestPin(req: PinRequest): Promise<PinResult> {
    const reply = await this.#serialize(() =>
      this.#exchange(
        { id: '30', ...req, ...this.#requestId() },
        ['31', '39'],
        req.timeoutSeconds * 1000 + this.#responseTimeoutMs,
        { id: '39', reason: 'canceled' },
      ),
    );
    if (reply.id === '31')
      return {
        ok: true,
        pinBlock: { format: reply.format, ksnHex: reply.ksnHex, pinBlockHex: reply.pinBlockHex },
      };
    if (reply.id === '39') return { ok: false, reason: reply.reason };
    throw this.#unexpected(reply.id, '30');
  }

  /**
   * Cancels the current operation (40 → 41), at once; a pending readCard/requestPin ends as
   * `canceled` when 41 arrives, or at the latest when this call gives up (the pad never confirmed):
   * the host has abandoned that operation, so the serialized chain moves on and a late 21/22/29/31
   * for it is an out-of-turn message (`'warning'` POS121, card data wiped).
   * @throws AgentError `POS120` when the pad does not answer 41 within `responseTimeoutMs`
   *   (the pending read has then already ended as `canceled`); `POS102`, `POS111` as every method.
   */
  async cancel(): Promise<void> {
    // Only the operations pending now: one sent after this cancel is not what the host canceled.
    const abandoned = this.#waiters.filter((w) => w.onCanceled !== undefined);
    try {
      await this.#exchange({ id: '40' }, ['41'], this.#responseTimeoutMs);
      this.#unconfirmed = false;
    } catch (error) {
      // The pad may still be busy with what was canceled and answer it later.
      this.#unconfirmed = true;
      throw error;
    } finally {
      // After 41 they already ended (#onFrame); after a timeout or a send failure, end them here.
      for (const waiter of abandoned)
        if (waiter.onCanceled !== undefined && this.#remove(waiter))
          waiter.resolve(waiter.onCanceled);
    }
  }

  /** Shows the outcome (50 → 51 once shown and the card removed; waits `resultTimeoutMs`). */
  async showResult(outcome: ResultOutcome, text: string): Promise<void> {
    await this.#serialize(() =>
      this.#exchange({ id: '50', outcome, text }, ['51'], this.#resultTimeoutMs),
    );
  }

  /** Closes the transport and stops reconnecting; pending calls reject with `POS102`. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) this.#clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#failAll(driverError('POS102', `PIN pad ${this.#transport.path} was closed by the agent`));
    this.#transport.off('close', this.#onClose);
    this.#transport.off('data', this.#onData);
    await this.#transport.close();
    this.#setState('disconnected');
  }

  async #connect(): Promise<void> {
    await this.#transport.open();
    if (this.#closed) {
      // Closed while a reopen was under way: the host has let the pad go.
      await this.#transport.close().catch(() => undefined);
      return;
    }
    // Another pad may be on the line now: request ids only after its status says so.
    this.#requestIds = false;
    const link = new SerialLink((bytes) => this.#transport.write(bytes), {
      timings: this.#timings,
      clock: this.#clock,
    });
    link.on('frame', (payload) => this.#onFrame(payload));
    link.on('bad-frame', (reason) =>
      this.emit(
        'warning',
        driverError('POS110', `Bad frame from the PIN pad (${reason}); NAK sent`, {
          details: { reason },
        }),
      ),
    );
    this.#link = link;
    this.#transport.on('data', this.#onData);
    this.#transport.on('close', this.#onClose);
    this.#reconnectAttempt = 0;
    this.#setState('connected');
  }

  #disconnected(error?: Error): void {
    this.#transport.off('data', this.#onData);
    this.#transport.off('close', this.#onClose);
    const reason = error ?? driverError('POS102', `PIN pad ${this.#transport.path} disconnected`);
    this.#failAll(reason);
    this.#setState('disconnected');
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnect === false || this.#reconnectTimer !== undefined) return;
    const { initialDelayMs, maxDelayMs } = this.#reconnect;
    this.#reconnectAttempt += 1;
    const delayMs = backoffDelayMs(this.#reconnectAttempt, {
      baseMs: initialDelayMs,
      maxMs: maxDelayMs,
    });
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#closed) return;
      this.#connect().catch((error: unknown) => {
        if (isAgentError(error)) this.emit('warning', error);
        this.#scheduleReconnect();
      });
    }, delayMs);
  }

  #failAll(error: Error): void {
    this.#link?.shutdown(error);
    this.#link = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
      w.reject(error);
    }
  }

  #setState(state: PinPadState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #serialize<T>(operation: () => Promise<T>): Promise<T> {
    const guarded = (): Promise<T> => this.#confirmAbandoned().then(operation);
    const run = this.#chain.then(guarded, guarded);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Before an operation: when an earlier 20/30 was abandoned without a 41, cancel it again and
   * wait for the 41, so its late answer (discarded as out of turn) cannot be taken for this one.
   * @throws AgentError `POS120` when the pad still does not confirm: nothing is sent then.
   */
  async #confirmAbandoned(): Promise<void> {
    // With request ids a late answer names its request: nothing to confirm.
    if (!this.#unconfirmed || this.#requestIds) return;
    try {
      await this.#exchange({ id: '40' }, ['41'], this.#responseTimeoutMs);
    } catch (error) {
      if (!isAgentError(error, 'POS120')) throw error;
      throw driverError(
        'POS120',
        `PIN pad ${this.#transport.path} did not confirm the cancel of an earlier operation (no 41 to 40 within ${this.#responseTimeoutMs} ms), so its late answer could be taken for the next one; nothing was sent: check that the pad is idle, or power-cycle it`,
        { details: { request: '40', timeoutMs: this.#responseTimeoutMs }, cause: error },
      );
    }
    this.#unconfirmed = false;
  }

  /** A fresh request id for 20/30 when the pad takes them (`R1`, `R2`, … base 36). */
  #requestId(): { requestId?: string } {
    if (!this.#requestIds) return {};
    this.#lastRequestId = (this.#lastRequestId % 36 ** 7) + 1;
    return { requestId: `R${this.#lastRequestId.toString(36).toUpperCase()}` };
  }

  #requireLink(): SerialLink {
    if (this.#link === undefined || this.#state !== 'connected')
      throw driverError(
        'POS102',
        `PIN pad ${this.#transport.path} is disconnected: check its cable and power; the agent reconnects on its own`,
      );
    return this.#link;
  }

  async #sendOnly(message: HostMessage): Promise<void> {
    const link = this.#requireLink();
    await link.send(encodeMessage(message));
  }

  /** Registers the waiter before sending, so a reply in the same chunk as the ACK is not lost. */
  #exchange(
    message: HostMessage,
    accepts: PadMessage['id'][],
    timeoutMs: number,
    onCanceled?: PadMessage,
  ): Promise<PadMessage> {
    let link: SerialLink;
    let payload: Buffer;
    try {
      link = this.#requireLink();
      payload = encodeMessage(message);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise<PadMessage>((resolve, reject) => {
      const waiter: Waiter = {
        accepts: new Set(accepts),
        resolve,
        reject,
        timer: undefined,
        request: message.id,
        ...(onCanceled === undefined ? {} : { onCanceled }),
        ...('requestId' in message && message.requestId !== undefined
          ? { requestId: message.requestId }
          : {}),
      };
      waiter.timer = this.#clock.setTimeout(() => {
        this.#remove(waiter);
        // A card read or PIN entry the host stops waiting for may still be answered.
        if (onCanceled !== undefined) this.#unconfirmed = true;
        reject(
          driverError(
            'POS120',
            `PIN pad ${this.#transport.path} did not answer message ${message.id} within ${timeoutMs} ms: check that it is powered and idle, or raise responseTimeoutMs`,
            { details: { request: message.id, timeoutMs } },
          ),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
      link.send(payload).catch((error: unknown) => {
        if (this.#remove(waiter)) reject(error as Error);
      });
    });
  }

  #remove(waiter: Waiter): boolean {
    const i = this.#waiters.indexOf(waiter);
    if (i < 0) return false;
    this.#waiters.splice(i, 1);
    if (waiter.timer !== undefined) this.#clock.clearTimeout(waiter.timer);
    return true;
  }

  #onFrame(payload: Buffer): void {
    let message;
    try {
      message = decodeMessage(payload);
    } catch (error) {
      if (isAgentError(error)) this.emit('warning', error);
      return;
    } finally {
      payload.fill(0);
    }
    if (isHostMessage(message)) {
      this.emit('warning', this.#unexpected(message.id));
      return;
    }
    if (message.id === '90') {
      this.emit('device-event', message.event);
      return;
    }
    const answerId = 'requestId' in message ? message.requestId : undefined;
    const waiter = this.#waiters.find(
      (w) => w.accepts.has(message.id) && (w.requestId === undefined || w.requestId === answerId),
    );
    if (waiter !== undefined) {
      this.#remove(waiter);
      waiter.resolve(message);
      if (message.id === '41')
        for (const other of [...this.#waiters])
          if (other.onCanceled !== undefined) {
            this.#remove(other);
            other.resolve(other.onCanceled);
          }
      return;
    }
    if (message.id === '21') {
      message.track1.fill(0);
      message.track2.fill(0);
      message.emvTlv.fill(0);
    }
    this.emit('warning', this.#unexpected(message.id));
  }

  #unexpected(id: string, request?: string): AgentError {
    return driverError(
      'POS121',
      request === undefined
        ? `PIN pad message ${id} arrived out of turn (late reply or duplicate after a lost ACK); ignored`
        : `PIN pad answered ${id} to request ${request}`,
      { details: { id } },
    );
  }
}
