/**
 * The interfaces of the transport layer (architecture.md §3 layer 1): what every transport
 * implements and what a simulated device sees. Apart from the factory
 * (drivers/transport/transport.ts, which re-exports them) so that the transports need not import
 * the module that creates them.
 */
import type { Buffer } from 'node:buffer';

/**
 * A byte pipe to one device.
 *
 * Ownership: the **device layer** (`PinPad`, card readers) opens and closes its transport;
 * nothing else does. A transport can be opened again after it closed (replug, reconnect).
 *
 * Events:
 * - `'data'` — a chunk of received bytes. The listener may wipe the chunk (`fill(0)`) once it has
 *   consumed it: transports never read a chunk again after emitting it.
 * - `'close'` — emitted once per successful `open()`, when the connection ends. Without an error
 *   it was a requested `close()`. With an error it is a **disconnect**: an `AgentError` `POS102`
 *   (cable pulled, USB reset, TCP reset/EOF, pty closed, mock peer unplugged) whose `cause` is
 *   the lower-level error. Every error after a successful open means "disconnected"; there is no
 *   separate `'error'` event.
 */
export interface Transport {
  /** The configured path, e.g. `/dev/ttyUSB0`, `tcp://127.0.0.1:4001`, `mock://pad1`. */
  readonly path: string;
  /** True between a successful `open()` and the `'close'` event. */
  readonly isOpen: boolean;
  /** Opens the connection. Throws `POS101` (names the path and the fix) when it cannot. */
  open(): Promise<void>;
  /** Writes bytes. Throws `POS102` when not open or when the connection broke. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the connection; resolves after `'close'` was emitted. A no-op when not open. */
  close(): Promise<void>;
  /** Received bytes. */
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  /** The connection ended; `error` (POS102) when it was not requested. */
  on(event: 'close', listener: (error?: Error) => void): this;
  /** Removes a listener added with {@link Transport.on}. */
  off(event: 'data' | 'close', listener: (...args: never[]) => void): this;
}

/**
 * What a simulated device sees of one connection from the host (the far end of a `mock://`
 * transport, a TCP client of the simulator's pad server, …).
 */
export interface ByteEndpoint {
  /** Sends bytes towards the host. Ignored after the endpoint closed. */
  send(bytes: Uint8Array): void;
  /** Registers a listener for bytes written by the host. */
  onReceive(listener: (bytes: Buffer) => void): void;
  /** Registers a listener called once when the connection ends (either side). */
  onClose(listener: () => void): void;
  /** Ends the connection from the device side: the host sees a disconnect (POS102). */
  close(): void;
}

/** A simulated device registered under a `mock://name` path (see {@link registerMockPeer}). */
export interface MockPeer {
  /** Called each time the host opens `mock://name`, with that connection's endpoint. */
  attach(endpoint: ByteEndpoint): void;
}

/** Options of {@link createTransport}. */
export interface TransportOptions {
  /** Serial line speed in baud; serial paths only. @default 9600 */
  baudRate?: number;
}
