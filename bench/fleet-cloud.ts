/**
 * One cloud core instance of the fleet bench (bench/fleet.ts) in a child process of its own, so
 * the cloud side does not share the fleet's event loop: on RabbitMQ it is one of the competing
 * AMQP consumers of the shared quorum queue (issue 16, simulator/cloud-amqp.ts); on the aedes
 * fallback it is an MQTT client of the cluster's nodes. The instances share the durable ledger
 * file, where the first to book a key wins it.
 *
 * Protocol: options as JSON in `argv[2]` (keys base64, the devices in a JSON file); the child
 * writes `ready` on stdout once it consumes, and on SIGTERM it stops and writes one line
 * `counters {"accepted":N,"duplicates":M}` before it exits 0.
 */
import { readFileSync } from 'node:fs';
import { CloudCore } from '../simulator/cloud-core.js';

/** What the fleet bench passes in `argv[2]`. */
export interface FleetCloudOptions {
  /** AMQP mode: the nodes' `amqp://` URLs (this instance starts on `urls[first]`) and the queue. */
  amqp?: { urls: string[]; first: number; queue: string; prefetch: number };
  /** MQTT mode (aedes fallback): the nodes' `mqtt://` URLs. */
  mqttUrls?: string[];
  /** The MQTT client id in MQTT mode. */
  clientId: string;
  /** The ledger file every instance shares. */
  ledgerFile: string;
  /** Base64 of the cloud's Ed25519 secret key (64 bytes). */
  cloudSecretKey: string;
  /** A JSON file of `[deviceId, base64 Ed25519 public key][]`. */
  devicesFile: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as FleetCloudOptions;
const key = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));
const devices = (JSON.parse(readFileSync(options.devicesFile, 'utf8')) as [string, string][]).map(
  ([deviceId, publicKey]) => ({ deviceId, publicKey: key(publicKey) }),
);
const amqp = options.amqp;
const core = await CloudCore.start({
  ...(amqp !== undefined
    ? {
        amqp: {
          url: amqp.urls[amqp.first] as string,
          urls: [...amqp.urls.slice(amqp.first), ...amqp.urls.slice(0, amqp.first)],
          queue: amqp.queue,
          prefetch: amqp.prefetch,
        },
      }
    : {
        brokerUrl: options.mqttUrls?.[0] ?? '',
        brokerUrls: options.mqttUrls ?? [],
        clientId: options.clientId,
        reconnectPeriodMs: 200,
        reconnectMaxMs: 2000,
      }),
  ledgerFile: options.ledgerFile,
  signer: { secretKey: key(options.cloudSecretKey) },
  devices,
  connectTimeoutMs: 60_000,
});
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void core.stop().then(() => {
    const c = core.counters();
    process.stdout.write(
      `counters ${JSON.stringify({ accepted: c.accepted, duplicates: c.duplicates })}\n`,
    );
    process.exit(0);
  });
});
