/**
 * Child process of the memory benchmark (architecture.md §9 target 3), run with `--expose-gc`: starts a
 * whole agent (`startAgent`: store with its start-up checks, MQTT session, sync worker, PIN pad
 * attempt, local API) on `dataDir` — empty, or holding a copied database of stored payments —
 * with the broker DOWN (nothing listens on `brokerUrl`), waits `settleMs` so the worker has
 * started and the session has failed to connect a few times, collects garbage and reports
 * `process.memoryUsage()` to the parent over IPC.
 *
 * Parent → child: {@link MemoryChildRequest}. Child → parent: {@link MemoryChildReport} or
 * `{ error }`.
 */
import nacl from 'tweetnacl';
import { randomBytes } from 'node:crypto';
import { startAgent } from '../agent/agent.js';
import { parseConfig } from '../agent/config.js';
import { createLogger } from '../agent/logger.js';
import type { StepTiming } from '../agent/start-up.js';

/** What the parent asks. */
export interface MemoryChildRequest {
  dataDir: string;
  keysDir: string;
  /** A broker URL nothing listens on. */
  brokerUrl: string;
  /** A PIN pad address nothing listens on (the agent keeps running without its pad). */
  pinPadPath: string;
  settleMs: number;
}

/** What the child reports, bytes. */
export interface MemoryChildReport {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Stored records the agent's store reports (pending + in flight). */
  depth: number;
  /** Whether the sync worker was online (must be false: the broker is down). */
  online: boolean;
  /** Milliseconds from the call of startAgent until it resolved (includes verifyChain). */
  startMs: number;
  /** Each start-up step's wall and CPU time (`RunningAgent.startUp`): which step grows. */
  steps: StepTiming[];
  /** CPU time of the whole start (user + system), ms: not inflated by other processes. */
  startCpuMs: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

process.once('message', (request: MemoryChildRequest) => {
  void (async () => {
    try {
      if (gc === undefined) throw new Error('run with --expose-gc');
      const config = parseConfig({
        deviceId: 'bench-memory',
        dataDir: request.dataDir,
        keysDir: request.keysDir,
        pinPad: { path: request.pinPadPath },
        broker: { url: request.brokerUrl, reconnectPeriodMs: 200, development: true },
        api: { port: 0 },
        log: { level: 'silent' },
      });
      const device = nacl.sign.keyPair();
      const cloud = nacl.sign.keyPair();
      const vault = nacl.box.keyPair();
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const agent = await startAgent({
        config,
        keys: {
          deviceSecretKey: device.secretKey,
          devicePublicKey: device.publicKey,
          tokenKey: new Uint8Array(randomBytes(32)),
          vaultPublicKey: vault.publicKey,
          cloudPublicKey: cloud.publicKey,
          apiToken: randomBytes(32).toString('base64url'),
        },
        logger: createLogger({ level: 'silent' }),
      });
      const startMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const startCpuMs = (cpu.user + cpu.system) / 1000;
      await new Promise((resolve) => setTimeout(resolve, request.settleMs));
      const depth = agent.store.queueStats().depth;
      const online = agent.worker.online;
      gc();
      gc();
      const usage = process.memoryUsage();
      const report: MemoryChildReport = {
        rss: usage.rss,
        heapUsed: usage.heapUsed,
        heapTotal: usage.heapTotal,
        external: usage.external,
        arrayBuffers: usage.arrayBuffers,
        depth,
        online,
        startMs,
        steps: agent.startUp,
        startCpuMs,
      };
      process.send?.(report);
      await agent.stop();
    } catch (error) {
      process.send?.({ error: error instanceof Error ? error.message : String(error) });
    }
    process.disconnect();
  })();
});
