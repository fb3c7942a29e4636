/**
 * The virtual PIN pad on `tcp://` (simulator/pad-server.ts) sends what it answers in one turn as
 * one write: the ACK of a request and the reply right behind it, as a UART delivers back-to-back
 * bytes. One write per frame (TCP_NODELAY) woke the host twice per request, for the ACK and then
 * for the reply: simulator pacing the HTTP bench charged to the agent (issue 9 §2).
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ACK, encodeFrame } from '../../drivers/link/framing.js';
import { encodeMessage } from '../../drivers/pinpad/messages.js';
import { serveTcp } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  while (cleanups.length > 0) await cleanups.pop()?.();
});

type WritableImpl = {
  _write: (...args: unknown[]) => unknown;
  _writev: (...args: unknown[]) => unknown;
};

/** Counts the writes (system calls) the sockets on local port `port` make, and their bytes. */
function countWrites(port: number): { writes: number; bytes: number[] } {
  const seen = { writes: 0, bytes: [] as number[] };
  const proto = net.Socket.prototype as unknown as WritableImpl;
  const write = proto._write;
  const writev = proto._writev;
  vi.spyOn(proto, '_write').mockImplementation(function (this: net.Socket, ...args: unknown[]) {
    if (this.localPort === port) {
      seen.writes += 1;
      seen.bytes.push(...(args[0] as Buffer));
    }
    return write.apply(this, args);
  });
  vi.spyOn(proto, '_writev').mockImplementation(function (this: net.Socket, ...args: unknown[]) {
    if (this.localPort === port) {
      seen.writes += 1;
      for (const { chunk } of args[0] as { chunk: Buffer }[]) seen.bytes.push(...chunk);
    }
    return writev.apply(this, args);
  });
  return seen;
}

describe('virtual PIN pad over tcp://', () => {
  it('sends the ACK of a card read and its 21 reply in one write', async () => {
    const pad = new VirtualPinPad();
    const server = await serveTcp(pad);
    cleanups.push(() => server.stop());
    const host = net.connect(server.port, '127.0.0.1');
    cleanups.push(() => void host.destroy());
    await new Promise<void>((resolve) => host.once('connect', () => resolve()));
    host.setNoDelay(true);
    const received: number[] = [];
    host.on('data', (chunk: Buffer) => received.push(...chunk));
    const writes = countWrites(server.port);

    pad.presentCard('visa', { entryMode: 'C' });
    host.write(
      encodeFrame(
        encodeMessage({
          id: '20',
          amountMinor: 1250,
          currency: 'EUR',
          timeoutSeconds: 30,
          entryModes: ['S', 'C', 'T'],
        }),
      ),
    );
    // ACK (1 byte), then the 21 frame: STX … ETX LRC.
    while (received.length < 2 || received.at(-2) !== 0x03)
      await new Promise((resolve) => setImmediate(resolve));

    // Control: the pad did answer with both, ACK first (what was written is what arrived).
    expect(received[0]).toBe(ACK);
    expect(received[1]).toBe(0x02);
    expect(writes.bytes).toEqual(received);
    expect(writes.writes).toBe(1);
  });
});
