/**
 * Mosquitto with mutual TLS and per-device ACLs, as a child process for tests (issue 5).
 *
 * ```
 * listener A  mqtts://127.0.0.1:PORT   devices: require_certificate true,
 *                                       use_identity_as_username true (user name = certificate CN)
 * listener B  mqtt://127.0.0.1:PORT2   the cloud core's back-end link: user name + password
 *                                       (the cloud core simulator has no TLS options; a real
 *                                       cloud would use its own certificate on listener A)
 * ACL         pattern readwrite pos/v1/%u/#     each identity only its own topics
 *             pattern readwrite pos/v1/claims/%c/#  registration by claim, per client id
 *             user cloud-core → pos/v1/#         the cloud core sees every device
 * ```
 * `per_listener_settings true` keeps the two authentication methods apart.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.js';
import type { TestCa } from './certs.js';
import { mosquittoAvailable, MOSQUITTO_SKIP_REASON } from './mosquitto.js';

/** A running Mosquitto with TLS. */
export interface TlsMosquitto {
  /** `mqtts://127.0.0.1:PORT` for devices. */
  readonly tlsUrl: string;
  /** `mqtt://cloud-core:PASSWORD@127.0.0.1:PORT2` for the cloud core simulator. */
  readonly cloudUrl: string;
  readonly dir: string;
  log(): string;
  dispose(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`mosquitto exited with code ${child.exitCode}\n${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Starts Mosquitto with a TLS listener whose server certificate is issued by `ca`.
 *
 * @throws Error when Mosquitto or mosquitto_passwd is missing or the broker does not start.
 */
export async function startTlsMosquitto(ca: TestCa): Promise<TlsMosquitto> {
  const binary = mosquittoAvailable();
  if (binary === null) throw new Error(MOSQUITTO_SKIP_REASON);
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-mosquitto-tls-'));
  const server = ca.issue('broker', { server: true });
  const tlsPort = await freePort();
  const cloudPort = await freePort();
  const password = `pw${process.pid}${Date.now()}`;
  const passwd = path.join(dir, 'passwd');
  writeFileSync(passwd, '');
  execFileSync('mosquitto_passwd', ['-b', passwd, 'cloud-core', password], { stdio: 'ignore' });
  const acl = path.join(dir, 'acl');
  writeFileSync(
    acl,
    [
      'pattern readwrite pos/v1/%u/#',
      // Registration by claim: the shared claim certificate, per client id (= device id).
      'pattern readwrite pos/v1/claims/%c/#',
      '',
      'user cloud-core',
      'topic readwrite pos/v1/#',
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'mosquitto.log');
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'per_listener_settings true',
      // Run as root, Mosquitto would switch to the user "mosquitto", which cannot read the 0700
      // temp directory; as anyone else this line is ignored.
      `user ${userInfo().username}`,
      'persistence false',
      'max_queued_messages 10000',
      'max_inflight_messages 100',
      `log_dest file ${logFile}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${ca.cert}`,
      `certfile ${server.cert}`,
      `keyfile ${server.key}`,
      'require_certificate true',
      'use_identity_as_username true',
      'allow_anonymous false',
      `acl_file ${acl}`,
      `listener ${cloudPort} 127.0.0.1`,
      'allow_anonymous false',
      `password_file ${passwd}`,
      `acl_file ${acl}`,
      '',
    ].join('\n'),
  );
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const child = spawn(binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const logs = (): string => `${stderr}\n${log()}`;
  try {
    await waitForPort(tlsPort, child, logs);
    await waitForPort(cloudPort, child, logs);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    cloudUrl: `mqtt://cloud-core:${password}@127.0.0.1:${cloudPort}`,
    dir,
    log,
    async dispose() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
