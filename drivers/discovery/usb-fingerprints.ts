/**
 * USB fingerprints of the devices the agent knows (zigbee2mqtt keeps the same kind of table for
 * its adapters): vendor id, optional product id, manufacturer and path patterns, the role, and
 * the quirk a field tech needs to know. Ids are the USB-IF assigned vendor ids; product ids
 * vary by model and firmware mode, so most entries match on the vendor and let the HID usage
 * decide between vendor HID and keyboard-wedge mode.
 */

/** What a device is to the agent. */
export type DeviceRole = 'hid-msr' | 'wedge' | 'serial-reader' | 'pinpad' | 'usb-serial-adapter';

/** One row of the table. */
export interface UsbFingerprint {
  /** USB vendor id. */
  vendorId: number;
  /** USB product id when the row is for one model; absent = any product of the vendor. */
  productId?: number;
  /** Matched against the USB manufacturer string when present (some clones reuse a VID). */
  manufacturer?: RegExp;
  /** Matched against the serial device path or by-id link when present. */
  pathPattern?: RegExp;
  /** Vendor name, for the list of recognised vendors. */
  vendor: string;
  /** Display name. */
  name: string;
  /** Role when connected over HID (decided by usage: keyboard → wedge) or serial. */
  role: DeviceRole;
  /** What to know in the field. */
  quirk: string;
}

/** The fingerprint table. Order matters: the first match wins, so specific rows come first. */
export const USB_FINGERPRINTS: readonly UsbFingerprint[] = [
  {
    vendorId: 0x0801,
    vendor: 'MagTek',
    productId: 0x0001,
    name: 'MagTek swipe reader (keyboard emulation)',
    role: 'wedge',
    // MagTek ships the same readers with a keyboard-emulation product id: they type the swipe.
    quirk:
      'Keyboard emulation: configure kind "wedge". The reader also types into any focused window, so the terminal must not give it a text field',
  },
  {
    vendorId: 0x0801,
    vendor: 'MagTek',
    name: 'MagTek HID swipe reader',
    role: 'hid-msr',
    // MagTek 99875206: 337-byte vendor input report, no report ID; hidapi on Windows prepends 0x00.
    quirk:
      'Vendor HID mode, 337-byte reports (MagTek 99875206). MagneSafe/SRED models send encrypted tracks: their clear fields are masked',
  },
  {
    vendorId: 0x0acd,
    vendor: 'ID TECH',
    name: 'ID TECH magnetic stripe reader',
    role: 'hid-msr',
    // ID TECH readers switch between keyboard and HID mode by configuration command; the product id
    // changes with the mode on several models, so the HID usage decides.
    quirk:
      'HID or keyboard mode is a reader setting (ID TECH configuration utility); in keyboard mode the usage is a keyboard and kind must be "wedge"',
  },
  {
    vendorId: 0x0b00,
    vendor: 'Ingenico',
    name: 'Ingenico PIN pad',
    role: 'pinpad',
    // Ingenico Lane/Desk/iPP enumerate as USB CDC-ACM (/dev/ttyACM*) in the default "USB serial" mode.
    quirk:
      'USB CDC-ACM serial (ttyACM). Configure the /dev/serial/by-id path: ttyACM numbers change after a reboot or replug',
  },
  {
    vendorId: 0x11ca,
    vendor: 'Verifone',
    name: 'Verifone PIN pad',
    role: 'pinpad',
    // Verifone MX/VX/P-series/M-series use CDC-ACM; some firmwares need the line opened before they talk.
    quirk:
      'USB CDC-ACM serial (ttyACM); after a firmware download the product id changes until the next reboot',
  },
  {
    vendorId: 0x2fb8,
    vendor: 'PAX',
    name: 'PAX PIN pad',
    role: 'pinpad',
    // PAX Q/A/SP series: CDC-ACM; the serial number string is the terminal serial, useful in by-id.
    quirk:
      'USB CDC-ACM serial (ttyACM); its USB serial number is the terminal serial printed on the label',
  },
  {
    vendorId: 0x0403,
    vendor: 'FTDI',
    name: 'FTDI USB-serial adapter',
    role: 'usb-serial-adapter',
    // FTDI chips carry a unique serial number: their by-id path is stable.
    quirk:
      'RS-232 adapter (ttyUSB): the device behind it (PIN pad, serial reader) is not visible over USB',
  },
  {
    vendorId: 0x067b,
    vendor: 'Prolific',
    name: 'Prolific PL2303 USB-serial adapter',
    role: 'usb-serial-adapter',
    // Many PL2303s have no serial number: two of them get the same by-id name; use /dev/serial/by-path.
    quirk:
      'No unique serial number on most units: with two adapters use /dev/serial/by-path/… instead of by-id',
  },
  {
    vendorId: 0x1a86,
    vendor: 'WCH',
    name: 'WCH CH340 USB-serial adapter',
    role: 'usb-serial-adapter',
    // CH340 has no serial number either.
    quirk: 'No serial number: with two adapters use /dev/serial/by-path/… instead of by-id',
  },
  {
    vendorId: 0x10c4,
    vendor: 'Silicon Labs',
    name: 'Silicon Labs CP210x USB-serial adapter',
    role: 'usb-serial-adapter',
    quirk: 'RS-232 adapter (ttyUSB); the serial number is unique, by-id is stable',
  },
];

/** What a listing knows about a device, for {@link matchFingerprint}. */
export interface DeviceFacts {
  vendorId?: number;
  productId?: number;
  manufacturer?: string;
  path?: string;
  /** HID usage page and usage, when listed through HID. */
  usagePage?: number;
  usage?: number;
}

/** A match: the row, and the role for this interface (a keyboard usage makes a reader a wedge). */
export interface FingerprintMatch {
  fingerprint: UsbFingerprint;
  role: DeviceRole;
}

/** Finds the first row matching the facts; `undefined` for an unknown device. */
export function matchFingerprint(facts: DeviceFacts): FingerprintMatch | undefined {
  for (const f of USB_FINGERPRINTS) {
    if (facts.vendorId !== f.vendorId) continue;
    if (f.productId !== undefined && facts.productId !== f.productId) continue;
    if (f.manufacturer !== undefined && !f.manufacturer.test(facts.manufacturer ?? '')) continue;
    if (f.pathPattern !== undefined && !f.pathPattern.test(facts.path ?? '')) continue;
    let role = f.role;
    // HID Usage Tables 1.5 §4: Generic Desktop (0x01) / Keyboard (0x06) → it types: a wedge.
    if ((role === 'hid-msr' || role === 'wedge') && facts.usagePage !== undefined)
      role = facts.usagePage === 0x01 && facts.usage === 0x06 ? 'wedge' : 'hid-msr';
    return { fingerprint: f, role };
  }
  return undefined;
}
