/**
 * In-process transport for `mock://name` (architecture.md §3 layer 1, §7): a `SerialPortMock` on
 * @serialport/binding-mock, so the agent goes through the same serialport stream code as on a
 * real port, and a registered {@link MockPeer} (the simulator's virtual PIN pad) at the far end.
 *
 * ```
 *   host ── SerialPortMock.write ──► MockPortBinding.write ──► (observed) ──► peer.onReceive
 *   host ◄── 'data' ◄── SerialPortMock read ◄── MockPortBinding.emitData ◄── endpoint.send
 * ```
 *
 * binding-mock records only the last write; to see every write the transport wraps the opened
 * `MockPortBinding`'s `write` so that each buffer, once written, is handed to the peer.
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { SerialPortMock } from 'serialport';
import { driverError } from '../errors.js';
import type { ByteEndpoint, MockPeer, Transport } from './types.js';
import { writeThrough } from './write-through.js';

/** The opened binding-mock port (`MockPortBinding`), typed through serialport's own types. */
type MockPortBinding = NonNullable<SerialPortMock['port']>;

const peers = new Map<string, MockPeer>();

/**
 * Registers the simulated device answering `mock://name` (architecture.md §7). The peer's `attach` is
 * called on every `open()` of that path. Returns a function that unregisters it.
 * Registering a second peer under the same name replaces the first.
 */
export function registerMockPeer(name: string, peer: MockPeer): () => void {
  peers.set(name, peer);
  return () => {
    if (peers.get(name) === peer) peers.delete(name);
  };
}

type TransportEvents = { data: [chunk: Buffer]; close: [error?: Error] };

/** The device side of one mock connection. */
class MockEndpoint implements ByteEndpoint {
  readonly #receive: ((bytes: Buffer) => void)[] = [];
  readonly #close: (() => void)[] = [];
  readonly #binding: MockPortBinding;
  readonly #unplug: () => void;
  #closed = false;

  constructor(binding: MockPortBinding, unplug: () => void) {
    this.#binding = binding;
    this.#unplug = unplug;
  }

  send(bytes: Uint8Array): void {
    if (this.#closed || !this.#binding.isOpen) return;
    this.#binding.emitData(Buffer.from(bytes));
  }

  onReceive(listener: (bytes: Buffer) => void): void {
    this.#receive.push(listener);
  }

  onClose(listener: () => void): void {
    this.#close.push(listener);
  }

  close(): void {
    if (this.#closed) return;
    this.#unplug();
  }

  deliver(bytes: Buffer): void {
    if (this.#closed) return;
    for (const listener of this.#receive) listener(Buffer.from(bytes));
  }

  ended(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const listener of this.#close) listener();
  }
}

/**
 * A {@link Transport} on `mock://name`. `open()` throws `POS101` when no peer is registered under
 * `name`; a peer closing its endpoint is a disconnect (`'close'` with `POS102`).
 */
export class MockTransport extends EventEmitter<TransportEvents> implements Transport {
  /** The configured path, `mock://name`. */
  readonly path: string;
  readonly #name: string;
  #port: SerialPortMock | undefined;
  #disconnect: Error | undefined;

  /** @param path — `mock://name`. */
  constructor(path: string) {
    super();
    this.path = path;
    this.#name = path.slice('mock://'.length);
  }

  /** True between a successful open and the `'close'` event. */
  get isOpen(): boolean {
    return this.#port?.isOpen ?? false;
  }

  /** Opens the mock port and attaches the registered peer. Throws `POS101` without a peer. */
  async open(): Promise<void> {
    if (this.#port?.isOpen) return;
    const peer = peers.get(this.#name);
    if (peer === undefined)
      throw driverError(
        'POS101',
        `Cannot open ${this.path}: no simulated device is registered under "${this.#name}". Start one with serveMock(pad, "${this.#name}") from simulator/pad-server`,
        { details: { path: this.path } },
      );
    SerialPortMock.binding.createPort(this.path, { echo: false, record: false });
    const port = new SerialPortMock({ path: this.path, baudRate: 9600, autoOpen: false });
    await new Promise<void>((resolve, reject) => {
      port.open((error) => {
        if (error === null) resolve();
        else
          reject(
            driverError('POS101', `Cannot open ${this.path}: ${error.message}`, {
              cause: error,
              details: { path: this.path },
            }),
          );
      });
    });
    const binding = port.port;
    if (binding === undefined) throw driverError('POS101', `Cannot open ${this.path}: no port`);
    let attaching = true;
    let refused = false;
    const endpoint = new MockEndpoint(binding, () => {
      if (attaching) {
        refused = true;
        return;
      }
      this.#disconnect = driverError(
        'POS102',
        `Simulated device ${this.path} was unplugged; the agent reopens it`,
        { details: { path: this.path } },
      );
      if (port.isOpen) port.close();
    });
    const write = binding.write.bind(binding);
    binding.write = async (buffer: Buffer): Promise<void> => {
      await write(buffer);
      endpoint.deliver(buffer);
    };
    peer.attach(endpoint);
    attaching = false;
    if (refused) {
      // The device closed the connection while being attached: it is not there (unplugged).
      endpoint.ended();
      await new Promise<void>((resolve) => port.close(() => resolve()));
      throw driverError(
        'POS101',
        `Cannot open ${this.path}: the simulated device is unplugged. Plug it back in (pad.replug())`,
        { details: { path: this.path } },
      );
    }
    this.#port = port;
    this.#disconnect = undefined;
    port.on('data', (chunk: Buffer) => this.emit('data', chunk));
    port.on('error', () => undefined);
    port.once('close', () => {
      port.removeAllListeners('data');
      this.#port = undefined;
      endpoint.ended();
      const error = this.#disconnect;
      this.#disconnect = undefined;
      if (error === undefined) this.emit('close');
      else this.emit('close', error);
    });
  }

  /** Writes bytes towards the peer. Throws `POS102` when not open. */
  async write(bytes: Uint8Array): Promise<void> {
    const port = this.#port;
    if (port === undefined || !port.isOpen)
      throw driverError('POS102', `Transport ${this.path} is not open: open it before writing`);
    await writeThrough(this.path, (done) => port.write(Buffer.from(bytes), done));
  }

  /** Closes the port; the peer's endpoint sees `onClose`. */
  async close(): Promise<void> {
    const port = this.#port;
    if (port === undefined || !port.isOpen) return;
    await new Promise<void>((resolve) => {
      this.once('close', () => resolve());
      port.close();
    });
  }
}
