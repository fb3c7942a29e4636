/**
 * Card input from several devices at once (issue 4 item 3): the PIN pad and any number of card
 * readers. A payment's card read races the PIN pad's read against a swipe on any connected
 * reader; the first card wins and the others are stopped.
 *
 * ```
 *  readCard(request) ──► PinPad.readCard(20) ────────┐
 *                    ├─► reader A.read() ───────────┼─► first decisive result wins
 *                    └─► reader B.read() ───────────┘      │
 *                                                          ├─ a reader won → PinPad.cancel() (40 → 41)
 *                                                          └─ the pad won  → readers' reads aborted
 *  swipe while no read is armed ─► the reader wipes it ─► 'prompt' { text: 'No payment in progress…' }
 * ```
 *
 * Decisions (docs/architecture.md is silent; written down here):
 * - Only readers that are connected when the read starts take part; a reader that is unplugged
 *   *during* the read fails the read with `reader_disconnected` (issue 4 item 5: fail safely, with
 *   a named reason; the POS app starts the payment again).
 * - A PIN pad that throws (disconnected, no ACK) while readers still wait does not end the read:
 *   the customer may still swipe. When nothing else is waiting, its error is thrown.
 * - The readers' wait is bounded by `timeoutSeconds` on the injected clock; the pad keeps its own.
 */
import { EventEmitter } from 'node:events';
import { AgentError } from '../common/agent-error.js';
import { systemClock, type Clock, type TimerHandle } from '../common/clock.js';
import type { CardReadFailure, CardToken } from '../drivers/boundary/card-token.js';
import type { ReadCardRequest, ReadCardResult } from '../drivers/pinpad/pin-pad.js';
import type { CardReader } from '../drivers/readers/card-reader.js';

/** What CardInput needs of a PIN pad (the real {@link PinPad} fits). */
export interface CardInputPinPad {
  readCard(request: ReadCardRequest): Promise<ReadCardResult>;
  cancel(): Promise<void>;
}

/** Result of {@link CardInput.readCard}: the PIN pad's result shape plus where the card came from. */
export type CardInputResult =
  | { ok: true; card: CardToken; source: string }
  | { ok: false; reason: CardReadFailure; source: string };

/** A message for the terminal's screen (the agent forwards it to `/v1/events`). */
export interface CardInputPrompt {
  text: string;
  /** `pinPad` or the reader's configured name. */
  source: string;
}

/** Name used as `source` for the PIN pad. */
export const PIN_PAD_SOURCE = 'pinPad';

type Outcome =
  | { kind: 'result'; source: string; result: ReadCardResult }
  | { kind: 'pad-error'; error: unknown }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

/** See the module comment. Emits `'prompt'` ({@link CardInputPrompt}). */
export class CardInput extends EventEmitter<{ prompt: [prompt: CardInputPrompt] }> {
  readonly #pinPad: () => CardInputPinPad | undefined;
  readonly #readers: readonly CardReader[];
  readonly #clock: Clock;
  #busy = false;

  /**
   * @param deps.pinPad — the connected PIN pad, or undefined while it is disconnected.
   * @param deps.readers — the configured card readers (connected or not).
   * @param deps.clock — for the readers' timeout. @default systemClock
   */
  constructor(deps: {
    pinPad: () => CardInputPinPad | undefined;
    readers: readonly CardReader[];
    clock?: Clock;
  }) {
    super();
    this.#pinPad = deps.pinPad;
    this.#readers = deps.readers;
    this.#clock = deps.clock ?? systemClock;
    for (const reader of this.#readers)
      reader.on('swipe-discarded', (swipe) => {
        this.emit('prompt', {
          text:
            swipe.reason === 'no_payment'
              ? 'No payment in progress: card ignored'
              : 'Card reader input not understood: swipe again during a payment',
          source: swipe.reader,
        });
      });
  }

  /**
   * Reads one card from whichever device presents it first.
   * @param request — amount, currency, timeout (s) and entry modes for the PIN pad.
   * @param signal — aborts the read (the payment was canceled): resolves `canceled`.
   * @returns the card or the failure, with `source`. Card failures resolve; they never throw.
   * @throws AgentError POS430 when neither the PIN pad nor any card reader is connected;
   *   POS410 when a read is already running; the PIN pad's error (POS102/POS111/POS120) when it
   *   was the only device and failed.
   */
  async readCard(request: ReadCardRequest, signal?: AbortSignal): Promise<CardInputResult> {
    if (this.#busy)
      throw new AgentError(
        'POS410',
        'a card read is already in progress; wait for it or cancel it',
      );
    const pad = this.#pinPad();
    const readers = this.#readers.filter((r) => r.state === 'connected');
    if (pad === undefined && readers.length === 0)
      throw new AgentError(
        'POS430',
        `neither the PIN pad nor a card reader is connected (${this.#readers.length} reader(s) configured); check the cables and "pos-agent devices", then retry`,
      );
    this.#busy = true;
    try {
      return await this.#race(request, pad, readers, signal);
    } finally {
      this.#busy = false;
    }
  }

  async #race(
    request: ReadCardRequest,
    pad: CardInputPinPad | undefined,
    readers: CardReader[],
    signal: AbortSignal | undefined,
  ): Promise<CardInputResult> {
    // Only readers take the stop signal: a read from the PIN pad alone creates none, and its
    // abort() (a DOMException with its stack, ~10-20 µs here) stays off the path between the card and
    // the payment's commit (issue 9 §2).
    const stop = readers.length > 0 ? new AbortController() : undefined;
    let pending = readers.length + (pad === undefined ? 0 : 1);
    let padError: unknown;
    let timer: TimerHandle | undefined;
    let onAbort: (() => void) | undefined;
    let padRead: Promise<unknown> | undefined;

    const outcome = await new Promise<Outcome>((resolve) => {
      const settle = (o: Outcome): void => resolve(o);
      const oneDone = (): void => {
        pending--;
        if (pending === 0)
          settle(
            padError === undefined ? { kind: 'aborted' } : { kind: 'pad-error', error: padError },
          );
      };
      if (signal?.aborted === true) {
        settle({ kind: 'aborted' });
        return;
      }
      onAbort = () => settle({ kind: 'aborted' });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (readers.length > 0)
        timer = this.#clock.setTimeout(
          () => settle({ kind: 'timeout' }),
          request.timeoutSeconds * 1000,
        );
      if (stop !== undefined)
        for (const reader of readers)
          void reader.read(stop.signal).then((result) => {
            // 'canceled' only comes from our own stop signal (or close): not a decision.
            if (!result.ok && result.reason === 'canceled') oneDone();
            else settle({ kind: 'result', source: reader.name, result });
          });
      if (pad !== undefined)
        padRead = pad.readCard(request).then(
          (result) => settle({ kind: 'result', source: PIN_PAD_SOURCE, result }),
          (error: unknown) => {
            padError = error;
            oneDone();
          },
        );
    });

    if (timer !== undefined) this.#clock.clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    stop?.abort();
    const padWon = outcome.kind === 'result' && outcome.source === PIN_PAD_SOURCE;
    if (pad !== undefined && padRead !== undefined && !padWon && padError === undefined) {
      // Stop the pad's read (40 → 41); its pending readCard then ends as 'canceled'. A card the
      // pad read in the same instant is only a token: dropping it leaks nothing.
      await pad.cancel().catch(() => undefined);
      await padRead;
    }
    switch (outcome.kind) {
      case 'result':
        return { ...outcome.result, source: outcome.source };
      case 'timeout':
        return { ok: false, reason: 'timeout', source: readers[0]?.name ?? PIN_PAD_SOURCE };
      case 'aborted':
        return { ok: false, reason: 'canceled', source: PIN_PAD_SOURCE };
      case 'pad-error':
        throw outcome.error;
    }
  }
}
