/**
 * Mosquitto with mutual TLS and per-device ACLs, as a child process for tests (issues 5, 11):
 * the configuration the project ships, `deploy/mosquitto/` (mosquitto.conf, devices.acl,
 * cloud.acl), with only paths, ports, logging and persistence substituted — so the tests show
 * what that file does.
 *
 * ```
 * listener A  mqtts://127.0.0.1:PORT   devices: require_certificate true,
 *                                       use_identity_as_username + use_username_as_clientid
 *                                       (user name = client id = certificate CN)
 * listener B  mqtt://127.0.0.1:PORT2   the cloud core's back-end link: user name + password
 * devices.acl pattern write/read pos/v1/%u/...   each identity only its own topics
 *             user fleet-claim → claims/+/request (write), claims/+/response (read)
 * cloud.acl   user cloud-core → pos/v1/#         the cloud core sees every device
 * ```
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';
import type { TestCa } from './certs.js';
import { waitForPort } from '../../simulator/mosquitto.js';
import { mosquittoAvailable, MOSQUITTO_SKIP_REASON } from './mosquitto.js';

/** The shipped broker configuration (deploy/mosquitto/). */
export const DEPLOY_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../deploy/mosquitto',
);

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
  const logFile = path.join(dir, 'mosquitto.log');
  const conf = path.join(dir, 'mosquitto.conf');
  const shipped = path.join(DEPLOY_DIR, 'mosquitto.conf');
  copyFileSync(path.join(DEPLOY_DIR, 'devices.acl'), path.join(dir, 'devices.acl'));
  copyFileSync(path.join(DEPLOY_DIR, 'cloud.acl'), path.join(dir, 'cloud.acl'));
  const substitutions: [RegExp, string][] = [
    // Run as root, Mosquitto would switch to the user "mosquitto", which cannot read the 0700
    // temp directory; as anyone else this line is ignored.
    [/^per_listener_settings true$/, `per_listener_settings true\nuser ${userInfo().username}`],
    [/^persistence true$/, 'persistence false'],
    [/^persistence_location .*$/, ''],
    [/^log_dest syslog$/, `log_dest file ${logFile}`],
    [/^listener 8883$/, `listener ${tlsPort} 127.0.0.1`],
    [/^cafile .*$/, `cafile ${ca.cert}`],
    [/^certfile .*$/, `certfile ${server.cert}`],
    [/^keyfile .*$/, `keyfile ${server.key}`],
    [/^acl_file .*devices\.acl$/, `acl_file ${path.join(dir, 'devices.acl')}`],
    [/^listener 8884 .*$/, `listener ${cloudPort} 127.0.0.1`],
    [/^password_file .*$/, `password_file ${passwd}`],
    [/^acl_file .*cloud\.acl$/, `acl_file ${path.join(dir, 'cloud.acl')}`],
  ];
  const used = new Set<RegExp>();
  const lines = readFileSync(shipped, 'utf8')
    .split('\n')
    .map((line) => {
      const hit = substitutions.find(([pattern]) => pattern.test(line));
      if (hit === undefined) return line;
      used.add(hit[0]);
      return line.replace(hit[0], hit[1]);
    });
  const unused = substitutions.filter(([pattern]) => !used.has(pattern));
  if (unused.length > 0)
    throw new Error(
      `${shipped} changed: no line matches ${unused.map(([p]) => String(p)).join(', ')}`,
    );
  writeFileSync(conf, lines.join('\n'));
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const child = spawn(binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const logs = (): string => `${stderr}\n${log()}`;
  try {
    await waitForPort(tlsPort, 5000, child, logs);
    await waitForPort(cloudPort, 5000, child, logs);
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
