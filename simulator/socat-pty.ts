/**
 * A real pseudo-terminal in front of a simulated device's TCP server, made by socat:
 *
 * ```
 * agent ── serialport ── <dir>/<name> (pty) ══ socat ══ tcp:127.0.0.1:<port> ── simulated device
 * ```
 *
 * `socat -d -d pty,raw,echo=0,link=<dir>/<name>,wait-slave,pty-interval=0.02 tcp:127.0.0.1:<port>`:
 * `wait-slave` keeps socat from connecting before the agent opens the pty; socat exits when the
 * agent closes it, so it is started again (the agent can reopen the path: a replug).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** True when `socat` is on the PATH. */
export function hasSocat(): boolean {
  return spawnSync('which', ['socat'], { stdio: 'ignore' }).status === 0;
}

/** A pty bridged to a TCP port. */
export interface PtyBridge {
  /** The pty's stable path (`<dir>/<name>`), what the agent configures. */
  path: string;
  /** Kills socat and removes the directory if the bridge made it. */
  stop(): Promise<void>;
}

/**
 * Starts socat and resolves once the pty path exists.
 *
 * @param options.port — the TCP port on 127.0.0.1 of the simulated device.
 * @param options.dir — directory of the link; default a fresh temporary one (removed by stop()).
 * @param options.name — file name of the link, e.g. `pad`.
 * @param options.device — what is served, for the error message, e.g. `the virtual PIN pad`.
 * @throws Error when socat is not installed (names the package to install), or when the pty does
 *   not appear within 5 s (with socat's stderr).
 */
export async function bridgePty(options: {
  port: number;
  dir?: string | undefined;
  name: string;
  device: string;
}): Promise<PtyBridge> {
  if (!hasSocat())
    throw new Error(
      `socat is not installed, so ${options.device} cannot be served on a pseudo-terminal: install it (apt-get install socat, brew install socat) or use tcp://`,
    );
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'pos-pty-'));
  const path = join(dir, options.name);
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
        `tcp:127.0.0.1:${options.port}`,
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
  return { path, stop };
}
