/**
 * TCP transport (architecture.md §3 layer 1): a serial device behind ser2net, or the simulator's pad
 * server. `tcp://host:port`; Nagle is disabled so single ACK bytes go out at once.
 */
import type { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { driverError } from '../errors.js';
import type { Transport } from './types.js';
import { writeThrough } from './write-through.js';

type TransportEvents = { data: [chunk: Buffer]; close: [error?: Error] };

/**
 * A {@link Transport} on `tcp://host:port`. An EOF, reset or socket error after connect is a
 * disconnect: `'close'` with `POS102`.
 */
export class TcpTransport extends EventEmitter<TransportEvents> implements Transport {
  /** The configured path, `tcp://host:port`. */
  readonly path: string;
  readonly #host: string;
  readonly #port: number;
  #socket: net.Socket | undefined;
  #closing = false;

  /** @param path — `tcp://host:port`; throws `POS103` when host or port is missing. */
  constructor(path: string) {
    super();
    this.path = path;
    let url: URL;
    try {
      url = new URL(path);
    } catch (error) {
      throw badPath(path, error);
    }
    const port = Number(url.port);
    if (url.hostname === '' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw badPath(path);
    this.#host = url.hostname.replace(/^\[|\]$/g, '');
    this.#port = port;
  }

  /** True between a successful connect and the `'close'` event. */
  get isOpen(): boolean {
    return this.#socket !== undefined;
  }

  /** Connects. Throws `POS101` naming host, port and the fix. */
  async open(): Promise<void> {
    if (this.#socket !== undefined) return;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: this.#host, port: this.#port });
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (error) => {
        s.destroy();
        reject(
          driverError(
            'POS101',
            `Cannot connect to ${this.path}: ${error.message}. Check that the device server (ser2net or the simulator) listens on ${this.#host}:${this.#port}`,
            { cause: error, details: { path: this.path } },
          ),
        );
      });
    });
    socket.setNoDelay(true);
    this.#socket = socket;
    this.#closing = false;
    let failure: Error | undefined;
    socket.on('data', (chunk: Buffer) => this.emit('data', chunk));
    socket.on('error', (error) => {
      failure = error;
    });
    socket.on('end', () => socket.end());
    socket.once('close', () => {
      this.#socket = undefined;
      if (this.#closing) this.emit('close');
      else
        this.emit(
          'close',
          driverError(
            'POS102',
            `Connection to ${this.path} closed by the device side${failure === undefined ? '' : `: ${failure.message}`}; the agent reconnects`,
            { cause: failure, details: { path: this.path } },
          ),
        );
    });
  }

  /** Writes bytes. Throws `POS102` when not connected or the socket failed. */
  async write(bytes: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (socket === undefined)
      throw driverError('POS102', `Transport ${this.path} is not open: open it before writing`);
    await writeThrough(this.path, (done) => socket.write(bytes, done));
  }

  /** Closes the socket; resolves after `'close'`. */
  async close(): Promise<void> {
    const socket = this.#socket;
    if (socket === undefined) return;
    this.#closing = true;
    await new Promise<void>((resolve) => {
      this.once('close', () => resolve());
      socket.destroy();
    });
  }
}

function badPath(path: string, cause?: unknown): Error {
  return driverError(
    'POS103',
    `Bad TCP device path "${path}": expected tcp://host:port with a port 1–65535`,
    { cause, details: { path } },
  );
}
