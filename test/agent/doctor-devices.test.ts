/**
 * `pos-agent doctor` on the configured devices (issue 12): each PIN pad and card reader entry is
 * checked and matched to a listed device; a hid:// reader without USB HID support is a warning
 * with the install command; the database is never created. USB HID is the one part mocked
 * (project rule 2): the listing is injected.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { doctor, runDoctor, type DoctorReport } from '../../agent/commands/doctor.js';
import { initDev } from '../../agent/service.js';
import { AgentError } from '../../common/agent-error.js';
import type { DiscoveryReport } from '../../drivers/discovery/discover.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A development terminal (plaintext broker on a closed port) with the given devices. */
function terminal(devices: { pinPad: string; cardReaders?: unknown[] }): {
  dir: string;
  configFile: string;
} {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-doctor-dev-'));
  dirs.push(dir);
  initDev(
    {
      dir: path.join(dir, 't'),
      deviceId: 'lane-0007',
      pinpad: devices.pinPad,
      broker: 'mqtt://127.0.0.1:9',
      apiPort: 7420,
    },
    new Writable({ write: (_c, _e, done) => done() }),
  );
  const configFile = path.join(dir, 't', 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    configFile,
    JSON.stringify({ ...config, cardReaders: devices.cardReaders ?? [] }, null, 2),
    { mode: 0o600 },
  );
  return { dir, configFile };
}

const noHid = (serial: DiscoveryReport['devices'] = []): DiscoveryReport => ({
  devices: serial,
  serial: { method: 'scan', fallbackReason: 'test' },
  hidError: new AgentError(
    'POS104',
    'USB HID support cannot load its system library (libusb-1.0.so.0: cannot open shared object file)',
  ),
});

describe('pos-agent doctor: devices', () => {
  it('warns with POS104 and the install command for a hid:// reader when USB HID support is missing', async () => {
    const { configFile } = terminal({
      pinPad: 'mock://pad',
      cardReaders: [{ name: 'counter-msr', kind: 'hid-msr', path: 'hid://0801:0011' }],
    });
    const findings = await doctor(configFile, { timeoutMs: 500, discover: async () => noHid() });
    const reader = findings.find((f) => f.device?.entry === 'cardReaders[0]');
    expect(reader).toMatchObject({ check: 'devices', level: 'warn', code: 'POS104' });
    expect(reader?.message).toContain('libusb-1.0.so.0');
    expect(reader?.fix).toContain('apt-get install libusb-1.0-0');
    expect(reader?.device).toMatchObject({ name: 'counter-msr', path: 'hid://0801:0011' });
  });

  it('names the device each entry matched, and refuses an absent reader with POS101', async () => {
    const { dir, configFile } = terminal({
      pinPad: 'mock://pad',
      cardReaders: [
        { name: 'counter-msr', kind: 'hid-msr', path: 'hid://0801:0011/B0123' },
        { name: 'back-msr', kind: 'hid-msr', path: 'hid://0acd:2010' },
      ],
    });
    // Control: the same listing without the MagTek reader gives a problem for it.
    const listing = (withMagtek: boolean): DiscoveryReport => ({
      devices: withMagtek
        ? [
            {
              bus: 'hid',
              systemPath: '/dev/hidraw3',
              configPath: 'hid://0801:0011/B0123',
              usbId: '0801:0011',
              known: { name: 'MagTek HID swipe reader', role: 'hid-msr', quirk: 'q' },
            },
          ]
        : [],
      serial: { method: 'udev' },
    });
    const absent = await doctor(configFile, {
      timeoutMs: 500,
      discover: async () => listing(false),
    });
    expect(absent.find((f) => f.device?.entry === 'cardReaders[0]')).toMatchObject({
      level: 'problem',
      code: 'POS101',
    });
    const { out, text } = capture();
    await runDoctor(configFile, out, {
      timeoutMs: 500,
      discover: async () => listing(true),
      json: true,
    });
    const report = JSON.parse(text()) as DoctorReport;
    const magtek = report.findings.find((f) => f.device?.entry === 'cardReaders[0]');
    expect(magtek).toMatchObject({
      level: 'ok',
      device: {
        name: 'counter-msr',
        matched: {
          systemPath: '/dev/hidraw3',
          usbId: '0801:0011',
          name: 'MagTek HID swipe reader',
        },
      },
    });
    expect(magtek?.message).toContain(
      'matched MagTek HID swipe reader [0801:0011] at /dev/hidraw3',
    );
    expect(report.findings.find((f) => f.device?.entry === 'cardReaders[1]')).toMatchObject({
      level: 'problem',
      code: 'POS101',
    });
    expect(existsSync(path.join(dir, 't', 'data', 'agent.db'))).toBe(false);
  });

  it('follows a stable /dev link to the listed serial device it names', async () => {
    const dirRoot = mkdtempSync(path.join(tmpdir(), 'pos-doctor-dev-tty-'));
    dirs.push(dirRoot);
    // A stand-in for /dev/ttyACM0 and its /dev/serial/by-id link (a file opens like a device).
    const node = path.join(dirRoot, 'ttyACM0');
    writeFileSync(node, '');
    mkdirSync(path.join(dirRoot, 'by-id'));
    const link = path.join(dirRoot, 'by-id', 'usb-Ingenico_Lane_3000-if00');
    symlinkSync(node, link);
    const { configFile } = terminal({ pinPad: link });
    const findings = await doctor(configFile, {
      timeoutMs: 500,
      discover: async () =>
        noHid([
          {
            bus: 'serial',
            systemPath: realpathSync(node),
            configPath: link,
            usbId: '0b00:0064',
            known: { name: 'Ingenico PIN pad', role: 'pinpad', quirk: 'q' },
          },
        ]),
    });
    const pad = findings.find((f) => f.device?.entry === 'pinPad');
    expect(pad).toMatchObject({
      level: 'ok',
      device: { matched: { name: 'Ingenico PIN pad', usbId: '0b00:0064' } },
    });
  });

  it('says when the PIN pad path is the provisioning default, and that it is absent', async () => {
    if (existsSync('/dev/ttyUSB0')) {
      console.warn('[skipped] /dev/ttyUSB0 exists on this machine: cannot show it absent');
      return;
    }
    const { configFile } = terminal({ pinPad: '/dev/ttyUSB0' });
    const findings = await doctor(configFile, { timeoutMs: 500, discover: async () => noHid() });
    expect(findings.find((f) => f.device?.entry === 'pinPad')).toMatchObject({
      level: 'problem',
      code: 'POS101',
      message: expect.stringContaining(
        '(the provisioning default: no --pinpad was given) is not present',
      ),
    });
  });

  it('reports a missing database as a coded warning and does not create it', async () => {
    const { dir, configFile } = terminal({ pinPad: 'mock://pad' });
    const findings = await doctor(configFile, { timeoutMs: 500, discover: async () => noHid() });
    expect(findings.find((f) => f.check === 'database')).toMatchObject({
      level: 'warn',
      code: 'POS201',
    });
    expect(existsSync(path.join(dir, 't', 'data', 'agent.db'))).toBe(false);
  });
});

function capture(): { out: Writable; text: () => string } {
  let text = '';
  return {
    out: new Writable({
      write(chunk: Buffer, _e, done) {
        text += chunk.toString();
        done();
      },
    }),
    text: () => text,
  };
}
