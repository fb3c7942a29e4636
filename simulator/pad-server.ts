/**
 * Serves a {@link VirtualPinPad} to the agent the three ways architecture.md §7 names:
 *
 * ```
 *  serveMock(pad, 'pad1')  →  mock://pad1            in-process, @serialport/binding-mock
 *  serveTcp(pad)           →  tcp://127.0.0.1:PORT   net server on a free loopback port
 *  servePty(pad)           →  /tmp/…/pad             a real pseudo-terminal:
 *        agent ─serialport─► /dev/pts/N ◄─socat─► tcp://127.0.0.1:PORT ─► pad
 * ```
 *
 * The agent opens the returned URL/path with `createTransport()` exactly as it would real
 * hardware. One host connection at a time: a new one replaces the old.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { registerMockPeer, type ByteEndpoint } from '../drivers/transport/transport.js';
import { bridgePty, hasSocat } from './socat-pty.js';
import type { VirtualPinPad } from './virtual-pin-pad.js';

/** A running pad server. */
export interface PadServer {
  /** What to configure as the PIN pad path: `mock://…`, `tcp://…` or the pty path. */
  url: string;
  /** Stops serving; closes the current connection (and kills socat for a pty). */
  stop(): Promise<void>;
}

/** Registers the pad under `mock://name`. */
export function serveMock(pad: VirtualPinPad, name: string): PadServer {
  const unregister = registerMockPeer(name, pad);
  return {
    url: `mock://${name}`,
    stop: async () => {
      unregister();
    },
  };
}

function socketEndpoint(socket: net.Socket): ByteEndpoint {
  const closeListeners: (() => void)[] = [];
  let closed = false;
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  socket.once('close', () => {
    closed = true;
    for (const l of closeListeners) l();
  });
  return {
    send: (bytes) => {
      if (closed) return;
      // What the pad sends in one turn (an ACK and the reply right behind it) leaves as one
      // segment, as a UART delivers back-to-back bytes: one write per frame (TCP_NODELAY) woke
      // the host once for the ACK and again for the reply — simulator pacing, not the protocol.
      if (socket.writableCorked === 0) {
        socket.cork();
        process.nextTick(() => socket.uncork());
      }
      socket.write(Buffer.from(bytes));
    },
    onReceive: (listener) => socket.on('data', listener),
    onClose: (listener) => {
      closeListeners.push(listener);
    },
    close: () => {
      socket.destroy();
    },
  };
}

/** Serves the pad on `tcp://host:port` (port 0 = a free port). Resolves once listening. */
export async function serveTcp(
  pad: VirtualPinPad,
  options: { host?: string; port?: number } = {},
): Promise<PadServer & { port: number }> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    pad.attach(socketEndpoint(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `tcp://${host}:${port}`,
    port,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** True when `socat` is on the PATH (needed by {@link servePty}). */
export { hasSocat };

/**
 * Serves the pad on a real pseudo-terminal: a TCP server plus
 * `socat -d -d pty,raw,echo=0,link=<dir>/pad,wait-slave,pty-interval=0.02 tcp:127.0.0.1:<port>`.
 * socat exits when the agent closes the pty; it is started again so the agent can reopen
 * (replug). Resolves with the pty path once the link exists.
 * @throws Error when socat is not installed (names the package to install), or when the pty
 *   does not appear within 5 s (with socat's stderr).
 */
export async function servePty(
  pad: VirtualPinPad,
  options: { dir?: string } = {},
): Promise<PadServer & { path: string }> {
  const tcp = await serveTcp(pad);
  try {
    const pty = await bridgePty({
      port: tcp.port,
      dir: options.dir,
      name: 'pad',
      device: 'the virtual PIN pad',
    });
    const stop = async (): Promise<void> => {
      await pty.stop();
      await tcp.stop();
    };
    return { url: pty.path, path: pty.path, stop };
  } catch (error) {
    await tcp.stop();
    throw error;
  }
}
