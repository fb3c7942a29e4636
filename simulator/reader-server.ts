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
import type { Buffer } from 'node:buffer';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasSocat } from './pad-server.js';
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
  if (!hasSocat())
    throw new Error(
      'socat is not installed, so the virtual serial reader cannot be served on a pseudo-terminal: install it (apt-get install socat, brew install socat) or serve it on tcp://',
    );
  const tcp = await serveSerialReaderTcp(reader);
  const port = new URL(tcp.url.replace(/^tcp:/, 'http:')).port;
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'pos-reader-'));
  const path = join(dir, options.name ?? 'reader');
  let child: ChildProcess | undefined;
  let stopping = false;
  let stderr = '';
  const start = (): void => {
    const c = spawn(
      'socat',
      [
        '-d',
        '-d',
        `pty,raw,echo=0,link=${path},wait-slave,pty-interval=0.02`,
        `tcp:127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = c;
    c.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    c.once('exit', () => {
      if (child === c) child = undefined;
      if (!stopping) setTimeout(() => !stopping && start(), 50);
    });
  };
  start();
  const stop = async (): Promise<void> => {
    stopping = true;
    const c = child;
    if (c !== undefined && c.exitCode === null) {
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    }
    await tcp.stop();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  for (let waited = 0; !existsSync(path); waited += 20) {
    if (waited > 5000) {
      await stop();
      throw new Error(
        `socat did not create the pty ${path} within 5 s: ${stderr.trim() || 'no output'}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { path, url: path, stop };
}
