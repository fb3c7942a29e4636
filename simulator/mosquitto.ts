/**
 * Mosquitto as a child process for the tests and the bench (STYLE habit 3: a real broker, not a
 * mocked `mqtt`); test/helpers/mosquitto.ts and bench/fixtures.ts use this one starter.
 *
 * Each broker gets a temp directory with a generated config (`listener PORT 127.0.0.1`,
 * `allow_anonymous true`, `persistence false`) and its log file; `stop()` ends the process and
 * `restart()` starts it again on the same port (the persistent sessions are lost, as after a
 * real broker crash without persistence).
 *
 * When Mosquitto is not installed, {@link mosquittoAvailable} returns null and the tests
 * `describe.skipIf(...)` with {@link MOSQUITTO_SKIP_REASON} printed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.js';

/** Why Mosquitto tests were skipped, printed by the tests. */
export const MOSQUITTO_SKIP_REASON =
  'Mosquitto not found (looked for $MOSQUITTO, /usr/sbin/mosquitto, and mosquitto on PATH): ' +
  'install it (apt-get install mosquitto) to run the tests against a second real broker';

/** Path of the mosquitto binary, or null when it is not installed. */
export function mosquittoAvailable(): string | null {
  const candidates = [process.env.MOSQUITTO, '/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'];
  for (const candidate of candidates) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate;
  }
  try {
    const found = execFileSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).trim();
    return found === '' ? null : found;
  } catch {
    return null;
  }
}

/** A running (or stopped) Mosquitto. */
export interface MosquittoBroker {
  readonly port: number;
  /** `mqtt://127.0.0.1:PORT`. */
  readonly url: string;
  /** The temp directory with `mosquitto.conf` and `mosquitto.log`. */
  readonly dir: string;
  /** Kills the process (SIGTERM, then SIGKILL after 3 s) and waits for its exit. */
  stop(): Promise<void>;
  /** Starts again on the same port. */
  start(): Promise<void>;
  /** stop(), wait `downMs`, start(). */
  restart(downMs?: number): Promise<void>;
  /** stop() and delete the temp directory. */
  dispose(): Promise<void>;
  /** The broker's log so far (for failure messages). */
  log(): string;
}

/**
 * Waits until `127.0.0.1:port` accepts a connection (polled every 25 ms).
 *
 * @param log — the broker's log so far, appended to the error when given.
 * @throws Error when `child` exits first, or nothing listens within `timeoutMs`.
 */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  child: ChildProcess,
  log?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const tail = (): string => (log === undefined ? '' : `\n${log()}`);
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`mosquitto exited with code ${child.exitCode}${tail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms${tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Starts Mosquitto on a free loopback port and resolves once it accepts TCP connections.
 *
 * @param options.port — the port (default a free one); options.binary — the executable
 *   (default {@link mosquittoAvailable}).
 * @throws Error when the binary is missing or the broker does not come up within 5 s (the
 *   message includes its log).
 */
export async function startMosquitto(
  options: { port?: number; binary?: string } = {},
): Promise<MosquittoBroker> {
  const binary = options.binary ?? mosquittoAvailable();
  if (binary === null) throw new Error(MOSQUITTO_SKIP_REASON);
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  const logFile = path.join(dir, 'mosquitto.log');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      // As a store's broker should be: no Nagle delay on small messages (issue 9).
      'set_tcp_nodelay true',
      'persistence false',
      // Room for a device's whole window of batches while the cloud core catches up.
      'max_queued_messages 10000',
      'max_inflight_messages 100',
      `log_dest file ${logFile}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  const start = async (): Promise<void> => {
    if (child !== undefined && child.exitCode === null) return;
    const spawned = spawn(binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    spawned.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child = spawned;
    try {
      await waitForPort(port, 5000, spawned);
    } catch (error) {
      spawned.kill('SIGKILL');
      throw new Error(`${(error as Error).message}\n${stderr}\n${log()}`);
    }
  };
  const stop = async (): Promise<void> => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    stop,
    start,
    async restart(downMs = 0) {
      await stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
    },
    async dispose() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log,
  };
}
