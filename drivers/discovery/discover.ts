/**
 * Device discovery for `pos-agent devices` (architecture.md §1 field techs, issue 4): serial ports and
 * HID devices, recognised by the USB fingerprint table, each with the stable path to configure.
 *
 * ```
 *  serial:  /dev/serial/by-id/<link>  if udev made one, else the /dev/tty… node (and a warning)
 *  HID:     hid://vvvv:pppp/serial    when the device has a serial number, else hid://vvvv:pppp
 * ```
 */
import type { AgentError } from '../../common/agent-error.js';
import { hidPathOf, listHidDevices, type HidDeviceInfo } from '../transport/hid-transport.js';
import {
  listSerialPorts,
  type PortListOptions,
  type SerialPortEntry,
} from '../transport/port-list.js';
import { matchFingerprint, type DeviceRole } from './usb-fingerprints.js';

/** One device found. */
export interface DiscoveredDevice {
  /** `serial` or `hid`. */
  bus: 'serial' | 'hid';
  /** What the system calls it (`/dev/ttyACM0`, `/dev/hidraw2`). */
  systemPath: string;
  /** What to put into the config (`path` of a reader or the PIN pad). */
  configPath: string;
  /** A warning about `configPath`, e.g. that a /dev/tty name is not stable. */
  configNote?: string;
  /** `vvvv:pppp` in lower-case hex, when known. */
  usbId?: string;
  manufacturer?: string;
  product?: string;
  /** The recognised device, or undefined. */
  known?: { name: string; role: DeviceRole; quirk: string };
}

/** Everything `pos-agent devices` shows. */
export interface DiscoveryReport {
  devices: DiscoveredDevice[];
  /** How serial ports were found, and why the fallback was used. */
  serial: { method: 'udev' | 'scan'; fallbackReason?: string };
  /** Why HID devices could not be listed (POS104 naming the fix), if so. */
  hidError?: AgentError;
}

const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

function serialDevice(p: SerialPortEntry): DiscoveredDevice {
  const vendorId = p.vendorId === undefined ? undefined : Number.parseInt(p.vendorId, 16);
  const productId = p.productId === undefined ? undefined : Number.parseInt(p.productId, 16);
  const d: DiscoveredDevice = {
    bus: 'serial',
    systemPath: p.path,
    configPath: p.byIdPath ?? p.path,
  };
  if (p.byIdPath === undefined)
    d.configNote =
      'no /dev/serial/by-id link (udev missing or no rule): this name can change after a replug or reboot';
  if (vendorId !== undefined && !Number.isNaN(vendorId))
    d.usbId = `${hex4(vendorId)}:${productId === undefined || Number.isNaN(productId) ? '????' : hex4(productId)}`;
  if (p.manufacturer !== undefined) d.manufacturer = p.manufacturer;
  const match = matchFingerprint({
    ...(vendorId === undefined ? {} : { vendorId }),
    ...(productId === undefined ? {} : { productId }),
    ...(p.manufacturer === undefined ? {} : { manufacturer: p.manufacturer }),
    path: d.configPath,
  });
  if (match !== undefined) {
    const role = match.role === 'hid-msr' || match.role === 'wedge' ? 'serial-reader' : match.role;
    d.known = { name: match.fingerprint.name, role, quirk: match.fingerprint.quirk };
  }
  return d;
}

function hidDevice(info: HidDeviceInfo): DiscoveredDevice {
  const d: DiscoveredDevice = {
    bus: 'hid',
    systemPath: info.path ?? '(no path)',
    configPath: hidPathOf(info),
    usbId: `${hex4(info.vendorId)}:${hex4(info.productId)}`,
  };
  if (info.serialNumber === undefined || info.serialNumber === '')
    d.configNote = 'no USB serial number: with two identical readers the first one found is opened';
  if (info.manufacturer !== undefined) d.manufacturer = info.manufacturer;
  if (info.product !== undefined) d.product = info.product;
  const match = matchFingerprint({
    vendorId: info.vendorId,
    productId: info.productId,
    ...(info.manufacturer === undefined ? {} : { manufacturer: info.manufacturer }),
    ...(info.usagePage === undefined ? {} : { usagePage: info.usagePage }),
    ...(info.usage === undefined ? {} : { usage: info.usage }),
  });
  if (match !== undefined)
    d.known = { name: match.fingerprint.name, role: match.role, quirk: match.fingerprint.quirk };
  return d;
}

/**
 * Lists serial ports and HID devices. Never throws: a missing udev falls back to a scan, missing
 * HID support is reported in `hidError`.
 */
export async function discoverDevices(options: PortListOptions = {}): Promise<DiscoveryReport> {
  const [serial, hid] = await Promise.all([listSerialPorts(options), listHidDevices()]);
  const devices = serial.ports.map(serialDevice);
  const report: DiscoveryReport = {
    devices,
    serial:
      serial.fallbackReason === undefined
        ? { method: serial.method }
        : { method: serial.method, fallbackReason: serial.fallbackReason },
  };
  if (hid.ok) {
    // node-hid lists one entry per interface; show each device once per usage.
    const seen = new Set<string>();
    for (const info of hid.devices) {
      const key = `${info.path ?? ''}|${info.usagePage ?? ''}|${info.usage ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      devices.push(hidDevice(info));
    }
  } else report.hidError = hid.error;
  return report;
}
