/**
 * Virtual USB HID card readers (DESIGN §7): a vendor-HID MSR (337-byte reports, MagTek-style) or
 * a keyboard-wedge reader, in process, behind the same interface as node-hid's `HIDAsync`
 * ({@link HidDeviceHandle}) and listed by a {@link VirtualHidBackend} that replaces node-hid
 * (`useHidBackend`). The only mock of the project: there is no USB here (DESIGN, rules).
 *
 * ```
 *  test ─► reader.swipe('visa', { fault }) ─► reports ─► handle 'data' ─► HidTransport ─► CardReader
 *  test ─► reader.unplug()  ─► handle 'error' (as node-hid on removal), gone from devices()
 *  test ─► reader.replug()  ─► listed again; the agent's reopen finds it
 * ```
 *
 * Faults: `bad_swipe` (the reader could not read either track), `one_track` (track 1 failed),
 * `reversed` (track bytes backwards), `chip_card` (service code 201), `garbage` (a report of the
 * wrong size / random keys).
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { encodeHidMsrReport } from '../drivers/readers/hid-msr-report.js';
import { encodeWedgeReports } from '../drivers/readers/keyboard-wedge.js';
import type {
  HidBackend,
  HidDeviceHandle,
  HidDeviceInfo,
} from '../drivers/transport/hid-transport.js';
import { useHidBackend } from '../drivers/transport/hid-transport.js';
import { buildTrack1, buildTrack2, findTestCard, type TestCard } from './test-cards.js';

/** Swipe faults of the virtual readers (HID and serial). */
export type SwipeFault = 'bad_swipe' | 'one_track' | 'reversed' | 'chip_card' | 'garbage';

/** Options of one swipe. */
export interface SwipeOptions {
  fault?: SwipeFault;
  /** `YYMM`. @default '3012' */
  expiry?: string;
  /** @default 'TEST/CARDHOLDER' */
  name?: string;
}

/** The two tracks (or the reader's error markers) of a swipe with a fault applied. */
export function swipeTracks(
  card: string | TestCard,
  options: SwipeOptions = {},
): { track1: Buffer | undefined; track2: Buffer | undefined } {
  const pan = typeof card === 'string' ? (findTestCard(card)?.pan ?? card) : card.pan;
  const track = {
    expiry: options.expiry ?? '3012',
    serviceCode: options.fault === 'chip_card' ? '201' : '101',
  };
  let track1: Buffer | undefined = buildTrack1(pan, options.name ?? 'TEST/CARDHOLDER', track);
  let track2: Buffer | undefined = buildTrack2(pan, track);
  if (options.fault === 'bad_swipe') {
    track1 = undefined;
    track2 = undefined;
  } else if (options.fault === 'one_track') track1 = undefined;
  else if (options.fault === 'reversed') {
    track1 = Buffer.from(track1.reverse());
    track2 = Buffer.from(track2.reverse());
  }
  return { track1, track2 };
}

class VirtualHidHandle extends EventEmitter implements HidDeviceHandle {
  closed = false;
  readonly written: Buffer[] = [];

  async write(data: number[] | Buffer): Promise<number> {
    if (this.closed) throw new Error('could not write to HID device');
    this.written.push(Buffer.from(data));
    return data.length;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Options of {@link VirtualHidReader}. */
export interface VirtualHidReaderOptions {
  /** `msr` = vendor HID reports; `wedge` = keyboard reports. */
  mode: 'msr' | 'wedge';
  /** @default 0x0801 (MagTek) */
  vendorId?: number;
  /** @default 0x0002 for msr, 0x0001 for wedge */
  productId?: number;
  /** @default 'SIM0001' */
  serialNumber?: string;
}

/** One virtual HID reader. */
export class VirtualHidReader {
  readonly info: HidDeviceInfo;
  readonly mode: 'msr' | 'wedge';
  #plugged = true;
  #handle: VirtualHidHandle | undefined;
  /** Every report sent, in order (tests compare them with the fixtures). */
  readonly sent: Buffer[] = [];

  constructor(options: VirtualHidReaderOptions) {
    this.mode = options.mode;
    const serialNumber = options.serialNumber ?? 'SIM0001';
    this.info = {
      vendorId: options.vendorId ?? 0x0801,
      productId: options.productId ?? (options.mode === 'msr' ? 0x0002 : 0x0001),
      path: `/dev/virtual-hidraw-${options.mode}-${serialNumber}`,
      serialNumber,
      manufacturer: 'Simulated',
      product: options.mode === 'msr' ? 'Virtual HID MSR' : 'Virtual keyboard-wedge MSR',
      usagePage: options.mode === 'msr' ? 0xff00 : 0x01,
      usage: options.mode === 'msr' ? 0x01 : 0x06,
    };
  }

  /** `hid://vvvv:pppp/serial` of this reader. */
  get hidPath(): string {
    const hex = (n: number): string => n.toString(16).padStart(4, '0');
    return `hid://${hex(this.info.vendorId)}:${hex(this.info.productId)}/${this.info.serialNumber ?? ''}`;
  }

  /** True when plugged in. */
  get plugged(): boolean {
    return this.#plugged;
  }

  /** True while the host has it open. */
  get opened(): boolean {
    return this.#handle !== undefined && !this.#handle.closed;
  }

  /** Called by the backend. @throws Error like node-hid when unplugged. */
  open(): HidDeviceHandle {
    if (!this.#plugged) throw new Error(`cannot open device with path ${this.info.path}`);
    const handle = new VirtualHidHandle();
    this.#handle = handle;
    return handle;
  }

  /** The reports a swipe of `card` produces in this mode, with the fault applied. */
  reportsFor(card: string | TestCard, options: SwipeOptions = {}): Buffer[] {
    if (options.fault === 'garbage')
      return this.mode === 'msr'
        ? [randomBytes(64)]
        : [
            Buffer.of(0, 0, 0x53, 0x45, 0x46, 0, 0, 0),
            Buffer.alloc(8),
            ...encodeWedgeReports(Buffer.from('x7#')),
          ];
    const { track1, track2 } = swipeTracks(card, options);
    if (this.mode === 'msr') {
      const bad = options.fault === 'bad_swipe' || options.fault === 'one_track';
      return [
        encodeHidMsrReport([
          track1 ?? (bad ? { status: 1 } : undefined),
          track2 ?? (options.fault === 'bad_swipe' ? { status: 1 } : undefined),
          undefined,
        ]),
      ];
    }
    const text =
      options.fault === 'bad_swipe'
        ? Buffer.from('%E?;E?')
        : Buffer.concat([track1 ?? Buffer.from('%E?'), track2 ?? Buffer.from(';E?')]);
    return encodeWedgeReports(text);
  }

  /**
   * Swipes a card: sends its reports to the host, if it has the reader open.
   * @returns the number of reports delivered (0 when not open).
   */
  swipe(card: string | TestCard, options: SwipeOptions = {}): number {
    const reports = this.reportsFor(card, options);
    const handle = this.#handle;
    let n = 0;
    for (const report of reports) {
      this.sent.push(Buffer.from(report));
      if (handle !== undefined && !handle.closed && this.#plugged) {
        handle.emit('data', report);
        n++;
      }
    }
    return n;
  }

  /** Pulls the cable: the open handle errors (as node-hid's read loop does) and the device disappears. */
  unplug(): void {
    this.#plugged = false;
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle !== undefined && !handle.closed) {
      handle.closed = true;
      handle.emit('error', new Error('could not read from HID device'));
    }
  }

  /** Plugs it back in. */
  replug(): void {
    this.#plugged = true;
  }
}

/** A node-hid replacement listing and opening virtual readers. */
export class VirtualHidBackend implements HidBackend {
  readonly readers: VirtualHidReader[] = [];

  /** Adds a reader (plugged in). */
  add(reader: VirtualHidReader): VirtualHidReader {
    this.readers.push(reader);
    return reader;
  }

  async devices(): Promise<HidDeviceInfo[]> {
    return this.readers.filter((r) => r.plugged).map((r) => ({ ...r.info }));
  }

  async open(path: string): Promise<HidDeviceHandle> {
    const reader = this.readers.find((r) => r.info.path === path);
    if (reader === undefined) throw new Error(`cannot open device with path ${path}`);
    return reader.open();
  }

  /** Installs this backend in place of node-hid; returns the function that removes it. */
  install(): () => void {
    return useHidBackend(this);
  }
}
