/**
 * `pos-agent sim …`: the simulator's parts as long-running commands, for developers who run the
 * agent with `pos-agent run` against them (DESIGN §7).
 */
import path from 'node:path';
import { openSealedCard } from '../drivers/boundary/sealed-card.js';
import { CloudCore } from '../simulator/cloud-core.js';
import { EmbeddedBroker } from '../simulator/broker.js';
import { servePty, serveTcp } from '../simulator/pad-server.js';
import { findTestCard, TEST_CARDS } from '../simulator/test-cards.js';
import { VirtualPinPad } from '../simulator/virtual-pin-pad.js';
import { AgentError } from '../common/agent-error.js';
import { loadCloudSideKeys } from './keys.js';
import { createLogger } from './logger.js';

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/**
 * Serves a virtual PIN pad on `tcp://host:port` (and a pty with `--pty DIR`) that answers every
 * card read with the named test card.
 *
 * @throws AgentError POS501 for an unknown card name or a malformed --listen URL.
 */
export async function simPinPad(
  options: { listen: string; pty?: string; card: string },
  out: NodeJS.WritableStream,
): Promise<void> {
  const match = /^tcp:\/\/([^:/]+):(\d{1,5})$/.exec(options.listen);
  if (match === null) {
    throw new AgentError(
      'POS501',
      `--listen must be tcp://host:port, e.g. tcp://127.0.0.1:7421, not "${options.listen}"`,
    );
  }
  if (findTestCard(options.card) === undefined) {
    throw new AgentError(
      'POS501',
      `unknown test card "${options.card}"; one of: ${TEST_CARDS.map((c) => c.name).join(', ')}`,
    );
  }
  const pad = new VirtualPinPad({ autoPresent: options.card });
  const tcp = await serveTcp(pad, { host: match[1] as string, port: Number(match[2]) });
  out.write(
    `virtual PIN pad on ${tcp.url}, presenting test card "${options.card}" to every read\n`,
  );
  const pty =
    options.pty === undefined ? undefined : await servePty(pad, { dir: path.resolve(options.pty) });
  if (pty !== undefined) out.write(`  and on the pseudo-terminal ${pty.path}\n`);
  pad.on('message', (m) => out.write(`  host → pad: message ${m.id}\n`));
  await untilSignal();
  await pty?.stop();
  await tcp.stop();
}

/** Runs the embedded aedes broker on 127.0.0.1:port until SIGINT/SIGTERM. */
export async function simBroker(
  options: { port: number },
  out: NodeJS.WritableStream,
): Promise<void> {
  const broker = await EmbeddedBroker.start({ port: options.port });
  out.write(`MQTT broker (aedes, MQTT 3.1.1) on ${broker.url}\n`);
  await untilSignal();
  await broker.stop();
}

/**
 * Runs the cloud core simulator with the keys `pos-agent init-dev` wrote to DIR/cloud.
 *
 * @throws AgentError POS502 when the keys cannot be read, POS301 when the broker is unreachable.
 */
export async function simCloud(
  options: { keys: string; broker: string; topicPrefix: string },
  out: NodeJS.WritableStream,
): Promise<void> {
  const keys = loadCloudSideKeys(options.keys);
  const logger = createLogger({ name: 'cloud-core-sim' });
  const core = await CloudCore.start({
    brokerUrl: options.broker,
    topicPrefix: options.topicPrefix,
    signer: { secretKey: keys.cloudSecretKey },
    openSealed: (sealed) => openSealedCard(sealed, keys.vaultSecretKey),
    logger,
    // Issue 10: the dedupe survives a restart of the simulator (DIR/cloud/ledger.db).
    ledgerFile: path.join(options.keys, 'ledger.db'),
  });
  for (const [deviceId, publicKey] of keys.devicePublicKeys)
    core.registerDevice(deviceId, publicKey);
  out.write(
    `cloud core simulator on ${options.broker}, devices: ${[...keys.devicePublicKeys.keys()].join(', ')}\n`,
  );
  core.on('batch', ({ deviceId, results }) => {
    for (const r of results)
      out.write(
        `  ${deviceId} ${r.key}: ${r.status}${r.outcome !== undefined ? ` ${r.outcome}` : ''}\n`,
      );
  });
  await untilSignal();
  await core.stop();
}
