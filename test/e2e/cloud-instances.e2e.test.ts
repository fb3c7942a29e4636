/**
 * Issue 16, "the cloud core at fleet scale": several cloud core instances consume one MQTT shared
 * subscription (`$share/cloud/…` on Mosquitto) and book keys in one shared ledger file. The broker
 * hands each uplink to one instance; an agent's backlog is drained by both; a resend after lost
 * acks lands on whichever instance the broker picks, which finds the key booked by the other and
 * answers `duplicate`. Every key is in the ledger once and charged once.
 *
 * Skips with the reason when Mosquitto is missing (aedes has no shared subscriptions).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { serveMock, type PadServer } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import {
  MOSQUITTO_SKIP_REASON,
  mosquittoAvailable,
  startMosquitto,
  type MosquittoBroker,
} from '../helpers/mosquitto.js';
import { payOffline } from '../helpers/pay.js';
import { until } from '../helpers/wait.js';

const available = mosquittoAvailable() !== null;
if (!available) console.warn(`skipped: cloud core instances test: ${MOSQUITTO_SKIP_REASON}`);

const DEVICE = 'share-lane-1';
const PAYMENTS = 60;

describe.skipIf(!available)('two cloud core instances on one shared subscription', () => {
  let dir: string;
  let broker: MosquittoBroker;
  let cores: CloudCore[];
  let agent: RunningAgent;
  let padServer: PadServer;
  const pad = new VirtualPinPad();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-cloud-share-'));
    broker = await startMosquitto();
    const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
    const ledgerFile = path.join(dir, 'ledger.db');
    cores = [];
    for (const n of [1, 2]) {
      const core = await CloudCore.start({
        brokerUrl: broker.url,
        clientId: `cloud-core-${n}`,
        shareGroup: 'cloud',
        ledgerFile,
        signer: { secretKey: cloudKeys.cloudSecretKey },
        openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
        reconnectPeriodMs: 200,
      });
      core.registerDevice(DEVICE, terminal.devicePublicKey);
      cores.push(core);
    }
    padServer = serveMock(pad, `share-pad-${process.pid}`);
    agent = await startAgent({
      config: parseConfig({
        deviceId: DEVICE,
        dataDir: path.join(dir, 'data'),
        keysDir: path.join(dir, 'keys'),
        pinPad: { path: padServer.url },
        broker: { url: broker.url, reconnectPeriodMs: 200, development: true },
        // Small messages and a short ack timeout: many batches, and resends after lost acks.
        sync: { ackTimeoutMs: 500, maxInFlightBatches: 4, maxMessageBytes: 2048 },
        api: { port: 0 },
      }),
      keys: terminal,
      logger: createLogger({ level: 'silent', file: path.join(dir, 'agent.log') }),
    });
    await until(() => agent.worker.online, { what: 'the agent online' });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    for (const core of cores ?? []) await core.stop();
    await padServer?.stop();
    await broker?.dispose();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const pay = (key: string, amount: number): Promise<void> => payOffline(agent, pad, key, amount);

  it('both instances drain the backlog; resends after lost acks are duplicates; each key charged once', async () => {
    // The first acks of both instances are lost: the agent resends those batches, and the broker
    // may hand a resend to the other instance, which must find the key already booked.
    for (const core of cores) core.setFaults({ dropAcks: true });
    const keys: string[] = [];
    for (let n = 1; n <= PAYMENTS; n++) {
      const key = `share-${String(n).padStart(3, '0')}`;
      keys.push(key);
      await pay(key, 500 + n);
    }
    await until(() => cores.every((c) => c.counters().acksDropped > 0), {
      what: 'acks lost at both instances',
    });
    for (const core of cores) core.clearFaults();
    await until(() => agent.store.queueStats().depth === 0, {
      what: 'the backlog drained',
      timeoutMs: 60_000,
    });

    const [one, two] = cores.map((c) => c.counters());
    // The broker shared the work: each instance took some of the batches.
    expect(one?.batches).toBeGreaterThan(0);
    expect(two?.batches).toBeGreaterThan(0);
    // Each key booked by exactly one instance; every resend answered duplicate.
    expect((one?.accepted ?? 0) + (two?.accepted ?? 0)).toBe(PAYMENTS);
    expect((one?.duplicates ?? 0) + (two?.duplicates ?? 0)).toBeGreaterThan(0);
    const ledger = cores[0]?.records();
    expect(keys.filter((k) => ledger?.has(k) !== true)).toEqual([]);
    // Both instances read one ledger: the same charges, one per approved key (the simulator's
    // decision rules decline some amounts, e.g. those ending in 51).
    const approved = keys.filter((k) => ledger?.get(k)?.outcome === 'approved');
    expect(approved.length).toBeGreaterThan(PAYMENTS / 2);
    expect(cores[1]?.charges().sort()).toEqual(approved);
    expect(cores[0]?.charges().sort()).toEqual(approved);
    expect(agent.store.queueStats()).toMatchObject({ depth: 0, dead: 0 });
    console.log(
      `shared subscription: instance 1 ${one?.batches} batches / ${one?.accepted} accepted / ${one?.duplicates} duplicates; instance 2 ${two?.batches} / ${two?.accepted} / ${two?.duplicates}`,
    );
  }, 90_000);
});
