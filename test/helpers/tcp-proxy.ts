/**
 * A pausable TCP proxy for fault injection (issue 10): it sits between a client (the agent) and a
 * server (the broker) on loopback and can make the link fail the ways a store's network does.
 *
 * ```
 *  client ──► 127.0.0.1:proxy.port ──► upstream host:port
 *             pause():  bytes in both directions are dropped (or held), no FIN, no RST:
 *                       a silent partition, as when a switch or Wi-Fi bridge dies
 *             reset():  every connection ends with an RST, as when a router reboots
 *             resume(): bytes flow again (held bytes are delivered first, in order)
 * ```
 *
 * While paused, new connections are accepted (the kernel answers the SYN) and their bytes are
 * treated like everyone else's; the upstream connection is made only once they flow again, so a
 * partition also hides the server from new connection attempts.
 */
import { type AddressInfo, createServer, type Server, type Socket, connect } from 'node:net';

/** What {@link TcpProxy.pause} does with the bytes sent meanwhile. */
export type PauseMode = 'drop' | 'hold';

/** A running proxy. */
export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** `mqtt://127.0.0.1:PORT`, for brokers. */
  readonly url: string;
  /** True between pause() and resume(). */
  readonly paused: boolean;
  /** Connections open now (client side). */
  readonly connections: number;
  /** Connections accepted since start. */
  readonly accepted: number;
  /** Bytes dropped while paused, both directions. */
  readonly droppedBytes: number;
  /** Stops forwarding, silently: `drop` (default) discards, `hold` keeps for resume(). */
  pause(mode?: PauseMode): void;
  /** Forwards again; held bytes go first. */
  resume(): void;
  /** Ends every open connection with an RST, both sides; new connections are accepted. */
  reset(): void;
  /** Resets every connection and stops listening. */
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Bytes for the upstream side held while paused (or before upstream connected). */
  toUpstream: Buffer[];
  /** Bytes for the client held while paused. */
  toClient: Buffer[];
}

/**
 * Starts a proxy on a free loopback port forwarding to `upstream`.
 *
 * @param upstream.port — the server's port; `upstream.host` defaults to 127.0.0.1.
 * @throws Error when it cannot listen.
 */
export async function startTcpProxy(upstream: { host?: string; port: number }): Promise<TcpProxy> {
  const host = upstream.host ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  let paused = false;
  let mode: PauseMode = 'drop';
  let accepted = 0;
  let droppedBytes = 0;

  const destroyPair = (pair: Pair, rst: boolean): void => {
    pairs.delete(pair);
    for (const socket of [pair.client, pair.upstream]) {
      if (socket === undefined || socket.destroyed) continue;
      if (rst) socket.resetAndDestroy();
      else socket.destroy();
    }
  };

  const connectUpstream = (pair: Pair): void => {
    const socket = connect(upstream.port, host);
    socket.setNoDelay(true);
    pair.upstream = socket;
    socket.on('connect', () => {
      if (!paused) flush(pair);
    });
    socket.on('data', (chunk: Buffer) => {
      if (!paused) {
        pair.client.write(chunk);
      } else if (mode === 'hold') pair.toClient.push(chunk);
      else droppedBytes += chunk.length;
    });
    // The server going away ends the client's connection the same way (FIN or RST).
    socket.on('end', () => pair.client.end());
    socket.on('error', () => destroyPair(pair, true));
    socket.on('close', () => {
      if (!pair.client.destroyed) pair.client.end();
      pairs.delete(pair);
    });
  };

  const flush = (pair: Pair): void => {
    if (pair.upstream === undefined) {
      connectUpstream(pair);
      return;
    }
    if (pair.upstream.connecting) return;
    for (const chunk of pair.toUpstream.splice(0)) pair.upstream.write(chunk);
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk);
  };

  const server: Server = createServer((client) => {
    accepted += 1;
    client.setNoDelay(true);
    const pair: Pair = { client, upstream: undefined, toUpstream: [], toClient: [] };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (paused) {
        if (mode === 'hold') pair.toUpstream.push(chunk);
        else droppedBytes += chunk.length;
        return;
      }
      if (pair.upstream === undefined || pair.upstream.connecting) pair.toUpstream.push(chunk);
      else pair.upstream.write(chunk);
    });
    client.on('end', () => pair.upstream?.end());
    client.on('error', () => destroyPair(pair, true));
    client.on('close', () => {
      if (pair.upstream !== undefined && !pair.upstream.destroyed) pair.upstream.end();
      pairs.delete(pair);
    });
    if (!paused) connectUpstream(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get paused() {
      return paused;
    },
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    get droppedBytes() {
      return droppedBytes;
    },
    pause(pauseMode: PauseMode = 'drop') {
      paused = true;
      mode = pauseMode;
    },
    resume() {
      paused = false;
      for (const pair of pairs) flush(pair);
    },
    reset() {
      for (const pair of [...pairs]) destroyPair(pair, true);
    },
    async close() {
      for (const pair of [...pairs]) destroyPair(pair, true);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
