/**
 * Start-up steps of the devices (agent/agent.ts runs them through agent/start-up.ts): the PIN pad,
 * the card readers, and the payment service that races them. Split from agent/start-steps.ts by
 * job (issue 15).
 */
import { CardBoundary } from '../drivers/boundary/card-boundary.js';
import { PinPad } from '../drivers/pinpad/pin-pad.js';
import { CardReader } from '../drivers/readers/card-reader.js';
import { createTransport } from '../drivers/transport/transport.js';
import { SyncWorker } from '../cloud-sync/sync-worker.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { CardInput } from './card-input.js';
import { PaymentService } from './payment-service.js';
import { type Context } from './start-steps.js';

/**
 * Step "pin-pad": a PIN pad that is absent at start-up (unplugged, ser2net not up yet) does not
 * stop the agent: the PinPad reopens it with its own backoff (0.5 s doubling to 30 s), as after a
 * disconnect, and /v1/status shows "disconnected" meanwhile (payments answer POS430).
 */
export async function startPinPad(
  { config, logger, clock }: Context,
  boundary: CardBoundary,
  reconnect?: { initialDelayMs: number; maxDelayMs: number },
) {
  const pad = PinPad.create({
    ...(reconnect === undefined ? {} : { reconnect }),
    transport: createTransport(config.pinPad.path, { baudRate: config.pinPad.baudRate }),
    boundary,
    link: {
      ackTimeoutMs: config.pinPad.ackTimeoutMs,
      interByteTimeoutMs: config.pinPad.interByteTimeoutMs,
      maxTransmissions: config.pinPad.maxTransmissions,
    },
    responseTimeoutMs: config.pinPad.responseTimeoutMs,
    clock,
  });
  pad.on('state', (state) =>
    logger.info({ device: 'pinPad', path: config.pinPad.path, state }, 'PIN pad state'),
  );
  // Open failures (POS101, each reopen while absent), bad frames (POS110), out-of-turn messages
  // (POS121): the pad recovers by itself, but a field tech needs to see them.
  pad.on('warning', (warning) =>
    logger.warn({ device: 'pinPad', path: config.pinPad.path, code: warning.code }, warning.reason),
  );
  await pad.start();
  return pad;
}

/**
 * Step "card-readers" (issue 4): a missing one does not stop the agent; it is shown in /v1/status
 * and reopened with backoff. A swipe with no payment in progress is wiped by the reader.
 */
export async function startCardReaders({ config, logger, clock }: Context, boundary: CardBoundary) {
  const cardReaders = config.cardReaders.map((r) => {
    const reader = new CardReader({
      name: r.name,
      kind: r.kind,
      transport: createTransport(r.path, { baudRate: r.baudRate }),
      boundary,
      clock,
      reconnect: { initialDelayMs: r.reconnectInitialDelayMs, maxDelayMs: r.reconnectMaxDelayMs },
    });
    reader.on('state', (state, error) =>
      logger.info(
        { device: r.name, path: r.path, state, ...(error ? { code: error.code } : {}) },
        error ? `card reader state: ${error.reason}` : 'card reader state',
      ),
    );
    reader.on('warning', (warning) =>
      logger.warn({ device: r.name, code: warning.code }, warning.reason),
    );
    return reader;
  });
  try {
    await Promise.all(cardReaders.map((reader) => reader.start()));
  } catch (error) {
    // The step's undo is registered only when it succeeds: close what this step opened.
    await Promise.all(cardReaders.map((r) => r.close()));
    throw error;
  }
  return cardReaders;
}

/** Step "payments": card input racing the PIN pad against the readers, and the payment service. */
export function createPayments(
  { config, logger, clock }: Context,
  parts: {
    store: PaymentStore;
    worker: SyncWorker;
    pinPad: () => PinPad | undefined;
    cardReaders: CardReader[];
  },
) {
  const { store, worker, pinPad } = parts;
  const cardInput = new CardInput({ pinPad, readers: parts.cardReaders, clock });
  cardInput.on('prompt', (prompt) => logger.info({ device: prompt.source }, prompt.text));
  const payments = new PaymentService({
    store,
    pinPad,
    notifySync: () => worker.notify(),
    logger,
    cardReadTimeoutSeconds: config.pinPad.cardReadTimeoutSeconds,
    online: {
      online: () => worker.online,
      authorize: (request, options) => worker.authorize(request, options),
    },
    policy: config.offline,
    authorization: config.authorization,
    now: () => clock.now(),
    cardInput,
  });
  // Late outcomes (an issuer decline of an offline approval) become prompts. Only a result with
  // the cloud's `declined` outcome can reverse a payment: reading every acknowledged payment back
  // (one read transaction each) cost about a fifth of the agent's CPU on a drain (issue 9).
  worker.on('acked', (results) => {
    const declined = results.filter((r) => r.outcome === 'declined').map((r) => r.key);
    if (declined.length > 0) payments.noteAcked(declined);
  });
  return { payments, cardInput };
}
