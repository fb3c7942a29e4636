/**
 * USB HID transport (architecture.md §3 layer 1) for `hid://VID:PID[/serial]`, over node-hid's `HIDAsync`.
 * Each `'data'` chunk is exactly one input report (HID keeps report boundaries), which the card
 * reader layer parses as a vendor MSR report or a boot keyboard report.
 *
 * ```
 *   hid://0801:0011            first MagTek device with product id 0x0011
 *   hid://0acd:2010/A1B2C3     the ID TECH device whose USB serial number is A1B2C3
 *
 *   HidTransport ──► HidBackend ──► node-hid (loaded on first use: await import('node-hid'))
 *                               └─► a virtual backend (simulator, tests: useHidBackend)
 * ```
 *
 * node-hid is an optional dependency and is loaded only when a `hid://` device is opened or
 * listed. A missing module or a missing system library becomes `POS104` naming the fix; a device
 * that exists but cannot be opened (hidraw permissions) becomes `POS101` with the udev rule to add.
 * Unplugging makes node-hid emit `'error'` on the device: that is the disconnect (`POS102`).
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import type { AgentError } from '../../common/agent-error.js';
import { driverError } from '../errors.js';
import type { Transport } from './types.js';

/** What node-hid's `devices()` reports for one HID interface (the fields the agent uses). */
export interface HidDeviceInfo {
  vendorId: number;
  productId: number;
  /** Platform path to open, e.g. `/dev/hidraw3`. */
  path?: string;
  serialNumber?: string;
  manufacturer?: string;
  product?: string;
  /** HID usage page; 0x01 with usage 0x06 is a keyboard (a wedge reader), 0xFF00+ vendor-defined. */
  usagePage?: number;
  usage?: number;
  interface?: number;
}

/** The subset of node-hid's `HIDAsync` the transport uses; the simulator implements the same. */
export interface HidDeviceHandle {
  on(event: 'data', listener: (report: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  write(data: number[] | Buffer): Promise<number>;
  close(): Promise<void>;
}

/** Lists and opens HID devices: node-hid, or a virtual backend. */
export interface HidBackend {
  /** All HID interfaces present. */
  devices(): Promise<HidDeviceInfo[]>;
  /** Opens one by its `path`. */
  open(path: string): Promise<HidDeviceHandle>;
}

let override: HidBackend | undefined;
let nodeHid: Promise<HidBackend> | undefined;

/**
 * Replaces node-hid with another backend (the simulator's virtual HID devices; tests). Returns
 * a function that restores the previous one.
 */
export function useHidBackend(backend: HidBackend): () => void {
  const previous = override;
  override = backend;
  return () => {
    if (override === backend) override = previous;
  };
}

/** The fix for a missing native library, per platform. */
export const HID_LIBRARY_FIX =
  'install the USB HID libraries (Debian/Ubuntu: apt-get install libusb-1.0-0 libudev1; Alpine: apk add libusb eudev-libs; Fedora: dnf install libusb1 systemd-libs)';

/** The udev rule that gives the agent's group access to a reader's hidraw node. */
export function hidUdevRule(vendorIdHex: string): string {
  return `SUBSYSTEM=="hidraw", ATTRS{idVendor}=="${vendorIdHex}", MODE="0660", GROUP="plugdev"`;
}

function unavailable(message: string, cause?: unknown): AgentError {
  return driverError('POS104', message, cause === undefined ? {} : { cause });
}

/** node-hid's module shape, as far as we use it (typed here: the package is optional). */
interface NodeHidModule {
  devicesAsync(): Promise<HidDeviceInfo[]>;
  HIDAsync: { open(path: string): Promise<HidDeviceHandle> };
}

async function loadNodeHid(): Promise<HidBackend> {
  let mod: NodeHidModule;
  try {
    const imported = (await import('node-hid')) as unknown as NodeHidModule & {
      default?: NodeHidModule;
    };
    mod = imported.default ?? imported;
  } catch (cause) {
    throw unavailable(
      'USB HID support is not installed (the optional package node-hid is missing): run "npm install node-hid" in the agent directory, or configure the reader as a serial device',
      cause,
    );
  }
  return {
    devices: async () => {
      try {
        return await mod.devicesAsync();
      } catch (cause) {
        const text = (cause as Error).message;
        throw unavailable(
          /\.so|shared object|library|dlopen/i.test(text)
            ? `USB HID support cannot load its system library (${text}): ${HID_LIBRARY_FIX}`
            : `USB HID devices cannot be listed (${text}): check that /dev/hidraw* exist and that the agent may read them`,
          cause,
        );
      }
    },
    open: (path) => mod.HIDAsync.open(path),
  };
}

/**
 * The HID backend: the override if one is set, else node-hid (imported once, lazily).
 * @throws AgentError `POS104` when node-hid or its system library is missing (names the fix).
 */
export async function loadHidBackend(): Promise<HidBackend> {
  if (override !== undefined) return override;
  nodeHid ??= loadNodeHid().catch((error: unknown) => {
    nodeHid = undefined;
    throw error;
  });
  return nodeHid;
}

/** A parsed `hid://VID:PID[/serial]` path; ids are numbers. */
export interface HidPath {
  vendorId: number;
  productId: number;
  serialNumber?: string;
}

/**
 * Parses `hid://VID:PID[/serial]` (VID and PID as 4 hex digits).
 * @throws AgentError `POS105` naming the expected form.
 */
export function parseHidPath(path: string): HidPath {
  const m = /^hid:\/\/([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?:\/([\x21-\x7e]{1,64}))?$/.exec(path);
  if (m === null)
    throw driverError(
      'POS105',
      `"${path}" is not a HID device path: use hid://VID:PID or hid://VID:PID/serial with 4 hex digits each, e.g. hid://0801:0011 (see "pos-agent devices")`,
      { details: { path } },
    );
  const out: HidPath = {
    vendorId: Number.parseInt(m[1] ?? '', 16),
    productId: Number.parseInt(m[2] ?? '', 16),
  };
  if (m[3] !== undefined) out.serialNumber = m[3];
  return out;
}

/** `hid://vvvv:pppp[/serial]` for a device (lower-case hex), the stable path to configure. */
export function hidPathOf(info: HidDeviceInfo): string {
  const hex = (n: number): string => n.toString(16).padStart(4, '0');
  const serial =
    info.serialNumber !== undefined && /^[\x21-\x7e]{1,64}$/.test(info.serialNumber)
      ? `/${info.serialNumber}`
      : '';
  return `hid://${hex(info.vendorId)}:${hex(info.productId)}${serial}`;
}

/**
 * Lists HID devices through the backend.
 * @returns the devices, or the `POS104` error that says why HID is unavailable (never throws).
 */
export async function listHidDevices(): Promise<
  { ok: true; devices: HidDeviceInfo[] } | { ok: false; error: AgentError }
> {
  try {
    const backend = await loadHidBackend();
    return { ok: true, devices: await backend.devices() };
  } catch (error) {
    return {
      ok: false,
      error:
        error instanceof Error && 'code' in error && String(error.code).startsWith('POS')
          ? (error as AgentError)
          : unavailable(`USB HID devices cannot be listed: ${(error as Error).message}`, error),
    };
  }
}

type TransportEvents = { data: [chunk: Buffer]; close: [error?: Error] };

/** A {@link Transport} over one HID device; see the module comment. */
export class HidTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly path: string;
  readonly #target: HidPath;
  #device: HidDeviceHandle | undefined;

  /** @throws AgentError `POS105` for a malformed path. Does not open. */
  constructor(path: string) {
    super();
    this.path = path;
    this.#target = parseHidPath(path);
  }

  /** True between a successful `open()` and `'close'`. */
  get isOpen(): boolean {
    return this.#device !== undefined;
  }

  /**
   * Finds the device by VID/PID (and serial) and opens it.
   * @throws AgentError `POS104` (no HID support), `POS101` (not present, or no permission: the
   *   message gives the udev rule).
   */
  async open(): Promise<void> {
    if (this.#device !== undefined) return;
    const backend = await loadHidBackend();
    const { vendorId, productId, serialNumber } = this.#target;
    const vid = vendorId.toString(16).padStart(4, '0');
    const found = (await backend.devices()).find(
      (d) =>
        d.vendorId === vendorId &&
        d.productId === productId &&
        (serialNumber === undefined || d.serialNumber === serialNumber) &&
        d.path !== undefined,
    );
    if (found?.path === undefined)
      throw driverError(
        'POS101',
        `No HID device ${this.path} is connected: plug the reader in, or run "pos-agent devices" to see the VID:PID (and serial) to configure`,
        { details: { path: this.path } },
      );
    let device: HidDeviceHandle;
    try {
      device = await backend.open(found.path);
    } catch (cause) {
      throw driverError(
        'POS101',
        `Cannot open HID device ${this.path} at ${found.path} (${(cause as Error).message}): the agent's user needs access to the hidraw node — add the udev rule '${hidUdevRule(vid)}' to /etc/udev/rules.d/99-pos-agent.rules, put the agent's user in group plugdev, then run "udevadm control --reload-rules && udevadm trigger" and replug`,
        { cause, details: { path: this.path } },
      );
    }
    this.#device = device;
    device.on('data', (report: Buffer) => {
      if (this.#device === device) this.emit('data', report);
      else report.fill(0);
    });
    device.on('error', (cause: Error) => {
      if (this.#device !== device) return;
      this.#device = undefined;
      device.removeAllListeners('data');
      device.close().catch(() => undefined);
      this.emit(
        'close',
        driverError(
          'POS102',
          `HID device ${this.path} disconnected (${cause.message}): check the USB cable; the agent reopens it when it returns`,
          { cause, details: { path: this.path } },
        ),
      );
    });
  }

  /**
   * Sends an output report.
   * @throws AgentError `POS102` when not open or the write fails.
   */
  async write(bytes: Uint8Array): Promise<void> {
    const device = this.#device;
    if (device === undefined)
      throw driverError('POS102', `HID device ${this.path} is not open`, {
        details: { path: this.path },
      });
    try {
      await device.write(Buffer.from(bytes));
    } catch (cause) {
      throw driverError('POS102', `Write to HID device ${this.path} failed: check the cable`, {
        cause,
      });
    }
  }

  /** Closes the device; emits `'close'` without an error. A no-op when not open. */
  async close(): Promise<void> {
    const device = this.#device;
    if (device === undefined) return;
    this.#device = undefined;
    device.removeAllListeners('data');
    device.removeAllListeners('error');
    await device.close().catch(() => undefined);
    this.emit('close');
  }
}
