/**
 * The TCP reachability probe of `pos-agent doctor`: the broker check (plaintext development
 * brokers) and the devices check (`tcp://` PIN pads and readers behind ser2net or the
 * simulator) both ask "does host:port accept a connection within the timeout?".
 */
import { connect as netConnect } from 'node:net';

/**
 * Opens and at once closes a TCP connection to `host:port`.
 *
 * @param host — a name or an address; an IPv6 address with or without its URL brackets.
 * @param timeoutMs — how long to wait for the connection, ms.
 * @returns `undefined` when it connected; else the socket's error (`code` such as
 *   `ECONNREFUSED`), or an Error `no answer within <timeoutMs> ms`.
 */
export function tcpProbe(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Error | undefined> {
  return new Promise<Error | undefined>((resolve) => {
    const socket = netConnect({ host: host.replace(/^\[|\]$/g, ''), port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(new Error(`no answer within ${timeoutMs} ms`));
    });
    socket.once('error', resolve);
  });
}
