/**
 * The agent's serial CardReader on a real pseudo-terminal (socat), reading swipes printed by the
 * virtual serial reader (simulator/reader-server.ts): the same serialport path as a USB-serial
 * reader. Needs socat; without it the suite is skipped and says so.
 */
import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { CardReader } from '../../drivers/readers/card-reader.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { hasSocat, serveSerialReaderPty } from '../../simulator/reader-server.js';
import { VirtualSerialReader } from '../../simulator/virtual-serial-reader.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { visaSerialLine } from '../fixtures/reader-traces.js';
import { until } from '../helpers/wait.js';

const socat = hasSocat();
if (!socat) console.warn('serial-reader-pty.test.ts skipped: needs socat (apt-get install socat)');

describe.skipIf(!socat)('serial card reader over a real pty (socat)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup() {
    const device = new VirtualSerialReader();
    const server = await serveSerialReaderPty(device);
    cleanups.push(() => server.stop());
    const reader = new CardReader({
      name: 'serial-msr',
      kind: 'serial',
      transport: createTransport(server.path),
      boundary: new CardBoundary({
        tokenKey: Buffer.alloc(32, 9),
        vaultPublicKey: nacl.box.keyPair().publicKey,
        clock: new FakeClock(),
      }),
      reconnect: false,
    });
    cleanups.push(() => reader.close());
    await reader.start();
    expect(reader.state).toBe('connected');
    await until(() => device.connected);
    return { device, reader, server };
  }

  it('reads a swipe through the pty: the line is the annotated fixture, the token is the card', async () => {
    const { device, reader } = await setup();
    const read = reader.read();
    expect(device.swipe('visa')).toBe(true);
    expect([...(device.sent[0] ?? [])]).toEqual(visaSerialLine());
    const result = await read;
    expect(result).toMatchObject({
      ok: true,
      card: { brand: 'visa', first6: '411111', last4: '1111', entryMode: 'swipe' },
    });
    if (result.ok) expect(result.card.sealed).toBeDefined();
  }, 20_000);

  it('a swipe written in small chunks (a slow UART) still reads; a reversed swipe is no_start_sentinel', async () => {
    const { device, reader } = await setup();
    const chunked = reader.read();
    device.swipe('mastercard', { chunkBytes: 3 });
    expect(await chunked).toMatchObject({ ok: true, card: { last4: '4444' } });
    const reversed = reader.read();
    device.swipe('visa', { fault: 'reversed' });
    expect(await reversed).toEqual({ ok: false, reason: 'no_start_sentinel' });
  }, 20_000);
});
