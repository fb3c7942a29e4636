/**
 * Serves a {@link VirtualSerialReader} on a real pseudo-terminal, as simulator/pad-server.ts
 * does for the PIN pad, so the agent's serial CardReader opens a `/dev/pts/N` with serialport
 * exactly as it would a USB-serial reader:
 *
 * ```
 *  agent ─serialport─► <dir>/reader (→ /dev/pts/N) ◄─socat─► tcp://127.0.0.1:PORT ─► VirtualSerialReader
 * ```
 *
 * socat: `pty,raw,echo=0,link=<dir>/<name>,wait-slave,pty-interval=0.02` — `wait-slave` makes
 * socat connect to the reader only once the agent opens the pty, so `reader.connected` means the
 * agent is listening. socat exits when the agent closes the pty; it is started again so the
 * agent can reopen it.
 */
import { bridgePty, hasSocat } from './socat-pty.js';
import { serveSerialReaderTcp, type VirtualSerialReader } from './virtual-serial-reader.js';

export { hasSocat };

/** A serial reader served on a pty: `path` is what to configure as the reader's path. */
export interface ReaderPtyServer {
  /** The pty symlink, e.g. `/tmp/pos-reader-x/reader`. */
  path: string;
  /** The same as `path` (the configured device URL). */
  url: string;
  /** Kills socat (waiting for it), stops the TCP side, removes an own temp dir. */
  stop(): Promise<void>;
}

/**
 * Serves the reader on a pseudo-terminal through socat.
 * @param options.dir — directory for the pty symlink (default: a fresh temp dir, removed on stop).
 * @param options.name — symlink name. @default 'reader'
 * @throws Error when socat is not installed (names the package), or when the pty does not appear
 *   within 5 s (with socat's stderr).
 */
export async function serveSerialReaderPty(
  reader: VirtualSerialReader,
  options: { dir?: string; name?: string } = {},
): Promise<ReaderPtyServer> {
  const tcp = await serveSerialReaderTcp(reader);
  const port = Number(new URL(tcp.url.replace(/^tcp:/, 'http:')).port);
  try {
    const pty = await bridgePty({
      port,
      dir: options.dir,
      name: options.name ?? 'reader',
      device: 'the virtual serial reader',
    });
    const stop = async (): Promise<void> => {
      await pty.stop();
      await tcp.stop();
    };
    return { path: pty.path, url: pty.path, stop };
  } catch (error) {
    await tcp.stop();
    throw error;
  }
}
