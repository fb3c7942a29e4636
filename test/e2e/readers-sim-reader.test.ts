/**
 * `pos-agent sim reader` (agent/commands/sim-reader.ts): a serial reader served on tcp:// that
 * swipes on Enter, read by the agent's serial CardReader; HID kinds refused with the reason.
 */
import { Buffer } from 'node:buffer';
import { PassThrough } from 'node:stream';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { simReader } from '../../agent/commands/sim-reader.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { CardReader } from '../../drivers/readers/card-reader.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { FakeClock } from '../helpers/fake-clock.js';

describe('pos-agent sim reader', () => {
  it.each(['hid-msr', 'wedge', 'sred'])(
    '--kind %s is POS501 explaining that virtual HID readers are in-process only',
    async (kind) => {
      const io = { out: new PassThrough(), input: new PassThrough(), stopped: Promise.resolve() };
      await expect(
        simReader({ kind, listen: 'tcp://127.0.0.1:0', card: 'visa' }, io),
      ).rejects.toThrow(/POS501.*|hidraw.*in-process/);
      await expect(
        simReader({ kind, listen: 'tcp://127.0.0.1:0', card: 'visa' }, io),
      ).rejects.toMatchObject({ code: 'POS501' });
    },
  );

  it('refuses an unknown card, a non-loopback --listen and an unknown fault with POS501', async () => {
    const io = { out: new PassThrough(), input: new PassThrough(), stopped: Promise.resolve() };
    const base = { kind: 'serial', listen: 'tcp://127.0.0.1:0', card: 'visa' };
    for (const bad of [
      { ...base, card: 'nocard' },
      { ...base, listen: 'tcp://0.0.0.0:7431' },
      { ...base, fault: 'melted' },
      { ...base, everySeconds: 0 },
    ])
      await expect(simReader(bad, io)).rejects.toMatchObject({ code: 'POS501' });
  });

  it('--kind serial: Enter swipes the named card; the agent’s serial CardReader reads it over tcp://', async () => {
    const out = new PassThrough();
    const input = new PassThrough();
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    let ready!: (urls: { tcp: string }) => void;
    const served = new Promise<{ tcp: string }>((resolve) => (ready = resolve));
    const running = simReader(
      { kind: 'serial', listen: 'tcp://127.0.0.1:0', card: 'amex' },
      { out, input, stopped, onReady: (urls) => ready(urls) },
    );
    const { tcp } = await served;
    const reader = new CardReader({
      name: 'sim-serial',
      kind: 'serial',
      transport: createTransport(tcp),
      boundary: new CardBoundary({
        tokenKey: Buffer.alloc(32, 3),
        vaultPublicKey: nacl.box.keyPair().publicKey,
        clock: new FakeClock(),
      }),
      reconnect: false,
    });
    await reader.start();
    const read = reader.read();
    // The server attaches the connection asynchronously: press Enter until a swipe is delivered.
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    // A deadline, so a server that never swipes fails the test with a reason instead of
    // pressing Enter forever after vitest's timeout.
    const deadline = Date.now() + 10_000;
    while (!text.includes('  swiped\n')) {
      if (Date.now() > deadline)
        throw new Error(`no swipe after 10 s of pressing Enter; the server wrote:\n${text}`);
      input.write('\n');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await read).toMatchObject({ ok: true, card: { brand: 'amex', last4: '0005' } });
    expect(text).toContain('"kind": "serial", "path": "tcp://127.0.0.1:');
    await reader.close();
    stop();
    await running;
  }, 20_000);
});
