/**
 * Child process of cloud-amqp.e2e.test.ts: one cloud core instance in the AMQP mode (a real
 * process, so the test can kill it with SIGKILL as a crashed cloud node). Its options come as
 * JSON in `argv[2]` (keys in base64). It says `ready` on stdout when its consumer is on, and one
 * line `batch <accepted> <duplicates>` per batch it booked. Its answers are late by `ackDelayMs`
 * (a fault switch): until then its deliveries stay unacknowledged on the queue.
 */
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { CloudCore } from '../../simulator/cloud-core.js';

/** What the test passes in `argv[2]`. */
export interface CloudAmqpChildOptions {
  url: string;
  queue: string;
  prefetch: number;
  ledgerFile: string;
  deviceId: string;
  /** Base64 of the device's Ed25519 public key, the cloud's Ed25519 and the vault's X25519 secret keys. */
  devicePublicKey: string;
  cloudSecretKey: string;
  vaultSecretKey: string;
  ackDelayMs: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as CloudAmqpChildOptions;
const key = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));
const vault = key(options.vaultSecretKey);
const core = await CloudCore.start({
  amqp: { url: options.url, queue: options.queue, prefetch: options.prefetch },
  ledgerFile: options.ledgerFile,
  signer: { secretKey: key(options.cloudSecretKey) },
  openSealed: (sealed) => openSealedCard(sealed, vault),
  devices: [{ deviceId: options.deviceId, publicKey: key(options.devicePublicKey) }],
  connectTimeoutMs: 30_000,
});
core.setFaults({ ackDelayMs: options.ackDelayMs });
core.on('batch', ({ results }) => {
  const accepted = results.filter((r) => r.status === 'accepted').length;
  const duplicates = results.filter((r) => r.status === 'duplicate').length;
  process.stdout.write(`batch ${accepted} ${duplicates}\n`);
});
process.stdout.write('ready\n');
