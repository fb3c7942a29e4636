/**
 * `pos-agent doctor`: the devices check — each configured PIN pad and card reader present and
 * openable, matched to what `pos-agent devices` lists.
 */
import { closeSync, constants, openSync, realpathSync } from 'node:fs';
import { type DiscoveredDevice, type DiscoveryReport } from '../../drivers/discovery/discover.js';
import { parseHidPath } from '../../drivers/transport/hid-transport.js';
import { type AgentConfig } from '../config.js';
import type { DoctorDevice, DoctorFinding } from './doctor-finding.js';
import { tcpProbe } from './tcp-probe.js';

const matchOf = (d: DiscoveredDevice): NonNullable<DoctorDevice['matched']> => ({
  systemPath: d.systemPath,
  ...(d.usbId !== undefined ? { usbId: d.usbId } : {}),
  ...(d.known !== undefined ? { name: d.known.name } : {}),
});

const describeMatch = (m: DoctorDevice['matched']): string =>
  m === undefined
    ? ''
    : ` (matched ${m.name ?? 'an unrecognised device'}${m.usbId !== undefined ? ` [${m.usbId}]` : ''} at ${m.systemPath})`;

/**
 * Checks the PIN pad and every configured card reader, and names the device each entry matched
 * in the discovery listing (the same one `pos-agent devices` prints).
 */
export async function checkDevices(
  config: AgentConfig,
  timeoutMs: number,
  discover: () => Promise<DiscoveryReport>,
  add: (f: DoctorFinding) => void,
): Promise<void> {
  const entries: Array<{ entry: string; what: string; path: string; name?: string }> = [
    { entry: 'pinPad', what: 'PIN pad', path: config.pinPad.path },
    ...config.cardReaders.map((r, i) => ({
      entry: `cardReaders[${i}]`,
      what: `card reader "${r.name}" (${r.kind})`,
      path: r.path,
      name: r.name,
    })),
  ];
  const needsListing = entries.some((e) => e.path.startsWith('/') || e.path.startsWith('hid://'));
  let report: DiscoveryReport | undefined;
  if (needsListing) {
    try {
      report = await discover();
    } catch {
      report = undefined;
    }
  }
  for (const e of entries) {
    const device: DoctorDevice = {
      entry: e.entry,
      ...(e.name !== undefined ? { name: e.name } : {}),
      path: e.path,
    };
    const finding = (f: Omit<DoctorFinding, 'check' | 'device'>): void =>
      add({ check: 'devices', ...f, device });
    const defaultNote =
      e.entry === 'pinPad' && e.path === '/dev/ttyUSB0'
        ? ' (the provisioning default: no --pinpad was given)'
        : '';
    if (e.path.startsWith('mock://')) {
      finding({ level: 'ok', message: `${e.what} ${e.path} is the in-process simulator` });
      continue;
    }
    if (e.path.startsWith('tcp://')) {
      const target = new URL(e.path);
      const error = await tcpProbe(target.hostname, Number(target.port), timeoutMs);
      if (error === undefined)
        finding({ level: 'ok', message: `${e.what} ${e.path} accepts connections` });
      else
        finding({
          level: 'problem',
          code: 'POS101',
          message: `${e.what} ${e.path} unreachable: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
          fix: `check that the serial server (ser2net) or simulator runs, and the address in ${e.entry}.path`,
        });
      continue;
    }
    if (e.path.startsWith('hid://')) {
      if (report === undefined || report.hidError !== undefined) {
        finding({
          level: 'warn',
          code: report?.hidError?.code ?? 'POS104',
          message: `${e.what} ${e.path} cannot be checked: USB HID support is unavailable${report?.hidError !== undefined ? ` (${report.hidError.reason})` : ''}; the agent runs without this reader`,
          fix: 'install the USB HID support: apt-get install libusb-1.0-0 libudev1 (the Debian package depends on them), and node-hid in the agent directory when it is missing; then run doctor again',
        });
        continue;
      }
      const want = parseHidPath(e.path);
      const hex = (n: number): string => n.toString(16).padStart(4, '0');
      const usbId = `${hex(want.vendorId)}:${hex(want.productId)}`;
      const found = report.devices.find(
        (d) =>
          d.bus === 'hid' &&
          d.usbId === usbId &&
          (want.serialNumber === undefined || d.configPath.endsWith(`/${want.serialNumber}`)),
      );
      if (found === undefined)
        finding({
          level: 'problem',
          code: 'POS101',
          message: `${e.what} ${e.path} is not plugged in (no HID device ${usbId}${want.serialNumber !== undefined ? ` with serial ${want.serialNumber}` : ''})`,
          fix: 'plug the reader in (or replug it); "pos-agent devices" lists the hid:// paths present',
        });
      else {
        device.matched = matchOf(found);
        const wrongKind =
          found.known !== undefined &&
          (found.known.role === 'hid-msr' || found.known.role === 'wedge') &&
          found.known.role !== config.cardReaders.find((r) => r.name === e.name)?.kind;
        finding({
          level: wrongKind ? 'warn' : 'ok',
          ...(wrongKind
            ? {
                code: 'POS145',
                fix: `set ${e.entry}.kind to "${found.known?.role ?? ''}" (${found.known?.quirk ?? ''})`,
              }
            : {}),
          message: `${e.what} ${e.path} is present${describeMatch(device.matched)}${wrongKind ? `, but it reports itself as ${found.known?.role ?? ''}` : ''}`,
        });
      }
      continue;
    }
    let real = e.path;
    try {
      real = realpathSync(e.path);
    } catch {
      // not present: the open below says so
    }
    const listed = report?.devices.find(
      (d) => d.bus === 'serial' && (d.systemPath === real || d.configPath === e.path),
    );
    if (listed !== undefined) device.matched = matchOf(listed);
    try {
      const fd = openSync(e.path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
      closeSync(fd);
      finding({
        level: 'ok',
        message: `${e.what} ${e.path}${defaultNote} is present and can be opened${describeMatch(device.matched ?? { systemPath: real })}`,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      finding({
        level: 'problem',
        code: 'POS101',
        message: `${e.what} ${e.path}${defaultNote} ${code === 'ENOENT' ? 'is not present' : `cannot be opened (${code})`}`,
        fix:
          code === 'EACCES'
            ? "add the agent's user to the dialout group (usermod -aG dialout pos-agent; the Debian package does this), or install the package's udev rules"
            : 'plug the device in, and configure a stable path (/dev/pos/… from the package\'s udev rules, or /dev/serial/by-id/…; "pos-agent devices" lists them)',
      });
    }
  }
}
