/**
 * Serial transport over `serialport` (architecture.md §3 layer 1): real UARTs, USB CDC-ACM devices and
 * pseudo-terminals (socat). The port is opened with `autoOpen: false` and 8N1.
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { driverError } from '../errors.js';
import type { Transport } from './types.js';
import { writeThrough } from './write-through.js';

type TransportEvents = { data: [chunk: Buffer]; close: [error?: Error] };

/**
 * A {@link Transport} on a serial device path. Contract as in `transport.ts`; an unexpected
 * serialport `close` (its `DisconnectedError`) becomes a `'close'` with `POS102`.
 */
export class SerialTransport extends EventEmitter<TransportEvents> implements Transport {
  /** The device path, e.g. `/dev/ttyUSB0`. */
  readonly path: string;
  readonly #baudRate: number;
  #port: SerialPort | undefined;
  #closing = false;

  /** @param path — absolute device path; @param baudRate — line speed in baud (e.g. 9600). */
  constructor(path: string, baudRate: number) {
    super();
    this.path = path;
    this.#baudRate = baudRate;
  }

  /** True between a successful open and the `'close'` event. */
  get isOpen(): boolean {
    return this.#port?.isOpen ?? false;
  }

  /** Opens the port. Throws `POS101` naming the path and the usual fixes. */
  async open(): Promise<void> {
    if (this.#port?.isOpen) return;
    const port = new SerialPort({ path: this.path, baudRate: this.#baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => {
      port.open((error) => {
        if (error === null) resolve();
        else
          reject(
            driverError(
              'POS101',
              `Cannot open serial port ${this.path} at ${this.#baudRate} baud: ${error.message}. ` +
                'Check the cable, that the path exists (pos-agent devices), that no other program holds it, and that the agent user may open it (dialout group)',
              { cause: error, details: { path: this.path } },
            ),
          );
      });
    });
    this.#port = port;
    this.#closing = false;
    port.on('data', (chunk: Buffer) => this.emit('data', chunk));
    // After open every serialport error is a broken connection; the 'close' below reports it.
    port.on('error', () => undefined);
    port.once('close', (error?: Error | null) => {
      port.removeAllListeners('data');
      this.#port = undefined;
      if (this.#closing || error === null || error === undefined) this.emit('close');
      else
        this.emit(
          'close',
          driverError(
            'POS102',
            `Serial port ${this.path} disconnected: ${error.message}. Check the cable and the device's power; the agent reopens it`,
            { cause: error, details: { path: this.path } },
          ),
        );
    });
  }

  /** Writes bytes; resolves when the OS took them. Throws `POS102` when not open or on failure. */
  async write(bytes: Uint8Array): Promise<void> {
    const port = this.#port;
    if (port === undefined || !port.isOpen) throw notOpen(this.path);
    await writeThrough(`serial port ${this.path}`, (done) => port.write(Buffer.from(bytes), done));
  }

  /** Closes the port; resolves after `'close'`. A no-op when not open. */
  async close(): Promise<void> {
    const port = this.#port;
    if (port === undefined || !port.isOpen) return;
    this.#closing = true;
    await new Promise<void>((resolve) => {
      this.once('close', () => resolve());
      port.close();
    });
  }
}

function notOpen(path: string): Error {
  return driverError(
    'POS102',
    `Transport ${path} is not open: open it (or wait for the reconnect) before writing`,
    {
      details: { path },
    },
  );
}
