/**
 * agent/card-input.ts on its own: the real PinPad on mock:// (virtual PIN pad) raced against
 * real CardReaders on virtual HID devices; the injected clock drives the readers' timeout.
 */
import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { CardInput, type CardInputPinPad } from '../../agent/card-input.js';
import { isAgentError } from '../../common/agent-error.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { PinPad } from '../../drivers/pinpad/pin-pad.js';
import { CardReader } from '../../drivers/readers/card-reader.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { serveMock } from '../../simulator/pad-server.js';
import { VirtualHidBackend, VirtualHidReader } from '../../simulator/virtual-hid-reader.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { until } from '../helpers/wait.js';

const vault = nacl.box.keyPair();
const boundary = new CardBoundary({
  tokenKey: Buffer.alloc(32, 5),
  vaultPublicKey: vault.publicKey,
});
const request = {
  amountMinor: 500,
  currency: 'EUR',
  timeoutSeconds: 30,
  entryModes: ['S', 'C', 'T'] as ('S' | 'C' | 'T')[],
};
const cleanups: (() => unknown)[] = [];
let counter = 0;
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(options: { pad?: boolean } = {}) {
  const clock = new FakeClock();
  const virtualPad = new VirtualPinPad();
  let pinPad: PinPad | undefined;
  if (options.pad !== false) {
    const server = serveMock(virtualPad, `card-input-${process.pid}-${counter++}`);
    cleanups.push(() => server.stop());
    pinPad = await PinPad.open({ transport: createTransport(server.url), boundary });
    cleanups.push(() => pinPad?.close());
  }
  const backend = new VirtualHidBackend();
  cleanups.push(backend.install());
  const device = backend.add(new VirtualHidReader({ mode: 'msr', serialNumber: `CI${counter++}` }));
  const reader = new CardReader({
    name: 'msr',
    kind: 'hid-msr',
    transport: createTransport(device.hidPath),
    boundary,
    clock,
  });
  cleanups.push(() => reader.close());
  await reader.start();
  const input = new CardInput({ pinPad: () => pinPad, readers: [reader], clock });
  return { clock, virtualPad, pinPad, device, reader, input };
}

describe('CardInput', () => {
  it('the PIN pad wins: the reader read is withdrawn and a later swipe is discarded with a prompt', async () => {
    const { virtualPad, device, reader, input } = await setup();
    const prompts: string[] = [];
    input.on('prompt', (p) => prompts.push(`${p.source}: ${p.text}`));
    virtualPad.presentCard('visa', { entryMode: 'C' });
    const result = await input.readCard(request);
    expect(result).toMatchObject({
      ok: true,
      source: 'pinPad',
      card: { entryMode: 'chip', last4: '1111' },
    });
    expect(reader.armed).toBe(false);
    device.swipe('amex');
    expect(prompts).toEqual(['msr: No payment in progress: card ignored']);
  });

  it('the reader wins: the PIN pad read is canceled (40 sent)', async () => {
    const { virtualPad, device, reader, input } = await setup();
    const read = input.readCard(request);
    await until(() => reader.armed);
    device.swipe('discover');
    expect(await read).toMatchObject({ ok: true, source: 'msr', card: { brand: 'discover' } });
    expect(virtualPad.received.map((m) => m.id)).toEqual(['20', '40']);
  });

  it('a card failure on the reader is decisive and named (chip_required)', async () => {
    const { device, reader, input } = await setup();
    const read = input.readCard(request);
    await until(() => reader.armed);
    device.swipe('visa', { fault: 'chip_card' });
    expect(await read).toEqual({ ok: false, reason: 'chip_required', source: 'msr' });
  });

  it('an abort (payment canceled) ends the read as canceled and cancels the pad', async () => {
    const { virtualPad, reader, input } = await setup();
    const abort = new AbortController();
    const read = input.readCard(request, abort.signal);
    await until(() => reader.armed);
    abort.abort();
    expect(await read).toMatchObject({ ok: false, reason: 'canceled' });
    expect(virtualPad.received.map((m) => m.id)).toContain('40');
    expect(reader.armed).toBe(false);
  });

  it('readers only: the timeout comes from the injected clock', async () => {
    const { clock, reader, input } = await setup({ pad: false });
    const read = input.readCard(request);
    await until(() => reader.armed);
    clock.advance(30_000);
    expect(await read).toEqual({ ok: false, reason: 'timeout', source: 'msr' });
  });

  it('unplug mid-read fails the read as reader_disconnected', async () => {
    const { device, reader, input } = await setup();
    const read = input.readCard(request);
    await until(() => reader.armed);
    device.unplug();
    expect(await read).toMatchObject({ ok: false, reason: 'reader_disconnected', source: 'msr' });
  });

  it('a PIN pad that fails while a reader waits does not end the read', async () => {
    const { device, reader } = await setup({ pad: false });
    const failingPad: CardInputPinPad = {
      readCard: () => Promise.reject(new Error('pad gone')),
      cancel: async () => undefined,
    };
    const input = new CardInput({
      pinPad: () => failingPad,
      readers: [reader],
      clock: new FakeClock(),
    });
    const read = input.readCard(request);
    await until(() => reader.armed);
    await new Promise((r) => setTimeout(r, 5));
    device.swipe('jcb');
    expect(await read).toMatchObject({ ok: true, source: 'msr', card: { brand: 'jcb' } });
  });

  it('no PIN pad and no connected reader is POS430; a second concurrent read is POS410', async () => {
    const { device, reader } = await setup({ pad: false });
    device.unplug();
    await until(() => reader.state === 'disconnected');
    const none = new CardInput({ pinPad: () => undefined, readers: [reader] });
    await expect(none.readCard(request)).rejects.toSatisfy((e) => isAgentError(e, 'POS430'));
    const { reader: r2, input } = await setup({ pad: false });
    const first = input.readCard(request);
    await until(() => r2.armed);
    await expect(input.readCard(request)).rejects.toSatisfy((e) => isAgentError(e, 'POS410'));
    await r2.close();
    await first;
  });
});
