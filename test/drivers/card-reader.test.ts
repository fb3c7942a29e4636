import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { CardReader, type CardReaderKind } from '../../drivers/readers/card-reader.js';
import {
  HidTransport,
  parseHidPath,
  useHidBackend,
} from '../../drivers/transport/hid-transport.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { VirtualHidBackend, VirtualHidReader } from '../../simulator/virtual-hid-reader.js';
import {
  serveSerialReaderMock,
  serveSerialReaderTcp,
  VirtualSerialReader,
} from '../../simulator/virtual-serial-reader.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { visaHidMsrReport, visaSerialLine } from '../fixtures/reader-traces.js';
import { until } from '../helpers/wait.js';

const vault = nacl.box.keyPair();
const boundary = (): CardBoundary =>
  new CardBoundary({
    tokenKey: Buffer.alloc(32, 9),
    vaultPublicKey: vault.publicKey,
    clock: new FakeClock(),
  });

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hidReader(mode: 'msr' | 'wedge', clock = new FakeClock()) {
  const backend = new VirtualHidBackend();
  cleanups.push(backend.install());
  const device = backend.add(new VirtualHidReader({ mode, serialNumber: `T${mode}` }));
  const reader = new CardReader({
    name: `usb-${mode}`,
    kind: mode === 'msr' ? 'hid-msr' : 'wedge',
    transport: createTransport(device.hidPath),
    boundary: boundary(),
    clock,
    reconnect: { initialDelayMs: 100, maxDelayMs: 400 },
  });
  cleanups.push(() => reader.close());
  await reader.start();
  return { device, reader, clock };
}

describe('hid:// transport', () => {
  it('parses hid:// paths and refuses malformed ones with POS105', () => {
    expect(parseHidPath('hid://0801:0011/AB12')).toEqual({
      vendorId: 0x0801,
      productId: 0x0011,
      serialNumber: 'AB12',
    });
    expect(() => parseHidPath('hid://801:11')).toThrow(/POS105/);
    expect(createTransport('hid://0acd:2010')).toBeInstanceOf(HidTransport);
  });

  it('a device that is not plugged in is POS101 naming pos-agent devices', async () => {
    const backend = new VirtualHidBackend();
    cleanups.push(backend.install());
    const t = createTransport('hid://0801:0002');
    await expect(t.open()).rejects.toThrow(/POS101.*|pos-agent devices/);
  });
});

describe('hid:// open failures name the fix', () => {
  it('a device that cannot be opened (hidraw permissions) is POS101 with the udev rule', async () => {
    const restore = useHidBackend({
      devices: async () => [{ vendorId: 0x0acd, productId: 0x2010, path: '/dev/hidraw7' }],
      open: () => Promise.reject(new Error('cannot open device with path /dev/hidraw7')),
    });
    cleanups.push(restore);
    const error = await createTransport('hid://0acd:2010')
      .open()
      .catch((e: unknown) => e);
    expect(isAgentError(error, 'POS101')).toBe(true);
    expect((error as Error).message).toContain('SUBSYSTEM=="hidraw", ATTRS{idVendor}=="0acd"');
  });
});

describe.each(['msr', 'wedge'] as const)('CardReader over virtual HID (%s)', (mode) => {
  it('tokenizes a swipe on an armed read, with the PAN only inside the sealed blob', async () => {
    const { device, reader } = await hidReader(mode);
    expect(reader.state).toBe('connected');
    const read = reader.read();
    expect(device.swipe('visa')).toBeGreaterThan(0);
    const result = await read;
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.card).toMatchObject({ first6: '411111', last4: '1111', entryMode: 'swipe' });
    expect(JSON.stringify(result.card)).not.toContain('4111111111111111');
    const sealed = openSealedCard(result.card.sealed ?? '', vault.secretKey);
    expect(sealed.panDigits).toBe('4111111111111111');
  });

  it.each([
    ['bad_swipe', 'bad_read'],
    ['chip_card', 'chip_required'],
    ['reversed', 'no_start_sentinel'],
    // garbage: a report of the wrong size (msr) / keys that are not a swipe (wedge)
    ['garbage', mode === 'msr' ? 'bad_read' : 'no_start_sentinel'],
  ] as const)('fault %s → %s', async (fault, reason) => {
    const { device, reader } = await hidReader(mode);
    const read = reader.read();
    device.swipe('visa', { fault });
    expect(await read).toEqual({ ok: false, reason });
  });

  it('one good track is enough', async () => {
    const { device, reader } = await hidReader(mode);
    const read = reader.read();
    device.swipe('mastercard', { fault: 'one_track' });
    expect(await read).toMatchObject({ ok: true, card: { last4: '4444' } });
  });

  it('a swipe with no read armed is discarded with an event', async () => {
    const { device, reader } = await hidReader(mode);
    const discarded: unknown[] = [];
    reader.on('swipe-discarded', (d) => discarded.push(d));
    device.swipe('visa');
    expect(discarded).toEqual([{ reader: `usb-${mode}`, reason: 'no_payment' }]);
  });

  it('unplug mid-read ends the read as reader_disconnected; replug reopens with backoff', async () => {
    const { device, reader, clock } = await hidReader(mode);
    const states: string[] = [];
    reader.on('state', (s) => states.push(s));
    const read = reader.read();
    device.unplug();
    expect(await read).toEqual({ ok: false, reason: 'reader_disconnected' });
    expect(reader.state).toBe('disconnected');
    expect(isAgentError(reader.lastError, 'POS102')).toBe(true);
    expect(await reader.read()).toEqual({ ok: false, reason: 'reader_disconnected' });
    clock.advance(100); // first reopen: still unplugged
    await until(() => states.filter((s) => s === 'disconnected').length >= 2);
    device.replug();
    clock.advance(200); // backoff doubled
    await until(() => reader.state === 'connected');
    expect(states).toEqual([
      'disconnected',
      'connecting',
      'disconnected',
      'connecting',
      'connected',
    ]);
    const again = reader.read();
    device.swipe('visa');
    expect(await again).toMatchObject({ ok: true });
  });
});

describe('HID MSR bytes are the fixture bytes', () => {
  it('the virtual MSR sends exactly the annotated report', async () => {
    const { device } = await hidReader('msr');
    device.swipe('visa');
    expect([...(device.sent[0] ?? [])]).toEqual(visaHidMsrReport());
  });
});

async function serialReader(kind: 'mock' | 'tcp') {
  const device = new VirtualSerialReader();
  let path: string;
  if (kind === 'mock') {
    const name = `reader-${Math.random().toString(36).slice(2)}`;
    cleanups.push(serveSerialReaderMock(device, name));
    path = `mock://${name}`;
  } else {
    const server = await serveSerialReaderTcp(device);
    cleanups.push(() => server.stop());
    path = server.url;
  }
  const clock = new FakeClock();
  const reader = new CardReader({
    name: 'serial-msr',
    kind: 'serial' satisfies CardReaderKind,
    transport: createTransport(path),
    boundary: boundary(),
    clock,
    reconnect: { initialDelayMs: 50, maxDelayMs: 50 },
  });
  cleanups.push(() => reader.close());
  await reader.start();
  await until(() => device.connected);
  return { device, reader, clock };
}

describe.each(['mock', 'tcp'] as const)('CardReader over a serial line (%s)', (kind) => {
  it('reads a swipe line split over several chunks; the line is the fixture', async () => {
    const { device, reader } = await serialReader(kind);
    const read = reader.read();
    device.swipe('visa', { chunkBytes: 7 });
    expect(await read).toMatchObject({ ok: true, card: { first6: '411111', last4: '1111' } });
    expect([...(device.sent[0] ?? [])]).toEqual(visaSerialLine());
  });

  it('faults: bad swipe, chip card, reversed, garbage', async () => {
    const { device, reader } = await serialReader(kind);
    for (const [fault, reason] of [
      ['bad_swipe', 'bad_read'],
      ['chip_card', 'chip_required'],
      ['reversed', 'no_start_sentinel'],
      ['garbage', 'no_start_sentinel'],
    ] as const) {
      const read = reader.read();
      device.swipe('visa', { fault });
      expect(await read).toEqual({ ok: false, reason });
    }
  });

  it('unplug mid-read → reader_disconnected; replug → connected again', async () => {
    const { device, reader, clock } = await serialReader(kind);
    const read = reader.read();
    device.unplug();
    expect(await read).toEqual({ ok: false, reason: 'reader_disconnected' });
    device.replug();
    clock.advance(50);
    await until(() => reader.state === 'connected' && device.connected);
    const again = reader.read();
    device.swipe('amex');
    expect(await again).toMatchObject({ ok: true, card: { brand: 'amex' } });
  });
});
