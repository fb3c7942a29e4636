/**
 * Serial port listing for `pos-agent devices` (architecture.md §1: only `drivers/transport/` imports
 * `serialport`). First `SerialPort.list()` (on Linux it runs `udevadm info -e`); when that fails
 * — no udev in a container or a minimal image — a scan of `/dev/serial/by-id` (stable names made
 * by udev rules, if any) and of `/dev/tty*` names of serial drivers, with USB ids read from sysfs.
 *
 * ```
 *  /dev/serial/by-id/usb-Ingenico_Lane_3000_1234-if00 ──► ../../ttyACM0
 *  /sys/class/tty/ttyACM0/device ──► …/1-1:1.0   (interface)  ──► ../idVendor ../idProduct ../serial
 * ```
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { SerialPort } from 'serialport';

/** One serial port as seen by the listing. Ids are lower-case hex without `0x`, as serialport gives them. */
export interface SerialPortEntry {
  /** Device node, e.g. `/dev/ttyACM0`. */
  path: string;
  /** The `/dev/serial/by-id/…` link that points to it, if any: the stable path to configure. */
  byIdPath?: string;
  manufacturer?: string;
  serialNumber?: string;
  vendorId?: string;
  productId?: string;
}

/** Result of {@link listSerialPorts}: ports, and how they were found. */
export interface SerialPortListing {
  ports: SerialPortEntry[];
  /** `udev` when serialport's list worked; `scan` for the /dev + sysfs fallback. */
  method: 'udev' | 'scan';
  /** Why the fallback was used (serialport's error message), for the tech. */
  fallbackReason?: string;
}

/** Where to look; tests point these at a temporary tree. */
export interface PortListOptions {
  /** @default '/dev' */
  devDir?: string;
  /** @default '/sys/class/tty' */
  sysClassTtyDir?: string;
  /** @default SerialPort.list */
  list?: () => Promise<Array<Partial<SerialPortEntry> & { path: string }>>;
}

/** Kernel names of serial drivers (same pattern as @serialport/bindings-cpp's linux-list). */
const SERIAL_NAME = /^tty(S|WCH|ACM|USB|AMA|MFD|O|XRUSB)\d+$|^rfcomm\d+$/;

function byIdLinks(devDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const dir = path.join(devDir, 'serial', 'by-id');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    try {
      out.set(realpathSync(path.join(dir, name)), path.join(dir, name));
    } catch {
      // a dangling link: the device went away while we listed
    }
  }
  return out;
}

function readSysAttr(dir: string, name: string): string | undefined {
  try {
    return readFileSync(path.join(dir, name), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** USB ids of a tty from sysfs: walk up from its device to the USB device holding idVendor. */
function usbInfoFromSysfs(sysClassTtyDir: string, name: string): Partial<SerialPortEntry> {
  let dir: string;
  try {
    dir = realpathSync(path.join(sysClassTtyDir, name, 'device'));
  } catch {
    return {};
  }
  for (let up = 0; up < 4; up++, dir = path.dirname(dir)) {
    const vendorId = readSysAttr(dir, 'idVendor');
    if (vendorId === undefined) continue;
    const info: Partial<SerialPortEntry> = { vendorId };
    const productId = readSysAttr(dir, 'idProduct');
    const manufacturer = readSysAttr(dir, 'manufacturer');
    const serialNumber = readSysAttr(dir, 'serial');
    if (productId !== undefined) info.productId = productId;
    if (manufacturer !== undefined) info.manufacturer = manufacturer;
    if (serialNumber !== undefined) info.serialNumber = serialNumber;
    return info;
  }
  return {};
}

function scan(
  devDir: string,
  sysClassTtyDir: string,
  links: Map<string, string>,
): SerialPortEntry[] {
  let names: string[];
  try {
    names = readdirSync(devDir);
  } catch {
    return [];
  }
  const ports: SerialPortEntry[] = [];
  for (const name of names.filter((n) => SERIAL_NAME.test(n)).sort()) {
    const devPath = path.join(devDir, name);
    // Legacy ttyS0–ttyS31 exist on every PC; keep only those with a real device behind them.
    const hasDevice = (() => {
      try {
        return statSync(path.join(sysClassTtyDir, name, 'device')).isDirectory();
      } catch {
        return false;
      }
    })();
    const link = links.get(devPath);
    if (name.startsWith('ttyS') && !hasDevice && link === undefined) continue;
    const entry: SerialPortEntry = { path: devPath, ...usbInfoFromSysfs(sysClassTtyDir, name) };
    if (link !== undefined) entry.byIdPath = link;
    ports.push(entry);
  }
  return ports;
}

/**
 * Lists serial ports. Never throws: a failing `SerialPort.list()` falls back to the scan and says
 * why in `fallbackReason`.
 */
export async function listSerialPorts(options: PortListOptions = {}): Promise<SerialPortListing> {
  const devDir = options.devDir ?? '/dev';
  const sysDir = options.sysClassTtyDir ?? '/sys/class/tty';
  const links = byIdLinks(devDir);
  try {
    const listed = await (options.list ?? (() => SerialPort.list()))();
    const ports = listed.map((p) => {
      const entry: SerialPortEntry = { path: p.path };
      for (const key of ['manufacturer', 'serialNumber', 'vendorId', 'productId'] as const) {
        const v = p[key];
        if (typeof v === 'string' && v.length > 0)
          entry[key] = key === 'vendorId' || key === 'productId' ? v.toLowerCase() : v;
      }
      const link = links.get(p.path);
      if (link !== undefined) entry.byIdPath = link;
      return entry;
    });
    return { ports, method: 'udev' };
  } catch (error) {
    return {
      ports: scan(devDir, sysDir, links),
      method: 'scan',
      fallbackReason: (error as Error).message,
    };
  }
}
