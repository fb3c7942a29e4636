/**
 * A free TCP port on loopback, for brokers started by the tests and the bench (STYLE habit 3).
 *
 * The port is found by binding port 0 and closing again; another process could take it in
 * between, which on a test machine is rare enough — callers that bind it report EADDRINUSE.
 */
import { type AddressInfo, createServer } from 'node:net';

/** Resolves a TCP port that was free on `host` (default 127.0.0.1) a moment ago. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
