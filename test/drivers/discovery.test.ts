import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { discoverDevices } from '../../drivers/discovery/discover.js';
import { matchFingerprint } from '../../drivers/discovery/usb-fingerprints.js';
import { listSerialPorts } from '../../drivers/transport/port-list.js';
import { VirtualHidBackend, VirtualHidReader } from '../../simulator/virtual-hid-reader.js';

const dirs: string[] = [];
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake /dev and /sys/class/tty: an Ingenico pad on ttyACM0 with a by-id link, a bare ttyUSB0, legacy ttyS0. */
function fakeTree(): { devDir: string; sysClassTtyDir: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'pos-devs-'));
  dirs.push(root);
  const devDir = path.join(root, 'dev');
  const sysClassTtyDir = path.join(root, 'sys', 'class', 'tty');
  mkdirSync(path.join(devDir, 'serial', 'by-id'), { recursive: true });
  for (const n of ['ttyACM0', 'ttyUSB0', 'ttyS0', 'tty1', 'null'])
    writeFileSync(path.join(devDir, n), '');
  symlinkSync(
    '../../ttyACM0',
    path.join(devDir, 'serial', 'by-id', 'usb-Ingenico_Lane_3000_1234-if00'),
  );
  // sysfs: …/usb1/1-1 holds idVendor; the tty's device is the interface 1-1:1.0 below it
  const usbDev = path.join(root, 'sys', 'devices', 'usb1', '1-1');
  const iface = path.join(usbDev, '1-1:1.0');
  mkdirSync(iface, { recursive: true });
  writeFileSync(path.join(usbDev, 'idVendor'), '0b00\n');
  writeFileSync(path.join(usbDev, 'idProduct'), '0084\n');
  writeFileSync(path.join(usbDev, 'manufacturer'), 'INGENICO\n');
  writeFileSync(path.join(usbDev, 'serial'), '1234\n');
  mkdirSync(path.join(sysClassTtyDir, 'ttyACM0'), { recursive: true });
  symlinkSync(iface, path.join(sysClassTtyDir, 'ttyACM0', 'device'));
  return { devDir, sysClassTtyDir };
}

describe('serial port listing', () => {
  it('falls back to scanning /dev and sysfs when udev is missing, and says why', async () => {
    const tree = fakeTree();
    const listing = await listSerialPorts({
      ...tree,
      list: () => Promise.reject(new Error('spawn udevadm ENOENT')),
    });
    expect(listing.method).toBe('scan');
    expect(listing.fallbackReason).toBe('spawn udevadm ENOENT');
    expect(listing.ports).toEqual([
      {
        path: path.join(tree.devDir, 'ttyACM0'),
        byIdPath: path.join(tree.devDir, 'serial/by-id/usb-Ingenico_Lane_3000_1234-if00'),
        vendorId: '0b00',
        productId: '0084',
        manufacturer: 'INGENICO',
        serialNumber: '1234',
      },
      { path: path.join(tree.devDir, 'ttyUSB0') },
    ]);
  });

  it('uses serialport list results and adds the by-id link', async () => {
    const tree = fakeTree();
    const listing = await listSerialPorts({
      ...tree,
      list: async () => [
        { path: path.join(tree.devDir, 'ttyACM0'), vendorId: '0B00', productId: '0084' },
      ],
    });
    expect(listing.method).toBe('udev');
    expect(listing.ports[0]?.byIdPath).toContain('usb-Ingenico');
    expect(listing.ports[0]?.vendorId).toBe('0b00');
  });
});

describe('fingerprints and discovery', () => {
  it('recognises vendors; a keyboard usage makes a reader a wedge', () => {
    expect(
      matchFingerprint({ vendorId: 0x0801, productId: 0x0002, usagePage: 0xff00, usage: 1 })?.role,
    ).toBe('hid-msr');
    expect(
      matchFingerprint({ vendorId: 0x0acd, productId: 0x3810, usagePage: 0x01, usage: 0x06 })?.role,
    ).toBe('wedge');
    expect(matchFingerprint({ vendorId: 0x0801, productId: 0x0001 })?.role).toBe('wedge');
    expect(matchFingerprint({ vendorId: 0x11ca })?.fingerprint.name).toBe('Verifone PIN pad');
    expect(matchFingerprint({ vendorId: 0x2fb8 })?.role).toBe('pinpad');
    expect(matchFingerprint({ vendorId: 0x1234 })).toBeUndefined();
  });

  it('lists serial and HID devices with the stable path to configure', async () => {
    const tree = fakeTree();
    const backend = new VirtualHidBackend();
    cleanups.push(backend.install());
    backend.add(new VirtualHidReader({ mode: 'msr', serialNumber: 'B0123' }));
    backend.add(
      new VirtualHidReader({
        mode: 'wedge',
        vendorId: 0x0acd,
        productId: 0x3810,
        serialNumber: 'W9',
      }),
    );
    const report = await discoverDevices({
      ...tree,
      list: () => Promise.reject(new Error('no udev')),
    });
    expect(report.hidError).toBeUndefined();
    expect(report.serial).toEqual({ method: 'scan', fallbackReason: 'no udev' });
    const summary = report.devices.map((d) => [
      d.bus,
      d.configPath.replace(tree.devDir, '/dev'),
      d.known?.role,
    ]);
    expect(summary).toEqual([
      ['serial', '/dev/serial/by-id/usb-Ingenico_Lane_3000_1234-if00', 'pinpad'],
      ['serial', '/dev/ttyUSB0', undefined],
      ['hid', 'hid://0801:0002/B0123', 'hid-msr'],
      ['hid', 'hid://0acd:3810/W9', 'wedge'],
    ]);
    expect(report.devices[1]?.configNote).toMatch(/can change after a replug/);
  });
});
