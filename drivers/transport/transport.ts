/**
 * The transport layer (architecture.md §3 layer 1): bytes in, bytes out, chosen by the configured path.
 *
 * ```
 *   '/dev/ttyUSB0', '/tmp/pad'  ──► SerialTransport  (serialport, 9600 8N1 by default)
 *   'tcp://127.0.0.1:4001'      ──► TcpTransport     (node:net; ser2net or the simulator)
 *   'mock://pad1'               ──► MockTransport    (@serialport/binding-mock; far end = MockPeer)
 *   'hid://0801:0011[/serial]'  ──► HidTransport     (node-hid HIDAsync, loaded lazily; one report per chunk)
 * ```
 *
 * Only files in `drivers/transport/` import `serialport` (architecture.md §1).
 *
 * This module is the factory: it imports the four transports; the interfaces they implement are in
 * drivers/transport/types.ts (re-exported here), so no transport imports this module back.
 */
import { driverError } from '../errors.js';
import { HidTransport } from './hid-transport.js';
import { MockTransport } from './mock-transport.js';
import { SerialTransport } from './serial-transport.js';
import { TcpTransport } from './tcp-transport.js';
import type { Transport, TransportOptions } from './types.js';

export type { ByteEndpoint, MockPeer, Transport, TransportOptions } from './types.js';
export { registerMockPeer } from './mock-transport.js';

/**
 * Creates the transport for a configured path (architecture.md §3 layer 1). Does not open it.
 *
 * - an absolute path (`/dev/ttyUSB0`, a socat pty link such as `/tmp/x/pad`) → serialport;
 * - `tcp://host:port` → a TCP socket (ser2net, the simulator's pad server);
 * - `mock://name` → an in-process @serialport/binding-mock port whose far end is the
 *   {@link MockPeer} registered under `name`;
 * - `hid://VID:PID[/serial]` → a USB HID device through node-hid (`POS105` when malformed).
 *
 * Throws `POS103` for any other path.
 */
export function createTransport(path: string, options: TransportOptions = {}): Transport {
  if (path.startsWith('/')) return new SerialTransport(path, options.baudRate ?? 9600);
  if (path.startsWith('tcp://')) return new TcpTransport(path);
  if (path.startsWith('mock://')) return new MockTransport(path);
  if (path.startsWith('hid://')) return new HidTransport(path);
  throw driverError(
    'POS103',
    `Unsupported device path "${path}": use an absolute serial path (/dev/ttyUSB0), tcp://host:port, hid://VID:PID[/serial] or mock://name`,
    { details: { path } },
  );
}
