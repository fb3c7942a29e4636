/**
 * Virtual USB HID card readers (architecture.md §7): a vendor-HID MSR (337-byte reports, MagTek-style), an
 * encrypting SRED reader (692-byte project SRED reports, drivers/readers/sred-hid-report.ts) or
 * a keyboard-wedge reader, in process, behind the same interface as node-hid's `HIDAsync`
 * ({@link HidDeviceHandle}) and listed by a {@link VirtualHidBackend} that replaces node-hid
 * (`useHidBackend`). The only mock of the project: there is no USB here (the project rules).
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
 *
 * The SRED reader encrypts each track with two-key TDES-CBC (zero IV, zero padding) under ONE
 * fixed simulator key and counts its KSN up per swipe; it does not derive DUKPT transaction keys
 * (ANSI X9.24-1), because nothing on the terminal side ever decrypts — the point of SRED.
 */
import { Buffer } from 'node:buffer';
import { createCipheriv, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { encodeHidMsrReport } from '../drivers/readers/hid-msr-report.js';
import { encodeWedgeReports } from '../drivers/readers/keyboard-wedge.js';
import {
  encodeSredHidReport,
  SRED_CIPHER_BLOCK_BYTES,
  SRED_HID_REPORT_BYTES,
} from '../drivers/readers/sred-hid-report.js';
import type {
  HidBackend,
  HidDeviceHandle,
  HidDeviceInfo,
} from '../drivers/transport/hid-transport.js';
import { useHidBackend } from '../drivers/transport/hid-transport.js';
import { buildTrack1, buildTrack2, findTestCard, type TestCard } from './test-cards.js';

/** Every swipe fault of the virtual readers (HID and serial), as the CLI lists them. */
export const SWIPE_FAULTS = ['bad_swipe', 'one_track', 'reversed', 'chip_card', 'garbage'] as const;

/** Swipe faults of the virtual readers (HID and serial). */
export type SwipeFault = (typeof SWIPE_FAULTS)[number];

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

/** The virtual SRED reader's fixed TDES key (16 bytes, two-key TDES). A simulator value only. */
export const SIMULATOR_SRED_KEY = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');

/**
 * The first KSN of a virtual SRED reader (counter 0): the ANSI X9.24-1 test KSN
 * `FFFF9876543210E00000`; the low 21 bits count swipes.
 */
export const SIMULATOR_SRED_KSN = Buffer.from('FFFF9876543210E00000', 'hex');

/**
 * Masks a track as encrypting readers print it: PAN digits 7…n−4 become `*`, the discretionary
 * data after YYMM SVC becomes `0`; sentinels, separators, name, expiry and service code stay.
 * @param track — an ISO/IEC 7813 track 1 (`%B…`) or track 2 (`;…`) as built by test-cards.ts.
 */
export function maskTrack(track: Uint8Array): Buffer {
  const out = Buffer.from(track);
  const trackNo = out[0] === 0x25 ? 1 : 2;
  const panStart = trackNo === 1 ? 2 : 1;
  const panEnd = out.indexOf(trackNo === 1 ? 0x5e : 0x3d, panStart);
  if (panEnd < 0) return out;
  out.fill(0x2a, panStart + 6, panEnd - 4);
  const dataStart = trackNo === 1 ? out.indexOf(0x5e, panEnd + 1) + 1 : panEnd + 1;
  const end = out.indexOf(0x3f, dataStart);
  if (dataStart > 0) out.fill(0x30, dataStart + 7, end < 0 ? out.length : end);
  return out;
}

/**
 * The simulator's "encryption" of one track: two-key TDES-CBC, zero IV, zero padding to whole
 * 8-byte blocks. Deterministic, so byte-trace fixtures can hold the ciphertext.
 */
export function simulatorEncryptTrack(
  track: Uint8Array,
  key: Uint8Array = SIMULATOR_SRED_KEY,
): Buffer {
  const padded = Buffer.alloc(
    Math.ceil(track.length / SRED_CIPHER_BLOCK_BYTES) * SRED_CIPHER_BLOCK_BYTES,
  );
  padded.set(track);
  const cipher = createCipheriv('des-ede-cbc', key, Buffer.alloc(SRED_CIPHER_BLOCK_BYTES));
  cipher.setAutoPadding(false);
  const out = Buffer.concat([cipher.update(padded), cipher.final()]);
  padded.fill(0);
  return out;
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
  /** `msr` = vendor HID reports; `sred` = encrypting reader's SRED reports; `wedge` = keyboard reports. */
  mode: 'msr' | 'sred' | 'wedge';
  /** @default 0x0801 (MagTek) */
  vendorId?: number;
  /** @default 0x0002 for msr, 0x0011 for sred, 0x0001 for wedge */
  productId?: number;
  /** @default 'SIM0001' */
  serialNumber?: string;
}

/** One virtual HID reader. */
export class VirtualHidReader {
  readonly info: HidDeviceInfo;
  readonly mode: 'msr' | 'sred' | 'wedge';
  #plugged = true;
  /** SRED mode: swipes so far; the KSN's 21-bit counter of the next swipe is this + 1. */
  ksnCounter = 0;
  #handle: VirtualHidHandle | undefined;
  /** Every report sent, in order (tests compare them with the fixtures). */
  readonly sent: Buffer[] = [];

  constructor(options: VirtualHidReaderOptions) {
    this.mode = options.mode;
    const serialNumber = options.serialNumber ?? 'SIM0001';
    this.info = {
      vendorId: options.vendorId ?? 0x0801,
      productId:
        options.productId ??
        (options.mode === 'msr' ? 0x0002 : options.mode === 'sred' ? 0x0011 : 0x0001),
      path: `/dev/virtual-hidraw-${options.mode}-${serialNumber}`,
      serialNumber,
      manufacturer: 'Simulated',
      product:
        options.mode === 'msr'
          ? 'Virtual HID MSR'
          : options.mode === 'sred'
            ? 'Virtual SRED HID MSR'
            : 'Virtual keyboard-wedge MSR',
      usagePage: options.mode === 'wedge' ? 0x01 : 0xff00,
      usage: options.mode === 'wedge' ? 0x06 : 0x01,
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
    if (this.mode === 'sred') return [this.sredReportFor(card, options)];
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
   * The SRED report of one swipe (any mode may call it; `swipe()` uses it in `sred` mode):
   * masked tracks 1 and 2, each encrypted with {@link simulatorEncryptTrack}, the KSN
   * {@link SIMULATOR_SRED_KSN} with its counter advanced. Faults as the other modes; `garbage`
   * is 692 random bytes.
   */
  sredReportFor(card: string | TestCard, options: SwipeOptions = {}): Buffer {
    if (options.fault === 'garbage') return randomBytes(SRED_HID_REPORT_BYTES);
    this.ksnCounter = (this.ksnCounter + 1) & 0x1fffff;
    const ksn = Buffer.from(SIMULATOR_SRED_KSN);
    ksn.writeUIntBE((ksn.readUIntBE(7, 3) & ~0x1fffff) | this.ksnCounter, 7, 3);
    const { fault, ...rest } = options;
    const clear = swipeTracks(card, fault === 'reversed' ? rest : options);
    const track = (t: Buffer | undefined): { masked: Buffer; encrypted: Buffer } | undefined => {
      if (t === undefined) return undefined;
      const masked = maskTrack(t);
      const encrypted = simulatorEncryptTrack(t);
      t.fill(0);
      if (fault === 'reversed') masked.reverse();
      return { masked, encrypted };
    };
    const bad = fault === 'bad_swipe' || fault === 'one_track';
    return encodeSredHidReport(
      [
        track(clear.track1) ?? (bad ? { status: 1 } : undefined),
        track(clear.track2) ?? (fault === 'bad_swipe' ? { status: 1 } : undefined),
      ],
      ksn,
    );
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

  /** HidBackend: the plugged-in virtual readers, as node-hid's `devicesAsync()` lists devices. */
  async devices(): Promise<HidDeviceInfo[]> {
    return this.readers.filter((r) => r.plugged).map((r) => ({ ...r.info }));
  }

  /**
   * HidBackend: opens the virtual reader at node-hid `path`, like `HIDAsync.open(path)`.
   *
   * @throws Error (node-hid's own wording) when no plugged-in reader has that path.
   */
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
