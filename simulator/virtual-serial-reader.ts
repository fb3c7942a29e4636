/**
 * Virtual serial magnetic stripe reader (architecture.md §7): prints each swipe as one line of track text
 * (`%B…?;…?` CR LF), like MagTek/ID TECH readers in serial (or USB CDC) mode. It is a
 * {@link MockPeer}, so it serves `mock://name` in process, and `tcp://` through {@link serveSerialReaderTcp}
 * (the agent sees the same bytes as on ser2net or a pty).
 *
 * Faults as the HID reader's ({@link SwipeFault}), plus `unplug()`/`replug()`: the connection is
 * closed from the device side and new connections are refused until the replug.
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { ByteEndpoint, MockPeer } from '../drivers/transport/transport.js';
import { registerMockPeer } from '../drivers/transport/transport.js';
import type { TestCard } from './test-cards.js';
import { swipeTracks, type SwipeOptions } from './virtual-hid-reader.js';

/** Bytes a `garbage` swipe never contains: LF, CR and the track sentinels `%`, `;`, `?`. */
const GARBAGE_EXCLUDED = new Set([0x0a, 0x0d, 0x25, 0x3b, 0x3f]);

/** A virtual serial reader. */
export class VirtualSerialReader implements MockPeer {
  #endpoint: ByteEndpoint | undefined;
  #plugged = true;
  /** Every line sent, in order, with its CR LF. */
  readonly sent: Buffer[] = [];

  /** True while a host has it open. */
  get connected(): boolean {
    return this.#endpoint !== undefined;
  }

  /** Called for each host connection (MockPeer). Refused (closed at once) while unplugged. */
  attach(endpoint: ByteEndpoint): void {
    if (!this.#plugged) {
      endpoint.close();
      return;
    }
    this.#endpoint?.close();
    this.#endpoint = endpoint;
    endpoint.onClose(() => {
      if (this.#endpoint === endpoint) this.#endpoint = undefined;
    });
  }

  /** The line a swipe produces, with the fault applied. */
  lineFor(card: string | TestCard, options: SwipeOptions = {}): Buffer {
    if (options.fault === 'garbage')
      // Random bytes, but never a line end or a track sentinel (% ; ?): by chance they made a
      // "swipe" the reader parsed differently, and the fault's outcome (no_start_sentinel) flaky.
      return Buffer.concat([
        randomBytes(24).map((b) => (GARBAGE_EXCLUDED.has(b) ? 0x20 : b)),
        Buffer.from('\r\n'),
      ]);
    const { track1, track2 } = swipeTracks(card, options);
    const text =
      options.fault === 'bad_swipe'
        ? Buffer.from('%E?;E?')
        : Buffer.concat([track1 ?? Buffer.from('%E?'), track2 ?? Buffer.from(';E?')]);
    return Buffer.concat([text, Buffer.from('\r\n')]);
  }

  /**
   * Swipes a card. `chunkBytes` splits the line into several writes (a slow UART).
   * @returns true when a host was connected to receive it.
   */
  swipe(card: string | TestCard, options: SwipeOptions & { chunkBytes?: number } = {}): boolean {
    const line = this.lineFor(card, options);
    this.sent.push(Buffer.from(line));
    const endpoint = this.#endpoint;
    if (endpoint === undefined) return false;
    const step = options.chunkBytes ?? line.length;
    for (let i = 0; i < line.length; i += step) endpoint.send(line.subarray(i, i + step));
    line.fill(0);
    return true;
  }

  /** Pulls the cable: the host sees a disconnect; reconnects are refused until {@link replug}. */
  unplug(): void {
    this.#plugged = false;
    this.#endpoint?.close();
    this.#endpoint = undefined;
  }

  /** Plugs it back in. */
  replug(): void {
    this.#plugged = true;
  }
}

/** Registers the reader under `mock://name`; returns the unregister function. */
export function serveSerialReaderMock(reader: VirtualSerialReader, name: string): () => void {
  return registerMockPeer(name, reader);
}

/** Serves the reader on `tcp://127.0.0.1:PORT` (port 0 = free). */
export async function serveSerialReaderTcp(
  reader: VirtualSerialReader,
  options: { port?: number } = {},
): Promise<{ url: string; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const closeListeners: (() => void)[] = [];
    let closed = false;
    socket.once('close', () => {
      sockets.delete(socket);
      closed = true;
      for (const l of closeListeners) l();
    });
    reader.attach({
      send: (bytes) => {
        if (!closed) socket.write(Buffer.from(bytes));
      },
      onReceive: (listener) => socket.on('data', listener),
      onClose: (listener) => {
        closeListeners.push(listener);
      },
      close: () => socket.destroy(),
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `tcp://127.0.0.1:${port}`,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
