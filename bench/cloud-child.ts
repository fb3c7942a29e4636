/**
 * Child process of the drain benchmark: the cloud core simulator in its own process (a real
 * cloud core is another machine; in the agent's process it would take CPU from the agent it is
 * measuring). Started by bench/drain.ts with IPC; talks in {@link CloudChildMessage}s.
 *
 * Parent → child: `{ start: { brokerUrl, clientId, deviceId, devicePublicKey, cloudSecretKey,
 * vaultSecretKey, openSealed, … } }` (keys base64; the fleet bench adds `devices`, `brokerUrls`,
 * `amqp` and `ledgerFile`), then `{ counters: true }`, then `{ stop: true }` (answered with the final counters). Keys travel over
 * IPC, never on the command line (where `/proc/<pid>/cmdline` would show them).
 * Child → parent: `{ started: true }`, `{ counters: CloudCoreCounters, cpuMs, loop }` (`cpuMs`:
 * this process's CPU time, user + system, since it answered `started`, ms; `loop`: its event
 * loop's busy and idle time since it started, ms), `{ error: string }`.
 */
import type { AmqpLinkCounters } from '../simulator/cloud-amqp.js';
import { openSealedCard } from '../drivers/boundary/sealed-card.js';
import { CloudCore, type CloudCoreCounters } from '../simulator/cloud-core.js';
import type { LoopTime } from './drain.js';

/** Messages between bench/drain.ts and this child. */
export type CloudChildMessage =
  | {
      start: {
        brokerUrl: string;
        clientId: string;
        deviceId: string;
        devicePublicKey: string;
        cloudSecretKey: string;
        vaultSecretKey: string;
        /** Open sealed card data with the vault key (the simulator's default behaviour). */
        openSealed: boolean;
        /** More devices to register: `[deviceId, base64 Ed25519 public key]` (the fleet). */
        devices?: [string, string][];
        /** The broker cluster's MQTT nodes (CloudCoreOptions.brokerUrls). */
        brokerUrls?: string[];
        /** AMQP mode (CloudCoreOptions.amqp): competing consumers of one quorum queue. */
        amqp?: { url: string; urls: string[]; queue: string; prefetch: number };
        /** The durable ledger file, shared by the instances (CloudCoreOptions.ledgerFile). */
        ledgerFile?: string;
      };
    }
  | { counters: true }
  | { stop: true }
  | { started: true }
  | {
      counters: CloudCoreCounters;
      cpuMs: number;
      loop: LoopTime;
      /** The AMQP link's delivery counters (competing consumers on RabbitMQ), when in that mode. */
      amqp?: AmqpLinkCounters | undefined;
      /** Why uplinks were left unsettled (CloudCore.unsettledReasons), with the final counters. */
      unsettled?: Record<string, number>;
    }
  | { error: string };

/** The final counters of a stopped child, as its parent keeps them (bench/drain.ts). */
export interface CloudChildFinal {
  counters: CloudCoreCounters;
  cpuMs: number;
  amqp?: AmqpLinkCounters | undefined;
  unsettled?: Record<string, number> | undefined;
}

const b64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
const send = (message: CloudChildMessage): void => {
  process.send?.(message);
};

let core: CloudCore | undefined;

/** This process's event loop time since it started, ms. */
function loop(): LoopTime {
  const { active, idle } = performance.eventLoopUtilization();
  return { active, idle };
}
let cpu0 = process.cpuUsage();

process.on('message', (message: CloudChildMessage) => {
  void (async () => {
    try {
      if ('start' in message) {
        const s = message.start;
        const vault = b64(s.vaultSecretKey);
        core = await CloudCore.start({
          ...(s.amqp === undefined ? { brokerUrl: s.brokerUrl } : { amqp: s.amqp }),
          ...(s.brokerUrls === undefined ? {} : { brokerUrls: s.brokerUrls }),
          ...(s.ledgerFile === undefined ? {} : { ledgerFile: s.ledgerFile }),
          clientId: s.clientId,
          signer: { secretKey: b64(s.cloudSecretKey) },
          ...(s.openSealed
            ? { openSealed: (sealed: string) => openSealedCard(sealed, vault) }
            : {}),
          // Registered before the first message is consumed: a queued backlog is not refused.
          devices: [
            { deviceId: s.deviceId, publicKey: b64(s.devicePublicKey) },
            ...(s.devices ?? []).map(([deviceId, key]) => ({ deviceId, publicKey: b64(key) })),
          ],
          connectTimeoutMs: 60_000,
        });
        cpu0 = process.cpuUsage();
        send({ started: true });
      } else if ('counters' in message && message.counters === true) {
        if (core !== undefined) {
          const cpu = process.cpuUsage(cpu0);
          send({ counters: core.counters(), cpuMs: (cpu.user + cpu.system) / 1000, loop: loop() });
        }
      } else if ('stop' in message) {
        await core?.stop();
        // The final counters, read after the stop: records handled while it closed count too.
        if (core !== undefined) {
          const cpu = process.cpuUsage(cpu0);
          send({
            counters: core.counters(),
            cpuMs: (cpu.user + cpu.system) / 1000,
            loop: loop(),
            amqp: core.amqp?.counters,
            unsettled: core.unsettledReasons(),
          });
        }
        process.disconnect();
      }
    } catch (error) {
      send({ error: error instanceof Error ? error.message : String(error) });
    }
  })();
});
