/**
 * A 3-node RabbitMQ cluster on loopback for the tests, the fleet bench and developers (issue 16), started by
 * deploy/rabbitmq-cluster.sh in a fresh temporary folder on a port range of its own.
 *
 * When Debian's rabbitmq-server is not installed, {@link rabbitmqAvailable} is false and the tests
 * `describe.skipIf(...)` with {@link RABBITMQ_SKIP_REASON} printed.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The script that starts and stops the cluster (found from the source or the built file). */
export const CLUSTER_SCRIPT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++) {
    const candidate = path.join(dir, 'deploy', 'rabbitmq-cluster.sh');
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return 'deploy/rabbitmq-cluster.sh';
})();

/** Why the RabbitMQ tests were skipped, printed by the tests. */
export const RABBITMQ_SKIP_REASON =
  'rabbitmq-server not found (/usr/lib/rabbitmq/bin/rabbitmq-server): install it ' +
  '(apt-get install rabbitmq-server; .ci/run does) to run the broker-cluster failover tests';

/** True when Debian's rabbitmq-server is installed. */
export function rabbitmqAvailable(): boolean {
  return existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server');
}

/** A running 3-node cluster. */
export interface RabbitCluster {
  /** The data folders (removed by `stop()`). */
  readonly dir: string;
  /** `mqtt://127.0.0.1:PORT` of nodes 1–3, in order. */
  readonly urls: readonly string[];
  /**
   * `mqtts://127.0.0.1:PORT` of nodes 1–3 (mutual TLS, the client certificate's CN as the
   * username); empty when the cluster was started without `tlsDir`.
   */
  readonly tlsUrls: readonly string[];
  /**
   * `amqp://cloud-core:cloud-core@127.0.0.1:PORT` of nodes 1–3 (AMQP 0-9-1, the `cloud-core`
   * user): where cloud core instances consume their quorum queue (CloudCore `amqp`, issue 16).
   */
  readonly amqpUrls: readonly string[];
  /**
   * Creates the broker user of a device that logs in by certificate (CN = `deviceId`) with the
   * topic permissions of the Mosquitto ACL: write `pos/v1/<id>/up/…` and `…/status`, read
   * `pos/v1/<id>/down/…` only (deploy/rabbitmq-cluster.sh `add-device`).
   */
  addDevice(deviceId: string): Promise<void>;
  /** SIGKILL node `n` (1–3). */
  kill(n: number): Promise<void>;
  /** Stops node `n` cleanly. */
  stopNode(n: number): Promise<void>;
  /** Starts node `n` again (it rejoins). */
  startNode(n: number): Promise<void>;
  /** The node number (1–3) of an URL of {@link urls}. */
  nodeOf(url: string): number;
  /** Stops every node and removes the folders. */
  stop(): Promise<void>;
}

/**
 * Starts the cluster (about 20 s on an idle 2-core machine, longer under load).
 *
 * @param options.portBase — first port (node N uses base+10N…base+10N+3, base+9 epmd); default
 *   a range derived from the process id in 36000–59999.
 * @param options.tlsDir — a folder with `ca.pem`, `server.pem` and `server.key`: each node also
 *   listens on mqtts:// with mutual TLS ({@link RabbitCluster.tlsUrls}); anonymous logins are
 *   refused on every listener, so the cloud core logs in as `cloud-core` (URL user info).
 * @throws Error with the script's output when a node does not start.
 */
export async function startRabbitCluster(
  options: { portBase?: number; tlsDir?: string } = {},
): Promise<RabbitCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-rmq-'));
  const portBase = options.portBase ?? 36_000 + (process.pid % 600) * 40;
  const env = {
    ...process.env,
    POS_RMQ_DIR: dir,
    POS_RMQ_PORT_BASE: String(portBase),
    ...(options.tlsDir === undefined ? {} : { POS_RMQ_TLS_DIR: options.tlsDir }),
  };
  const script = (...args: string[]): Promise<{ stdout: string }> =>
    run('bash', [CLUSTER_SCRIPT, ...args], { env, timeout: 900_000 });
  try {
    await script('start');
  } catch (error) {
    await script('stop').catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const urls = (await script('plain-urls')).stdout.trim().split(',');
  const tlsUrls =
    options.tlsDir === undefined ? [] : (await script('urls')).stdout.trim().split(',');
  const amqpUrls = (await script('amqp-urls')).stdout.trim().split(',');
  return {
    dir,
    urls,
    tlsUrls,
    amqpUrls,
    addDevice: async (deviceId) => void (await script('add-device', deviceId)),
    kill: async (n) => void (await script('kill', String(n))),
    stopNode: async (n) => void (await script('stop-node', String(n))),
    startNode: async (n) => void (await script('start-node', String(n))),
    nodeOf: (url) => urls.indexOf(url) + 1,
    async stop() {
      await script('stop').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
