/**
 * `pos-agent devices [--json]`: what is plugged in, what the agent recognises, and the path to
 * configure (issue 4 item 4). Works without udev (says so and scans /dev) and without HID support
 * (says why and how to fix it). Exit status 0 whenever the listing ran. Needs no config.
 *
 * `--json` prints one object, version 1 of a stable shape (fields are only ever added):
 *
 * ```json
 * { "version": 1,
 *   "devices": [ { "bus": "serial", "systemPath": "/dev/ttyACM0",
 *                  "configPath": "/dev/serial/by-id/usb-Ingenico_…-if00", "usbId": "0b00:0064",
 *                  "manufacturer": "Ingenico",
 *                  "known": { "name": "Ingenico PIN pad", "role": "pinpad", "quirk": "…" } },
 *                { "bus": "hid", "systemPath": "/dev/hidraw2", "configPath": "hid://0801:0011/B1234",
 *                  "usbId": "0801:0011", "configNote": "…" } ],
 *   "serial": { "method": "udev" },
 *   "hidError": { "code": "POS104", "message": "…" } }
 * ```
 *
 * `serial.method` is `udev` or `scan` (then `serial.fallbackReason` says why); `hidError` is
 * present only when USB HID devices could not be listed; `known.role` is one of `hid-msr`,
 * `wedge`, `serial-reader`, `pinpad`, `usb-serial-adapter`.
 */
import type { Writable } from 'node:stream';
import { discoverDevices, type DiscoveryReport } from '../../drivers/discovery/discover.js';
import { USB_FINGERPRINTS } from '../../drivers/discovery/usb-fingerprints.js';
import type { PortListOptions } from '../../drivers/transport/port-list.js';

/** Formats a discovery report as the text the command prints. */
export function formatDevices(report: DiscoveryReport): string {
  const lines: string[] = [];
  const serial = report.devices.filter((d) => d.bus === 'serial');
  const hid = report.devices.filter((d) => d.bus === 'hid');
  lines.push(
    report.serial.method === 'udev'
      ? 'Serial ports (listed through udev):'
      : `Serial ports (udev is not available: ${report.serial.fallbackReason ?? 'unknown reason'}; scanned /dev/serial/by-id and /dev/tty* instead):`,
  );
  if (serial.length === 0) lines.push('  none found');
  for (const d of serial) lines.push(...deviceLines(d));
  lines.push('USB HID devices:');
  if (report.hidError !== undefined)
    lines.push(`  not available: ${report.hidError.code} ${report.hidError.reason}`);
  else if (hid.length === 0) lines.push('  none found');
  for (const d of hid) lines.push(...deviceLines(d));
  lines.push(
    `Recognised vendors: ${[...new Map(USB_FINGERPRINTS.map((f) => [f.vendorId, f.vendor])).entries()].map(([vid, name]) => `${name} ${vid.toString(16).padStart(4, '0')}`).join(', ')}`,
  );
  return `${lines.join('\n')}\n`;
}

function deviceLines(d: DiscoveryReport['devices'][number]): string[] {
  const what = d.known
    ? `${d.known.name} (${d.known.role})`
    : `unknown device${d.manufacturer !== undefined ? ` from ${d.manufacturer}` : ''}`;
  const out = [
    `  ${d.systemPath}${d.usbId !== undefined ? `  [${d.usbId}]` : ''}  ${what}${d.product !== undefined ? ` "${d.product}"` : ''}`,
    `    configure: "path": "${d.configPath}"${d.known?.role === 'hid-msr' || d.known?.role === 'wedge' ? `, "kind": "${d.known.role}"` : ''}`,
  ];
  if (d.configNote !== undefined) out.push(`    note: ${d.configNote}`);
  if (d.known !== undefined) out.push(`    quirk: ${d.known.quirk}`);
  return out;
}

/**
 * Runs the command.
 * @returns the exit status (0).
 */
export async function runDevices(options: {
  json: boolean;
  out: Writable;
  listOptions?: PortListOptions;
}): Promise<number> {
  const report = await discoverDevices(options.listOptions);
  if (options.json)
    options.out.write(
      `${JSON.stringify(
        {
          version: 1,
          ...report,
          hidError:
            report.hidError === undefined
              ? undefined
              : { code: report.hidError.code, message: report.hidError.reason },
        },
        null,
        2,
      )}\n`,
    );
  else options.out.write(formatDevices(report));
  return 0;
}
