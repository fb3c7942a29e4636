/**
 * The virtual PIN pad (architecture.md §7): speaks the STX/ETX/LRC link (architecture.md §3.1) and the reference
 * message set (§3.2) over any {@link ByteEndpoint} — in-process `mock://`, `tcp://`, or a real
 * pseudo-terminal through socat (see pad-server.ts). It reuses the drivers' framing, link
 * machine and message codec, so both sides share one codec.
 *
 * Default behaviours:
 * - 00 → 01 status; 10 → shows the lines (no reply); 50 → 51;
 * - 20 → 21 with the next card queued by {@link VirtualPinPad.presentCard} (or the `autoPresent`
 *   card); with none it waits up to `timeoutSeconds` for one, then answers 29 `timeout`;
 * - 30 → 31 with a random "encrypted" PIN block and KSN (or the configured `pinResult`);
 * - 40 → 29/39 `canceled` for a pending read/PIN, then 41.
 *
 * Per-test overrides ({@link VirtualPinPad.override}) replace the answer to one message id.
 * Named fault switches ({@link PadFault}, all listed in {@link PAD_FAULT_KINDS}): bad LRC, dropped
 * ACK, slow reply, garbage bytes, unplug/replug, card errors, PIN timeout/cancel/bypass, a cancel
 * the pad never confirms. {@link VirtualPinPad.setStandingFaults} arms faults again for every
 * payment (what `pos-agent sim pinpad --fault` uses).
 *
 * The pad's shapes (card presentation, faults, options) are in virtual-pin-pad-types.ts.
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../common/clock.js';
import type { LinkTimings } from '../drivers/link/link-machine.js';
import { SerialLink } from '../drivers/link/serial-link.js';
import {
  decodeMessage,
  encodeMessage,
  isHostMessage,
  type HostMessage,
  type PadEvent,
  type PadMessage,
  type PinFailure,
} from '../drivers/pinpad/messages.js';
import type { ByteEndpoint, MockPeer } from '../drivers/transport/transport.js';
import {
  buildEmvTlv,
  buildTrack1,
  buildTrack2,
  findTestCard,
  type TestCard,
} from './test-cards.js';
import type {
  CardPresentation,
  PadFault,
  PadOverride,
  TraceEntry,
  VirtualPinPadOptions,
} from './virtual-pin-pad-types.js';

export * from './virtual-pin-pad-types.js';

interface QueuedCard extends CardPresentation {
  pan: string;
}

/**
 * The request id of a 20/30 to repeat in its answer (architecture.md §3.2 optional request id): a host
 * only sends one to a pad whose capabilities list `RID`, so echoing whatever came is enough.
 */
function echoId(request: { requestId?: string }): { requestId?: string } {
  return request.requestId === undefined ? {} : { requestId: request.requestId };
}

type PadEvents = {
  /** A host connected (open of mock://, TCP accept, pty opened). */
  attached: [];
  /** The connection ended. */
  detached: [];
  /** A host message was received and handled. */
  message: [message: HostMessage];
};

/** The virtual PIN pad; a {@link MockPeer}, so it can be registered under `mock://name`. */
export class VirtualPinPad extends EventEmitter<PadEvents> implements MockPeer {
  /** Every host message received, in order (decoded). */
  readonly received: HostMessage[] = [];
  /** Raw bytes in both directions, for recorded-trace assertions. */
  readonly trace: TraceEntry[] = [];
  /** The two lines last shown by message 10. */
  display: [string, string] = ['', ''];
  /** The last result shown by message 50. */
  lastResult: { outcome: string; text: string } | undefined;

  readonly #clock: Clock;
  readonly #timings: Partial<LinkTimings>;
  readonly #status: { model: string; serial: string; firmware: string; capabilities: string[] };
  #autoPresent: QueuedCard | undefined;
  readonly #cards: QueuedCard[] = [];
  readonly #overrides = new Map<HostMessage['id'], PadOverride>();
  readonly #faults: PadFault[] = [];
  #standing: readonly PadFault[] = [];
  readonly #timers = new Set<TimerHandle>();
  #pinResult: 'ok' | PinFailure;
  #endpoint: ByteEndpoint | undefined;
  #link: SerialLink | undefined;
  #unplugged = false;
  #pendingRead: { timer: TimerHandle; request: Extract<HostMessage, { id: '20' }> } | undefined;
  #ackDropped: 'no' | 'armed' | { duplicateOf: Buffer } = 'no';

  /** See {@link VirtualPinPadOptions}. */
  constructor(options: VirtualPinPadOptions = {}) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#timings = options.link ?? {};
    this.#status = {
      model: options.model ?? 'VPP-100',
      serial: options.serial ?? 'SIM0000001',
      firmware: options.firmware ?? '1.0.0',
      capabilities: options.capabilities ?? ['MSR', 'ICC', 'CTLS', 'PIN', 'SRED'],
    };
    this.#pinResult = options.pinResult ?? 'ok';
    const auto = options.autoPresent;
    if (auto !== undefined)
      this.#autoPresent =
        typeof auto === 'string' ? this.#queued(auto, {}) : this.#queued(auto.card, auto);
  }

  /** True while a host is connected. */
  get connected(): boolean {
    return this.#endpoint !== undefined;
  }

  /** Cards queued by {@link presentCard} and not read yet. */
  get queuedCards(): number {
    return this.#cards.length;
  }

  /** MockPeer: a host connected. Refused (closed at once) while unplugged. */
  attach(endpoint: ByteEndpoint): void {
    if (this.#unplugged) {
      endpoint.close();
      return;
    }
    this.#endpoint?.close();
    this.#endpoint = endpoint;
    const link = new SerialLink((bytes) => this.#write(bytes), {
      clock: this.#clock,
      timings: this.#timings,
      outgoingFilter: (bytes, what) => this.#filter(bytes, what),
    });
    this.#link = link;
    link.on('frame', (payload) => this.#onFrame(payload));
    endpoint.onReceive((bytes) => {
      this.trace.push({ direction: 'host-to-pad', bytes: Buffer.from(bytes) });
      link.receive(bytes);
    });
    endpoint.onClose(() => {
      if (this.#endpoint !== endpoint) return;
      this.#endpoint = undefined;
      this.#link = undefined;
      link.shutdown();
      this.#pendingRead = undefined;
      for (const t of this.#timers) this.#clock.clearTimeout(t);
      this.#timers.clear();
      this.emit('detached');
    });
    this.emit('attached');
  }

  /**
   * Queues a card for the next read (answers a pending read at once).
   * @param panOrCard — a test card name (`'visa'`), a PAN, or a {@link TestCard}.
   */
  presentCard(panOrCard: string | TestCard, presentation: CardPresentation = {}): void {
    const card =
      typeof panOrCard === 'string'
        ? panOrCard
        : findTestCard(panOrCard.name) === panOrCard
          ? panOrCard.name
          : panOrCard.pan;
    this.#cards.push(this.#queued(card, presentation));
    const pending = this.#pendingRead;
    if (pending !== undefined) {
      this.#clock.clearTimeout(pending.timer);
      this.#timers.delete(pending.timer);
      this.#pendingRead = undefined;
      this.#reply(this.#cardReply(pending.request));
    }
  }

  /** Drops every card queued by {@link presentCard} and not read yet. */
  clearQueuedCards(): void {
    this.#cards.length = 0;
  }

  /** Replaces the answer to `id` (or restores the default with `undefined`). */
  override(id: HostMessage['id'], handler: PadOverride | undefined): void {
    if (handler === undefined) this.#overrides.delete(id);
    else this.#overrides.set(id, handler);
  }

  /** Sets the answer to message 30. */
  setPinResult(result: 'ok' | PinFailure): void {
    this.#pinResult = result;
  }

  /** Switches a fault on (see {@link PadFault}). */
  injectFault(fault: PadFault): void {
    if (fault.kind === 'unplug') {
      this.#unplugged = true;
      this.#endpoint?.close();
      return;
    }
    this.#faults.push(fault);
  }

  /** Switches every fault off (not the unplugged state: see {@link replug}). */
  clearFaults(): void {
    this.#faults.length = 0;
  }

  /**
   * Faults armed now and again at every card read request (message 20), so each payment meets
   * each of them once; `[]` stops them. Replaces the previous standing faults; one-shot faults from
   * {@link injectFault} are kept.
   * @throws Error for `unplug` (a pad unplugged at every payment could never be used).
   */
  setStandingFaults(faults: readonly PadFault[]): void {
    if (faults.some((f) => f.kind === 'unplug'))
      throw new Error('unplug cannot be a standing fault: use injectFault and replug');
    const kinds = new Set([...this.#standing, ...faults].map((f) => f.kind));
    for (let i = this.#faults.length - 1; i >= 0; i--)
      if (kinds.has((this.#faults[i] as PadFault).kind)) this.#faults.splice(i, 1);
    this.#standing = [...faults];
    this.#faults.push(...faults);
  }

  /** The standing faults (see {@link setStandingFaults}). */
  get standingFaults(): readonly PadFault[] {
    return this.#standing;
  }

  /** The faults armed now (one-shot, standing ones not yet met, and slow-reply). */
  get armedFaults(): readonly PadFault[] {
    return [...this.#faults];
  }

  /** True while unplugged (see {@link injectFault} `unplug` and {@link replug}). */
  get unplugged(): boolean {
    return this.#unplugged;
  }

  /**
   * Changes the card answered to every read when no card is queued: a test card name, a PAN, a
   * card with its presentation, or `undefined` to wait for {@link presentCard} (a card reader
   * can then win the payment).
   */
  setAutoPresent(card: string | (CardPresentation & { card: string }) | undefined): void {
    this.#autoPresent =
      card === undefined
        ? undefined
        : typeof card === 'string'
          ? this.#queued(card, {})
          : this.#queued(card.card, card);
  }

  /** Plugs the pad back in: the host's next open (reconnect) succeeds. */
  replug(): void {
    this.#unplugged = false;
  }

  /** Sends an unsolicited event (message 90). */
  sendEvent(event: PadEvent): void {
    this.#reply([{ id: '90', event }]);
  }

  /** Sends any pad message now (for protocol tests: out-of-turn replies, duplicates). */
  sendRaw(message: PadMessage): Promise<void> {
    return this.#link?.send(encodeMessage(message)) ?? Promise.resolve();
  }

  /** A test card's own presentation (entry mode, expiry, service code) unless `p` says otherwise. */
  #queued(panOrName: string, p: CardPresentation): QueuedCard {
    const card = findTestCard(panOrName);
    if (card === undefined) return { ...p, pan: panOrName };
    const own: CardPresentation = {};
    if (card.entryMode !== undefined) own.entryMode = card.entryMode;
    if (card.expiry !== undefined) own.expiry = card.expiry;
    if (card.serviceCode !== undefined) own.serviceCode = card.serviceCode;
    return { ...own, ...p, pan: card.pan };
  }

  #takeFault<K extends PadFault['kind']>(kind: K): Extract<PadFault, { kind: K }> | undefined {
    const i = this.#faults.findIndex((f) => f.kind === kind);
    if (i < 0) return undefined;
    const [fault] = this.#faults.splice(i, 1);
    return fault as Extract<PadFault, { kind: K }>;
  }

  #write(bytes: Buffer): void {
    const endpoint = this.#endpoint;
    if (endpoint === undefined) return;
    this.trace.push({ direction: 'pad-to-host', bytes: Buffer.from(bytes) });
    endpoint.send(bytes);
  }

  #filter(bytes: Buffer, what: 'frame' | 'ack' | 'nak' | 'eot'): Buffer | null {
    if (what === 'ack' && this.#takeFault('drop-ack') !== undefined) {
      this.#ackDropped = 'armed';
      return null;
    }
    if (what !== 'frame') return bytes;
    const garbage = this.#takeFault('garbage');
    if (garbage !== undefined)
      this.#write(Buffer.from(garbage.bytes ?? randomBytes(5).map((b) => 0x41 + (b % 26))));
    if (this.#takeFault('bad-lrc') !== undefined) {
      const bad = Buffer.from(bytes);
      bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0x5a;
      return bad;
    }
    return bytes;
  }

  #onFrame(payload: Buffer): void {
    const dropped = this.#ackDropped;
    if (dropped === 'armed') this.#ackDropped = { duplicateOf: Buffer.from(payload) };
    else if (dropped !== 'no') {
      this.#ackDropped = 'no';
      // The retransmission of a frame whose ACK we dropped: already handled once.
      if (dropped.duplicateOf.equals(payload)) return;
    }
    let message;
    try {
      message = decodeMessage(payload);
    } catch {
      return;
    }
    if (!isHostMessage(message)) return;
    this.received.push(message);
    if (message.id === '20' && this.#standing.length > 0) {
      // A new payment: what the previous one did not meet is dropped, then every standing fault
      // is armed once more.
      const standingKinds = new Set(this.#standing.map((f) => f.kind));
      for (let i = this.#faults.length - 1; i >= 0; i--)
        if (standingKinds.has((this.#faults[i] as PadFault).kind)) this.#faults.splice(i, 1);
      this.#faults.push(...this.#standing);
    }
    const override = this.#overrides.get(message.id);
    if (override !== undefined) {
      const replies = override(message, this);
      this.#reply(Array.isArray(replies) ? replies : [replies]);
    } else this.#reply(this.#defaultReply(message));
    this.emit('message', message);
  }

  #defaultReply(message: HostMessage): PadMessage[] {
    switch (message.id) {
      case '00':
        return [{ id: '01', ...this.#status }];
      case '10':
        this.display = [message.line1, message.line2];
        return [];
      case '20':
        return this.#cardReply(message);
      case '30': {
        const result =
          this.#takeFault('pin-cancel') !== undefined
            ? 'canceled'
            : this.#takeFault('pin-timeout') !== undefined
              ? 'timeout'
              : this.#takeFault('pin-bypass') !== undefined
                ? 'bypassed'
                : this.#pinResult;
        const rid = echoId(message);
        if (result !== 'ok') return [{ id: '39', reason: result, ...rid }];
        return [
          {
            id: '31',
            format: 0,
            ksnHex: randomBytes(10).toString('hex').toUpperCase(),
            pinBlockHex: randomBytes(8).toString('hex').toUpperCase(),
            ...rid,
          },
        ];
      }
      case '40': {
        if (this.#takeFault('ignore-cancel') !== undefined) return [];
        const replies: PadMessage[] = [];
        const pending = this.#pendingRead;
        if (pending !== undefined) {
          this.#clock.clearTimeout(pending.timer);
          this.#timers.delete(pending.timer);
          this.#pendingRead = undefined;
          replies.push({ id: '29', reason: 'canceled', ...echoId(pending.request) });
        }
        replies.push({ id: '41' });
        return replies;
      }
      case '50':
        this.lastResult = { outcome: message.outcome, text: message.text };
        return [{ id: '51' }];
    }
  }

  #cardReply(request: Extract<HostMessage, { id: '20' }>): PadMessage[] {
    const rid = echoId(request);
    const error = this.#takeFault('card-error');
    if (error !== undefined) return [{ id: '29', reason: error.reason, ...rid }];
    const card = this.#cards.shift() ?? this.#autoPresent;
    if (card === undefined) {
      const timer = this.#clock.setTimeout(() => {
        this.#timers.delete(timer);
        this.#pendingRead = undefined;
        this.#reply([{ id: '29', reason: 'timeout', ...rid }]);
      }, request.timeoutSeconds * 1000);
      this.#timers.add(timer);
      this.#pendingRead = { timer, request };
      return [];
    }
    const mode = card.entryMode ?? 'C';
    const expiry = card.expiry ?? '3012';
    if (card.sred === true)
      return [
        {
          id: '22',
          entryMode: mode,
          maskedPan: `${card.pan.slice(0, 6)}${'*'.repeat(card.pan.length - 10)}${card.pan.slice(-4)}`,
          expiry,
          ksnHex: randomBytes(10).toString('hex').toUpperCase(),
          ciphertextHex: randomBytes(48).toString('hex').toUpperCase(),
          ...rid,
        },
      ];
    if (mode === 'S') {
      const track = { expiry, serviceCode: card.serviceCode ?? '101' };
      return [
        {
          id: '21',
          entryMode: 'S',
          track1: buildTrack1(card.pan, card.name ?? 'TEST/CARDHOLDER', track),
          track2: buildTrack2(card.pan, track),
          emvTlv: Buffer.alloc(0),
          ...rid,
        },
      ];
    }
    return [
      {
        id: '21',
        entryMode: mode,
        track1: Buffer.alloc(0),
        track2: Buffer.alloc(0),
        emvTlv: buildEmvTlv(card.pan, {
          expiry,
          serviceCode: card.serviceCode ?? '201',
          amountMinor: request.amountMinor,
          cardholderName: card.name ?? 'TEST/CARDHOLDER',
        }),
        ...rid,
      },
    ];
  }

  #reply(messages: PadMessage[]): void {
    if (messages.length === 0) return;
    const send = (): void => {
      const link = this.#link;
      if (link === undefined) return;
      for (const m of messages) link.send(encodeMessage(m)).catch(() => undefined);
    };
    const slow = this.#faults.find((f) => f.kind === 'slow-reply');
    if (slow === undefined) {
      send();
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(timer);
      send();
    }, slow.delayMs);
    this.#timers.add(timer);
  }
}
