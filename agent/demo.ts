/**
 * `pos-agent demo`: the whole path on the built-in simulator, for a developer's first five
 * minutes and as the project's smoke test (README Quick start).
 *
 * ```
 * POS app (this file, over HTTP) ─▶ agent ─pty/mock─▶ virtual PIN pad
 *                                    │
 *                                    └─ SQLite ─▶ sync worker ─MQTT─▶ aedes ─▶ cloud core simulator
 * ```
 *
 * It takes payments with the test cards, stops the broker (payments taken meanwhile are stored),
 * starts it again, waits until the cloud core has acknowledged everything, prints each payment's
 * story, and returns true only if nothing was lost or left unacknowledged and the cloud core
 * holds each idempotency key exactly once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openSealedCard } from '../drivers/boundary/sealed-card.js';
import { CloudCore } from '../simulator/cloud-core.js';
import { EmbeddedBroker } from '../simulator/broker.js';
import {
  hasSocat,
  serveMock,
  servePty,
  serveTcp,
  type PadServer,
} from '../simulator/pad-server.js';
import { findTestCard } from '../simulator/test-cards.js';
import { VirtualPinPad } from '../simulator/virtual-pin-pad.js';
import { startAgent } from './agent.js';
import { parseConfig } from './config.js';
import { generateDevelopmentKeys } from './keys.js';
import { createLogger } from './logger.js';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Payments taken while the broker is up (≥ 1). */
  payments: number;
  /** Payments taken while the broker is down (≥ 1). */
  outagePayments: number;
  /** Data directory; default a fresh temporary one. */
  dataDir?: string | undefined;
  /** How the virtual PIN pad is connected; `auto` = a pty when socat is installed, else mock://. */
  transport: 'auto' | 'pty' | 'tcp' | 'mock';
  /** Where the story is printed. */
  out: NodeJS.WritableStream;
  /** Longest wait for the backlog to drain after the broker returns, ms. Default 60000. */
  drainTimeoutMs?: number;
}

/** Cards used in turn; `declined` is the issuer-decline test card (DESIGN §7). */
const CARD_ROTATION = [
  'visa',
  'mastercard',
  'amex',
  'declined',
  'discover',
  'jcb',
  'visa-2',
  'mastercard-2',
];
const CURRENCIES = ['EUR', 'USD', 'GBP'];

interface Taken {
  n: number;
  key: string;
  id: string;
  amount: number;
  currency: string;
  card: string;
  phase: 'online' | 'outage';
  answeredMs: number;
  httpStatus: number;
}

/**
 * Runs the demo.
 *
 * @returns true when every payment the API confirmed reached the cloud exactly once by effect.
 * @throws AgentError when a part cannot start (e.g. POS101 when the pty cannot be opened).
 */
export async function runDemo(options: DemoOptions): Promise<boolean> {
  const out = (line = ''): void => void options.out.write(`${line}\n`);
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'pos-agent-demo-'));
  const deviceId = 'demo-store-1-lane-1';
  const { terminal, cloud } = generateDevelopmentKeys(path.join(dataDir, 'keys'));
  const logFile = path.join(dataDir, 'agent.log');
  const logger = createLogger({ level: 'info', file: logFile });

  const broker = await EmbeddedBroker.start();
  const cloudCore = await CloudCore.start({
    brokerUrl: broker.url,
    signer: { secretKey: cloud.cloudSecretKey },
    openSealed: (sealed) => openSealedCard(sealed, cloud.vaultSecretKey),
    logger: logger.child({ component: 'cloud-core-sim' }),
  });
  cloudCore.registerDevice(deviceId, terminal.devicePublicKey);

  const pad = new VirtualPinPad();
  const transport =
    options.transport === 'auto' ? (hasSocat() ? 'pty' : 'mock') : options.transport;
  let padServer: PadServer;
  let padNote: string;
  if (transport === 'pty') {
    padServer = await servePty(pad, { dir: dataDir });
    padNote = `over a pseudo-terminal ${padServer.url} (socat)`;
  } else if (transport === 'tcp') {
    padServer = await serveTcp(pad);
    padNote = `over ${padServer.url}`;
  } else {
    padServer = serveMock(pad, 'demo-pad');
    padNote = `over ${padServer.url} (in-process; install socat for a real pseudo-terminal)`;
  }

  const config = parseConfig({
    deviceId,
    dataDir,
    keysDir: path.join(dataDir, 'keys'),
    pinPad: { path: padServer.url, ackTimeoutMs: 1000 },
    broker: { url: broker.url, reconnectPeriodMs: 250 },
    sync: { ackTimeoutMs: 2000 },
    api: { port: 0 },
  });
  const agent = await startAgent({ config, keys: terminal, logger });
  const prompts: string[] = [];
  agent.payments.on('prompt', (p: { text: string }) => prompts.push(p.text));

  out('pos-edge-agent demo: everything on the built-in simulator');
  out(`  data directory  ${dataDir}  (log: agent.log, database: agent.db)`);
  out(`  broker          aedes, MQTT 3.1.1, ${broker.url}`);
  out(
    `  cloud core      simulator: verifies signatures, opens sealed cards, dedupes by idempotency key`,
  );
  out(`  PIN pad         virtual, ${padNote}`);
  out(`  local API       ${agent.apiUrl}`);
  out();

  const api = async (method: string, route: string, body?: unknown, key?: string) => {
    const headers: Record<string, string> = { authorization: `Bearer ${agent.apiToken}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (key !== undefined) headers['idempotency-key'] = key;
    const response = await fetch(`${agent.apiUrl}${route}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };

  const taken: Taken[] = [];
  const lost: string[] = [];
  const takeOne = async (phase: Taken['phase']): Promise<void> => {
    const n = taken.length + lost.length + 1;
    const cardName = CARD_ROTATION[(n - 1) % CARD_ROTATION.length] as string;
    const currency = CURRENCIES[(n - 1) % CURRENCIES.length] as string;
    const amount = 500 + n * 125;
    const key = `demo-${process.pid}-${n}`;
    const card = findTestCard(cardName);
    if (card === undefined) throw new Error(`unknown test card ${cardName}`);
    pad.presentCard(card, { entryMode: n % 2 === 0 ? 'S' : 'C' });
    const started = performance.now();
    const { status, json } = await api(
      'POST',
      '/v1/payments',
      { amount, currency, reference: `R-${n}` },
      key,
    );
    const answeredMs = performance.now() - started;
    if (status !== 201) {
      lost.push(key);
      out(
        `  #${n}  ${currency} ${(amount / 100).toFixed(2)}  answer ${status} ${JSON.stringify(json)}`,
      );
      return;
    }
    taken.push({
      n,
      key,
      id: String(json.id),
      amount,
      currency,
      card: cardName,
      phase,
      answeredMs,
      httpStatus: status,
    });
    const c = json.card as { brand: string; first6: string; last4: string; entryMode: string };
    out(
      `  #${n}  ${currency} ${(amount / 100).toFixed(2).padStart(6)}  ${c.brand.padEnd(10)} ${c.first6}******${c.last4}  ${c.entryMode.padEnd(6)}  → ${String(json.state)} in ${answeredMs.toFixed(0)} ms`,
    );
  };

  let ok = false;
  try {
    out(`1. The store is online: ${options.payments} payments`);
    for (let i = 0; i < options.payments; i++) await takeOne('online');
    await waitFor(() => agent.store.queueStats().depth === 0, 15_000);
    out(`   cloud core acknowledged ${cloudCore.keys().length} of ${taken.length}`);

    const retry = taken[0];
    if (retry !== undefined) {
      const again = await api(
        'POST',
        '/v1/payments',
        { amount: retry.amount, currency: retry.currency, reference: `R-${retry.n}` },
        retry.key,
      );
      out(
        `   the POS app retries #${retry.n} with the same Idempotency-Key: HTTP ${again.status}, same payment: ${String(again.json.id === retry.id)}`,
      );
      const conflict = await api(
        'POST',
        '/v1/payments',
        { amount: retry.amount + 1, currency: retry.currency },
        retry.key,
      );
      out(
        `   the same key with another amount: HTTP ${conflict.status} ${(conflict.json.error as { code: string }).code}`,
      );
    }
    out();

    out(
      `2. The broker goes down: ${options.outagePayments} payments are stored, the store keeps selling`,
    );
    await broker.stop();
    await waitFor(() => agent.status().link.state === 'offline', 10_000);
    for (let i = 0; i < options.outagePayments; i++) await takeOne('outage');
    const during = agent.status();
    out(
      `   link ${during.link.state}; stored and waiting: ${during.queue.depth}; oldest since ${during.queue.oldestAt ?? '-'}`,
    );
    await sleep(1500);
    out();

    out('3. The broker is back: the backlog is forwarded');
    const drainStart = performance.now();
    await broker.start();
    const drained = await waitFor(
      () => agent.store.queueStats().depth === 0 && cloudCore.keys().length >= taken.length,
      options.drainTimeoutMs ?? 60_000,
    );
    out(
      `   ${drained ? 'drained' : 'NOT drained'} in ${(performance.now() - drainStart).toFixed(0)} ms; link ${agent.status().link.state}`,
    );
    out();

    out('4. What happened to each payment');
    for (const t of taken) {
      const payment = agent.store.getPayment(t.id);
      const events = agent.store.listEvents(t.id);
      const t0 = Date.parse(events[0]?.at ?? new Date().toISOString());
      const story = events.map((e) => `${e.type} +${Date.parse(e.at) - t0} ms`).join(' → ');
      const result =
        payment?.state === 'approved'
          ? `approved, auth ${payment.authCode ?? '-'}`
          : payment?.state === 'declined'
            ? `declined, code ${payment.declineCode ?? '-'}${payment.reason !== undefined ? ` (${payment.reason})` : ''}`
            : `${payment?.state ?? 'missing'}`;
      out(
        `  #${t.n} ${t.id} ${payment?.card.brand ?? '?'} ${payment?.card.first6 ?? ''}******${payment?.card.last4 ?? ''} ${t.currency} ${(t.amount / 100).toFixed(2)} [${t.phase}]`,
      );
      out(`      ${story}`);
      out(`      → ${result}`);
    }
    out();

    const stats = agent.store.queueStats();
    const states = taken.map((t) => agent.store.getPayment(t.id)?.state);
    const approved = states.filter((s) => s === 'approved').length;
    const declined = states.filter((s) => s === 'declined').length;
    const cloudKeys = new Set(cloudCore.keys());
    const missingAtCloud = taken.filter((t) => !cloudKeys.has(t.key)).length;
    const chain = agent.store.verifyChain();
    const projection = agent.store.checkProjection();
    out('Summary');
    out(
      `  taken ${taken.length} (${taken.filter((t) => t.phase === 'outage').length} during the outage), approved ${approved}, declined ${declined}`,
    );
    out(`  outbox: ${stats.acked} acknowledged, ${stats.depth} waiting, ${stats.dead} dead`);
    out(
      `  cloud core: ${cloudKeys.size} distinct idempotency keys, ${missingAtCloud} missing, ${cloudCore.counters().duplicates} duplicate deliveries absorbed`,
    );
    out(
      `  event hash chain: ${chain.ok ? `verified (${chain.events} events)` : `BROKEN: ${chain.problems.join('; ')}`}; projection: ${projection.ok ? 'matches the events' : 'DIFFERS'}`,
    );
    out(`  terminal prompts shown: ${[...new Set(prompts)].join(' | ')}`);
    ok =
      lost.length === 0 &&
      stats.depth === 0 &&
      stats.dead === 0 &&
      missingAtCloud === 0 &&
      cloudKeys.size === taken.length &&
      approved + declined === taken.length &&
      chain.ok &&
      projection.ok;
    out(
      ok
        ? '  result: OK, nothing lost, nothing charged twice'
        : `  result: FAILED (lost: ${lost.length})`,
    );
  } finally {
    await agent.stop();
    await cloudCore.stop();
    await padServer.stop();
    await broker.stop();
  }
  return ok;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await sleep(50);
  }
  return condition();
}
