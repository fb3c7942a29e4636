/**
 * The composition root (architecture.md §1): wires the PIN pad (drivers), the store (store-forward), the
 * MQTT sync (cloud-sync) and the local API into one running agent.
 *
 * Start-up is a list of named steps (agent/start-steps.ts, start-sync.ts, start-devices.ts and
 * start-api.ts, run by agent/start-up.ts: each logged by
 * name, the started ones undone in reverse when a later one fails), in this order, and why:
 * 1. data-dir, store, integrity, recovery — open, migrate, verify the hash chain, put `in_flight`
 *    records back to `pending` (a crash between publish and acknowledgement must resend, never
 *    lose; the cloud dedupes); retention and wal-maintenance timers.
 * 2. sync, cloud-commands, broker, sync-worker — start draining what is stored, even if the PIN
 *    pad is gone.
 * 3. pin-pad, card-readers — open; a missing device is reported in `/v1/status`, reopened by its
 *    driver with backoff, and does not stop the agent (payments answer POS430 meanwhile).
 * 4. payments, api — last, so the POS app only gets answers from a complete agent.
 */
import { type Clock, systemClock } from '../common/clock.js';
import { CardBoundary } from '../drivers/boundary/card-boundary.js';
import type { PinPad } from '../drivers/pinpad/pin-pad.js';
import type { CardReader } from '../drivers/readers/card-reader.js';
import { keyId } from '../cloud-sync/envelope.js';
import type { SyncWorker } from '../cloud-sync/sync-worker.js';
import type { StartupCheck } from '../store-forward/integrity.js';
import type { PaymentStore } from '../store-forward/payment-store.js';
import type { AgentStatus } from './api.js';
import type { BackgroundCheck } from './background-check.js';
import type { CardInput } from './card-input.js';
import { diagnostics, type CloudCommands } from './cloud-commands.js';
import type { AgentConfig } from './config.js';
import type { TerminalKeys } from './keys.js';
import type { Logger } from './logger.js';
import type { PaymentService } from './payment-service.js';
import type { Reconciliation } from './reconciliation.js';
import { agentStatus, startApi } from './start-api.js';
import { createPayments, startCardReaders, startPinPad } from './start-devices.js';
import {
  checkIntegrity,
  openStore,
  prepareDataDir,
  recoverInterrupted,
  startFullCheck,
  startRetentionStep,
  startWalMaintenance,
  type Context,
} from './start-steps.js';
import { createCloudCommands, createSync, startReconciliationStep } from './start-sync.js';
import { StartUp, type StepTiming } from './start-up.js';

/** A running agent. */
export interface RunningAgent {
  /** Base URL of the local API, e.g. `http://127.0.0.1:7420`. */
  apiUrl: string;
  /** The bearer token of the local API. */
  apiToken: string;
  store: PaymentStore;
  payments: PaymentService;
  worker: SyncWorker;
  /** The configured card readers (issue 4), each reopening itself after an unplug. */
  cardReaders: CardReader[];
  /** Card input racing the PIN pad against the card readers (agent/card-input.ts). */
  cardInput: CardInput;
  /** Applies cloud commands and reports their results (agent/cloud-commands.ts). */
  commands: CloudCommands;
  /** Batches, the drift check and the daily close (agent/reconciliation.ts, issue 17). */
  reconciliation: Reconciliation;
  /** What `GET /v1/status` answers. */
  status(): AgentStatus;
  /**
   * The integrity checks (issue 9 §4): what start-up verified (the chain after the newest
   * checkpoint and the payments touched since), and the full background pass that follows.
   */
  integrity: { startup: StartupCheck; background: BackgroundCheck };
  /**
   * Each start-up step's wall and CPU time, in the order run (agent/start-up.ts): what the bench
   * and a field tech read to see which step grows with the stored history. Also logged once at
   * info as `agent started` → `startUpMs`, and per step at debug.
   */
  startUp: StepTiming[];
  /** Stops the API, the PIN pad, the sync and closes the database, in that order. */
  stop(): Promise<void>;
}

/** What {@link startAgent} takes. */
export interface StartAgentOptions {
  config: AgentConfig;
  keys: TerminalKeys;
  logger: Logger;
  clock?: Clock;
  /**
   * Wait after start-up before the background integrity pass begins, ms.
   * @default 5000 (`BACKGROUND_CHECK_DELAY_MS`, agent/background-check.ts); tests pass 0.
   */
  backgroundCheckDelayMs?: number;
  /**
   * The PIN pad's reopen waits while it is absent or lost, ms: the first, doubling to the
   * longest. @default { initialDelayMs: 500, maxDelayMs: 30000 } (tests make them short).
   */
  pinPadOpenRetry?: { initialDelayMs: number; maxDelayMs: number };
}

/**
 * Starts the agent: the named steps below, in order (agent/start-up.ts runs them, logs each by
 * name and undoes the started ones when a later one fails; the file comment says why this order).
 *
 * @param config — validated configuration ({@link AgentConfig}).
 * @param keys — the terminal's keys ({@link TerminalKeys}).
 * @throws AgentError POS2xx when the database cannot be opened or fails its checks,
 *   POS503 when the data directory cannot be created, the listen error (`EADDRINUSE`) when the
 *   API port is taken. Whatever was started before the failure is stopped again before it throws.
 *   A missing PIN pad or broker is not an error at start-up: both are retried and shown in the
 *   status.
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const ctx: Context = { ...options, clock: options.clock ?? systemClock };
  const { config, keys, logger } = ctx;
  const steps = new StartUp(logger);
  try {
    await steps.step('data-dir', () => prepareDataDir(ctx));
    const store = await steps.step(
      'store',
      () => openStore(ctx),
      (s) => s.close(),
    );
    const integrity = await steps.step('integrity', () => checkIntegrity(ctx, store));
    await steps.step('recovery', () => recoverInterrupted(ctx, store));
    const retention = await steps.step(
      'retention',
      () => startRetentionStep(ctx, store),
      (r) => r.stop(),
    );
    await steps.step(
      'wal-maintenance',
      () => startWalMaintenance(ctx, store),
      (m) => m.stop(),
    );
    const sync = await steps.step('sync', () => createSync(ctx, store));
    // The devices are filled in by their steps below; a cloud diagnostics command may ask for the
    // status before (the PIN pad then shows as "connecting").
    const devices: { pinPad?: PinPad; cardReaders: CardReader[] } = { cardReaders: [] };
    const reconciliation = await steps.step(
      'reconciliation',
      () => startReconciliationStep(ctx, store, sync),
      (r) => r.stop(),
    );
    const status = (): AgentStatus =>
      agentStatus(ctx, {
        store,
        sync,
        refusal: integrity.refusal(),
        reconciliation,
        ...devices,
      });
    const commands = await steps.step('cloud-commands', () =>
      createCloudCommands(ctx, sync, reconciliation, () =>
        diagnostics(status(), store.listPayments({ limit: 200 })),
      ),
    );
    await steps.step(
      'broker',
      () => sync.session.connect(),
      () => sync.session.end(),
    );
    await steps.step(
      'sync-worker',
      () => sync.worker.start(),
      () => sync.worker.stop(),
    );
    const boundary = new CardBoundary({
      tokenKey: keys.tokenKey,
      vaultPublicKey: keys.vaultPublicKey,
      allowCardholderName: config.card.allowCardholderName,
      allowFallbackSwipe: config.card.allowFallbackSwipe,
    });
    const pinPad = await steps.step(
      'pin-pad',
      () => startPinPad(ctx, boundary, options.pinPadOpenRetry),
      (pad) => pad.close().catch(() => undefined),
    );
    devices.pinPad = pinPad;
    const cardReaders = await steps.step(
      'card-readers',
      () => startCardReaders(ctx, boundary),
      (readers) => Promise.all(readers.map((r) => r.close())),
    );
    devices.cardReaders = cardReaders;
    const { payments, cardInput } = await steps.step('payments', () =>
      createPayments(ctx, {
        store,
        worker: sync.worker,
        pinPad: () => (pinPad.state === 'connected' ? pinPad : undefined),
        cardReaders,
      }),
    );
    const api = await steps.step(
      'api',
      () => startApi(ctx, { store, sync, commands, reconciliation, payments, status, integrity }),
      (a) => a.close(),
    );
    const background = await steps.step(
      'background-check',
      () =>
        startFullCheck(ctx, store, integrity, {
          delayMs: options.backgroundCheckDelayMs,
          isBusy: () => payments.busy || sync.worker.stats().inFlightBatches > 0,
        }),
      (b) => b.stop(),
    );
    const startUp = steps.timings();
    logger.info(
      {
        apiUrl: api.url,
        deviceId: config.deviceId,
        kid: keyId(keys.devicePublicKey),
        startUpMs: Math.round(startUp.reduce((sum, t) => sum + t.wallMs, 0)),
        slowestStep: [...startUp].sort((a, b) => b.wallMs - a.wallMs)[0]?.step,
      },
      'agent started',
    );

    let stopping = false;
    return {
      apiUrl: api.url,
      apiToken: keys.apiToken,
      store,
      payments,
      worker: sync.worker,
      commands,
      reconciliation,
      cardReaders,
      cardInput,
      status,
      integrity: { startup: integrity.startup, background },
      startUp,
      async stop() {
        // A second call (a signal during a stop) has nothing left to do.
        if (stopping) return;
        stopping = true;
        retention.stop();
        // The API waits for requests in flight; a POST waiting for a card would hold the stop for
        // up to cardReadTimeoutSeconds. End the card read (new payments answer POS431) and the
        // readers first, so that POST answers before the API closes: a keep-alive connection that
        // becomes idle only after close() began is not closed by it. Then every step's undo, last
        // first: API, readers, PIN pad, sync worker, broker, timers, store.
        await payments.interrupt();
        await Promise.all(cardReaders.map((r) => r.close()));
        await steps.unwind();
        logger.info('agent stopped');
      },
    };
  } catch (error) {
    await steps.unwind();
    throw error;
  }
}
