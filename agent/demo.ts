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
 * It acts as the POS app through the typed client (agent/client.ts), and takes payments with the
 * test cards — authorized online while the broker is up —, stops the
 * broker (payments are then approved offline under the offline policy, one over the cap is
 * declined locally, and one with the issuer-decline card is approved offline and reversed when
 * the issuer declines it later), starts it again, waits until the cloud core has acknowledged
 * everything, prints each payment's story with the terminal's prompts, closes the day's batch and
 * matches it with the cloud core's ledger (issue 17), and returns true only if nothing was lost or
 * left unacknowledged, the cloud core holds each key once and charges exactly the payments the
 * store took, and the closed batch matches the cloud.
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
import { PosAgentApiError, PosAgentClient } from './client.js';
import { parseConfig } from './config.js';
import { generateDevelopmentKeys } from './keys.js';
import { createLogger } from './logger.js';
import { formatAmount, outcomeText } from './texts.js';

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

/** Cards used in turn; `declined` is the issuer-decline test card (architecture.md §7). */
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
  answer: string;
  key: string;
  id: string;
  amount: number;
  currency: string;
  card: string;
  phase: 'online' | 'outage' | 'over-cap';
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
    pinPad: { path: padServer.url },
    broker: { url: broker.url, reconnectPeriodMs: 250, development: true },
    sync: { ackTimeoutMs: 2000 },
    api: { port: 0 },
    offline: {
      perTransactionLimitMinor: { EUR: 5000, USD: 5000, GBP: 5000 },
      totalLimitMinor: { EUR: 20_000, USD: 20_000, GBP: 20_000 },
      maxCount: 50,
    },
    authorization: { timeoutMs: 5000 },
  });
  const agent = await startAgent({ config, keys: terminal, logger });
  const prompts: string[] = [];
  const promptsOf = new Map<string, string[]>();
  agent.payments.on('prompt', (p: { text: string; paymentId?: string }) => {
    prompts.push(p.text);
    if (p.paymentId === undefined) return;
    promptsOf.set(p.paymentId, [...(promptsOf.get(p.paymentId) ?? []), p.text]);
  });

  out('pos-edge-agent demo: everything on the built-in simulator');
  out(`  data directory  ${dataDir}  (log: agent.log, database: agent.db)`);
  out(`  broker          aedes, MQTT 3.1.1, ${broker.url}`);
  out(
    `  cloud core      simulator: verifies signatures, opens sealed cards, dedupes by idempotency key`,
  );
  out(`  PIN pad         virtual, ${padNote}`);
  out(`  local API       ${agent.apiUrl}`);
  out();

  // The POS app's side: the typed client, checked against the same schemas as the routes.
  const client = new PosAgentClient({ baseUrl: agent.apiUrl, token: agent.apiToken });
  const pay = async (
    body: { amount: number; currency: string; reference?: string },
    key: string,
  ): Promise<
    | { status: number; payment: Awaited<ReturnType<PosAgentClient['createPayment']>>['payment'] }
    | { status: number; error: PosAgentApiError }
  > => {
    try {
      const { payment, created } = await client.createPayment(body, key);
      return { status: created ? 201 : 200, payment };
    } catch (error) {
      if (error instanceof PosAgentApiError) return { status: error.status, error };
      throw error;
    }
  };

  const taken: Taken[] = [];
  const lost: string[] = [];
  const takeOne = async (phase: Taken['phase'], forceCard?: string): Promise<void> => {
    const n = taken.length + lost.length + 1;
    const cardName = forceCard ?? (CARD_ROTATION[(n - 1) % CARD_ROTATION.length] as string);
    const currency = CURRENCIES[(n - 1) % CURRENCIES.length] as string;
    const amount = phase === 'over-cap' ? 7500 : 500 + n * 125;
    const key = `demo-${process.pid}-${n}`;
    const card = findTestCard(cardName);
    if (card === undefined) throw new Error(`unknown test card ${cardName}`);
    pad.presentCard(card, { entryMode: n % 2 === 0 ? 'S' : 'C' });
    const started = performance.now();
    const answer = await pay({ amount, currency, reference: `R-${n}` }, key);
    const answeredMs = performance.now() - started;
    if (!('payment' in answer)) {
      lost.push(key);
      out(
        `  #${n}  ${formatAmount(amount, currency)}  answer ${answer.status} ${answer.error.message}`,
      );
      return;
    }
    const json = answer.payment;
    taken.push({
      n,
      key,
      id: json.id,
      amount,
      currency,
      card: cardName,
      phase,
      answeredMs,
      httpStatus: answer.status,
      answer: json.state,
    });
    const c = json.card ?? { brand: '?', first6: '??????', last4: '????', entryMode: '?' };
    const approval = json.approval === null ? '' : ` (approval: ${json.approval})`;
    out(
      `  #${n}  ${formatAmount(amount, currency).padStart(10)}  ${c.brand.padEnd(10)} ${c.first6}******${c.last4}  ${c.entryMode.padEnd(6)}  → ${json.state}${approval}${json.declineCode === null ? '' : ` ${json.declineCode}`} in ${answeredMs.toFixed(0)} ms`,
    );
    out(`        cashier:  ${json.message}`);
    out(`        terminal: ${(promptsOf.get(json.id) ?? []).join(' › ')}`);
  };

  let ok = false;
  try {
    out(`1. The store is online: ${options.payments} payments`);
    for (let i = 0; i < options.payments; i++) await takeOne('online');
    await waitFor(() => agent.store.queueStats().depth === 0, 15_000);
    out(`   cloud core acknowledged ${cloudCore.keys().length} of ${taken.length}`);

    const retry = taken[0];
    if (retry !== undefined) {
      const again = await pay(
        { amount: retry.amount, currency: retry.currency, reference: `R-${retry.n}` },
        retry.key,
      );
      out(
        `   the POS app retries #${retry.n} with the same Idempotency-Key: HTTP ${again.status}, same payment: ${String('payment' in again && again.payment.id === retry.id)}`,
      );
      const conflict = await pay({ amount: retry.amount + 1, currency: retry.currency }, retry.key);
      out(
        `   the same key with another amount: HTTP ${conflict.status} ${'error' in conflict ? conflict.error.code : 'no error'}`,
      );
    }
    out();

    out(
      `2. The broker goes down: ${options.outagePayments} payments are approved offline by policy, the store keeps selling`,
    );
    await broker.stop();
    await waitFor(() => agent.status().link.state === 'offline', 10_000);
    for (let i = 0; i < options.outagePayments; i++) await takeOne('outage');
    out('   the issuer-decline test card, approved offline (the issuer will decline it later):');
    await takeOne('outage', 'declined');
    out('   a payment over the offline limit of 50.00 per payment is declined locally:');
    await takeOne('over-cap', 'visa');
    const exposure = agent.store.offlineExposure();
    out(
      `   offline exposure: ${Object.entries(exposure.byCurrency)
        .map(([cur, e]) => `${formatAmount(e.amountMinor, cur)} in ${e.count}`)
        .join(', ')}`,
    );
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
      () => agent.store.queueStats().depth === 0 && agent.store.offlineExposure().count === 0,
      options.drainTimeoutMs ?? 60_000,
    );
    out(
      `   ${drained ? 'drained' : 'NOT drained'} in ${(performance.now() - drainStart).toFixed(0)} ms; link ${agent.status().link.state}`,
    );
    out();

    out('4. What happened to each payment');
    for (const t of taken) {
      const payment = agent.store.getPayment(t.id);
      const card = payment?.card;
      const events = agent.store.listEvents(t.id);
      const t0 = Date.parse(events[0]?.at ?? new Date().toISOString());
      const story = events.map((e) => `${e.type} +${Date.parse(e.at) - t0} ms`).join(' → ');
      const result =
        payment?.state === 'approved'
          ? `approved ${payment.approval ?? ''}, auth ${payment.authCode ?? '-'}`
          : payment?.state === 'declined' || payment?.state === 'reversed'
            ? `${payment.state}${payment.declineCode !== undefined ? `, code ${payment.declineCode}` : ''}: ${outcomeText(payment, agent.payments.policy)}`
            : `${payment?.state ?? 'missing'}`;
      out(
        `  #${t.n} ${t.id} ${card?.brand ?? '?'} ${card?.first6 ?? ''}******${card?.last4 ?? ''} ${formatAmount(t.amount, t.currency)} [${t.phase}, answered ${t.answer}]`,
      );
      out(`      ${story}`);
      out(`      → ${result}`);
    }
    out();

    // Issue 17: the day ends with the terminal's batch closed and matched with the cloud's
    // ledger (docs/reconciliation.md).
    out('5. End of day: the batch closes and is matched with the cloud core ledger');
    const closed = agent.reconciliation.close(false);
    const matched = await waitFor(
      () => agent.store.batches.get(closed.batch.id).reconciliation !== 'awaiting_cloud',
      options.drainTimeoutMs ?? 60_000,
    );
    const batch = agent.store.batches.get(closed.batch.id);
    const money = (m: Record<string, { count: number; amountMinor: number }>): string =>
      Object.entries(m)
        .map(([cur, a]) => `${formatAmount(a.amountMinor, cur)} (${a.count})`)
        .join(', ') || 'nothing';
    out(`   batch ${batch.id}, ${batch.totals.count} payments, closed ${batch.closedAt ?? '-'}`);
    out(`   charged: ${money(batch.totals.byCurrency)}`);
    out('   by state:');
    for (const [state, m] of Object.entries(batch.totals.byState))
      out(`     ${state.replace(/_/g, ' ').padEnd(17)} ${money(m)}`);
    out('   charged by brand:');
    for (const [brand, m] of Object.entries(batch.totals.byBrand))
      out(`     ${brand.padEnd(17)} ${money(m)}`);
    out(
      `   events ${batch.firstEventSeq ?? '-'}…${batch.lastEventSeq ?? '-'}, chain head ${batch.chainHead ?? '-'}`,
    );
    const batchMatched = matched && batch.reconciliation === 'matched';
    out(
      `   the cloud core's signed totals: ${batchMatched ? 'MATCH, per currency, brand, state and payment' : `${batch.reconciliation.toUpperCase()} (${batch.openExceptions} exceptions; pos-agent batch exceptions)`}`,
    );
    out();

    const stats = agent.store.queueStats();
    const states = taken.map((t) => agent.store.getPayment(t.id)?.state);
    const approved = states.filter((s) => s === 'approved').length;
    const declined = states.filter((s) => s === 'declined').length;
    const reversed = states.filter((s) => s === 'reversed').length;
    const cloudKeys = new Set(cloudCore.keys());
    // Every payment that the cloud had to learn about reached it: all but local declines.
    const mustReach = taken.filter((t) => {
      const p = agent.store.getPayment(t.id);
      return !(p?.state === 'declined' && p.declineCode?.startsWith('offline_') === true);
    });
    const missingAtCloud = mustReach.filter((t) => !cloudKeys.has(t.key)).length;
    // The cloud charges exactly the payments the store holds as approved.
    const charged = new Set(cloudCore.charges());
    const approvedKeys = taken
      .filter((t) => agent.store.getPayment(t.id)?.state === 'approved')
      .map((t) => t.key);
    const chargesMatch =
      charged.size === approvedKeys.length && approvedKeys.every((k) => charged.has(k));
    const finalExposure = agent.store.offlineExposure();
    const chain = agent.store.verifyChain();
    const projection = agent.store.checkProjection();
    out('Summary');
    out(
      `  taken ${taken.length} (${taken.filter((t) => t.phase !== 'online').length} during the outage), approved ${approved}, declined ${declined}, reversed after a late issuer decline ${reversed}`,
    );
    out(
      `  cloud charges ${charged.size} keys, the store holds ${approvedKeys.length} approved: ${chargesMatch ? 'one charge per approved payment' : 'MISMATCH'}; offline exposure now ${finalExposure.count}`,
    );
    out(`  outbox: ${stats.acked} acknowledged, ${stats.depth} waiting, ${stats.dead} dead`);
    out(
      `  cloud core: ${cloudKeys.size} distinct idempotency keys, ${missingAtCloud} missing, ${cloudCore.counters().duplicates} duplicates answered with the original outcome`,
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
      cloudKeys.size === mustReach.length &&
      approved + declined + reversed === taken.length &&
      reversed >= 1 &&
      chargesMatch &&
      finalExposure.count === 0 &&
      chain.ok &&
      projection.ok &&
      batchMatched;
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
