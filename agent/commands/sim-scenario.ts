/**
 * `pos-agent sim scenario FILE…`: runs scripted scenarios (simulator/scenario.ts) against a real
 * agent on the simulator, all in this process (issue 14):
 *
 * ```
 *  scenario steps ──► PIN pad (mock://, control commands) ──┐
 *                 ──► serial card reader (mock://)  ────────┤
 *                 ──► broker (aedes, loopback) stop/start   ├──► the agent (startAgent: real store
 *                 ──► cloud core (faults, decisions) ◄──────┘     in a temp dir, sync, local API)
 *  pay steps ──► POST /v1/payments over HTTP ──► compare with `expect`
 * ```
 *
 * The agent's clock is the system clock plus an offset that `clock` steps move, so deadlines can
 * be reached without waiting; timers stay real. Each scenario gets a fresh directory, database,
 * broker and cloud core, removed afterwards.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentError } from '../../common/agent-error.js';
import { systemClock, type Clock } from '../../common/clock.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { CloudCore } from '../../simulator/cloud-core.js';
import { applyCloudControl, applyPadControl, applyReaderControl } from '../../simulator/control.js';
import { FaultSpecError } from '../../simulator/faults.js';
import { serveMock } from '../../simulator/pad-server.js';
import {
  parseScenario,
  type PaymentExpectation,
  type Scenario,
  ScenarioError,
  type ScenarioStep,
} from '../../simulator/scenario.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import {
  serveSerialReaderMock,
  VirtualSerialReader,
} from '../../simulator/virtual-serial-reader.js';
import { startAgent, type RunningAgent } from '../agent.js';
import { parseConfig } from '../config.js';
import { generateDevelopmentKeys } from '../keys.js';
import { createLogger } from '../logger.js';

/** The outcome of one step. */
export interface StepResult {
  /** 1-based, as in the error messages of the schema. */
  step: number;
  /** What the step did, e.g. `pay 10.51 EUR with visa → declined 51`. */
  what: string;
  ok: boolean;
  /** Why it failed: each expectation that did not hold. */
  problems: string[];
}

/** The outcome of a scenario: passed when every step is ok (steps after a failure are not run). */
export interface ScenarioResult {
  name: string;
  passed: boolean;
  steps: StepResult[];
}

/** Options of {@link runScenario}. */
export interface RunScenarioOptions {
  /** Called after each step (the CLI prints it). */
  onStep?: (result: StepResult) => void;
  /** How long `wait` and broker steps wait at most, ms. @default 20000 */
  waitTimeoutMs?: number;
}

let run = 0;

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const ENTRY = { chip: 'C', swipe: 'S', tap: 'T' } as const;
const PIN = { ok: 'ok', timeout: 'timeout', cancel: 'canceled', bypass: 'bypassed' } as const;

/** The running pieces of one scenario. */
interface Stage {
  agent: RunningAgent;
  cloud: CloudCore;
  broker: EmbeddedBroker;
  pad: VirtualPinPad;
  reader: VirtualSerialReader | undefined;
  advance(ms: number): void;
  waitMs: number;
}

/**
 * Runs one parsed scenario to its end or its first failing step.
 * Throws only when the stage cannot be set up (e.g. the agent refuses the scenario's config:
 * AgentError POS501 listing the problems).
 */
export async function runScenario(
  scenario: Scenario,
  options: RunScenarioOptions = {},
): Promise<ScenarioResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-scenario-'));
  const cleanups: Array<() => unknown> = [() => rmSync(dir, { recursive: true, force: true })];
  const results: StepResult[] = [];
  try {
    const stage = await setUp(scenario, dir, cleanups, options.waitTimeoutMs ?? 20_000);
    for (const [i, step] of scenario.steps.entries()) {
      let result: StepResult;
      try {
        result = { step: i + 1, ...(await runStep(stage, step, i)) };
      } catch (error) {
        const message =
          error instanceof FaultSpecError || error instanceof Error ? error.message : String(error);
        result = { step: i + 1, what: Object.keys(step)[0] ?? '?', ok: false, problems: [message] };
      }
      results.push(result);
      options.onStep?.(result);
      if (!result.ok) break;
    }
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // keep cleaning up
      }
    }
  }
  return {
    name: scenario.name,
    passed: results.length === scenario.steps.length && results.every((r) => r.ok),
    steps: results,
  };
}

async function setUp(
  scenario: Scenario,
  dir: string,
  cleanups: Array<() => unknown>,
  waitMs: number,
): Promise<Stage> {
  const { terminal, cloud: cloudKeys } = generateDevelopmentKeys(path.join(dir, 'keys'));
  const broker = await EmbeddedBroker.start();
  cleanups.push(() => broker.stop());
  const cloud = await CloudCore.start({
    brokerUrl: broker.url,
    signer: { secretKey: cloudKeys.cloudSecretKey },
    openSealed: (sealed) => openSealedCard(sealed, cloudKeys.vaultSecretKey),
    reconnectPeriodMs: 100,
  });
  cleanups.push(() => cloud.stop());
  const deviceId = 'scenario-lane-1';
  cloud.registerDevice(deviceId, terminal.devicePublicKey);
  const id = `scenario-${process.pid}-${++run}`;
  const pad = new VirtualPinPad();
  const padServer = serveMock(pad, `${id}-pad`);
  cleanups.push(() => padServer.stop());
  let reader: VirtualSerialReader | undefined;
  if (scenario.agent.cardReader === true) {
    const r = new VirtualSerialReader();
    const unregister = serveSerialReaderMock(r, `${id}-reader`);
    cleanups.push(unregister);
    reader = r;
  }
  let offsetMs = 0;
  const clock: Clock = { ...systemClock, now: () => Date.now() + offsetMs };
  const config = parseConfig(
    {
      deviceId,
      dataDir: path.join(dir, 'data'),
      keysDir: path.join(dir, 'keys'),
      pinPad: { path: padServer.url },
      ...(reader === undefined
        ? {}
        : { cardReaders: [{ name: 'reader', kind: 'serial', path: `mock://${id}-reader` }] }),
      broker: { url: broker.url, reconnectPeriodMs: 100, development: true },
      sync: { ackTimeoutMs: 1000 },
      api: { port: 0 },
      authorization: {
        ...(scenario.agent.onlinePinEntryModes === undefined
          ? {}
          : { onlinePinEntryModes: scenario.agent.onlinePinEntryModes }),
        ...(scenario.agent.authorizationTimeoutMs === undefined
          ? {}
          : { timeoutMs: scenario.agent.authorizationTimeoutMs }),
      },
      ...(scenario.agent.offline === undefined ? {} : { offline: scenario.agent.offline }),
    },
    `scenario "${scenario.name}" agent section`,
  );
  const agent = await startAgent({
    config,
    keys: terminal,
    clock,
    logger: createLogger({ level: 'info', file: path.join(dir, 'agent.log') }),
  });
  cleanups.push(() => agent.stop());
  await until(
    () =>
      agent.worker.online &&
      cloud.connected &&
      (reader === undefined || reader.connected) &&
      pad.connected,
    waitMs,
    'the agent to connect to the broker, the PIN pad and the reader',
  );
  return {
    agent,
    cloud,
    broker,
    pad,
    reader,
    waitMs,
    advance: (ms) => {
      offsetMs += ms;
    },
  };
}

function money(amount: number, currency: string): string {
  return `${(amount / 100).toFixed(2)} ${currency}`;
}

async function runStep(
  stage: Stage,
  step: ScenarioStep,
  index: number,
): Promise<Omit<StepResult, 'step'>> {
  if ('pay' in step) return pay(stage, step.pay, step.expect, index);
  if ('pad' in step) {
    applyPadControl(stage.pad, step.pad);
    return { what: `pad ${JSON.stringify(step.pad)}`, ok: true, problems: [] };
  }
  if ('cloud' in step) {
    applyCloudControl(stage.cloud, step.cloud);
    return { what: `cloud ${JSON.stringify(step.cloud)}`, ok: true, problems: [] };
  }
  if ('reader' in step) {
    if (stage.reader === undefined)
      return {
        what: 'reader',
        ok: false,
        problems: ['no card reader: set agent.cardReader: true'],
      };
    applyReaderControl(stage.reader, step.reader, { card: 'visa' });
    return { what: `reader ${JSON.stringify(step.reader)}`, ok: true, problems: [] };
  }
  if ('broker' in step) {
    if (step.broker === 'stop') {
      await stage.broker.stop();
      await until(() => !stage.agent.worker.online, stage.waitMs, 'the agent to see the outage');
    } else {
      await stage.broker.start();
      await until(
        () => stage.agent.worker.online && stage.cloud.connected,
        stage.waitMs,
        'the agent and the cloud core to reconnect',
      );
    }
    return { what: `broker ${step.broker}`, ok: true, problems: [] };
  }
  if ('clock' in step) {
    stage.advance(step.clock.advanceHours * 3_600_000);
    return { what: `clock +${step.clock.advanceHours} h`, ok: true, problems: [] };
  }
  if ('wait' in step) {
    const timeoutMs = step.wait === 'synced' ? stage.waitMs : step.wait.timeoutMs;
    await until(
      () => stage.agent.status().queue.depth === 0,
      timeoutMs,
      'the outbox to drain (queue depth 0)',
    );
    return { what: 'wait until synced', ok: true, problems: [] };
  }
  const status = stage.agent.status();
  const actual: Record<string, unknown> = {
    queueDepth: status.queue.depth,
    dead: status.queue.dead,
    offlineCount: status.offline?.exposure.count ?? 0,
    deadlineWarnings: status.offline?.deadlineWarnings.length ?? 0,
    cloudCharges: stage.cloud.charges().length,
    link: status.link.state,
  };
  const problems = Object.entries(step.check)
    .filter(([key, want]) => actual[key] !== want)
    .map(
      ([key, want]) =>
        `${key}: expected ${JSON.stringify(want)}, got ${JSON.stringify(actual[key])}`,
    );
  return {
    what: `check ${Object.entries(step.check)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ')}`,
    ok: problems.length === 0,
    problems,
  };
}

async function api(
  agent: RunningAgent,
  method: string,
  route: string,
  options: { body?: unknown; key?: string } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${agent.apiUrl}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${agent.apiToken}`,
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.key === undefined ? {} : { 'idempotency-key': options.key }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: compared as empty
  }
  return { status: response.status, json };
}

async function pay(
  stage: Stage,
  step: Extract<ScenarioStep, { pay: unknown }>['pay'],
  expect: PaymentExpectation,
  index: number,
): Promise<Omit<StepResult, 'step'>> {
  const { pad, reader, agent } = stage;
  const key = step.key ?? `scenario-${Date.now().toString(36)}-${index + 1}`;
  pad.clearQueuedCards();
  pad.setPinResult(PIN[step.pin]);
  if (step.cancelAtPad) pad.injectFault({ kind: 'card-error', reason: 'canceled' });
  else if (step.swipe === undefined && step.card !== 'none')
    pad.presentCard(step.card, step.entry === undefined ? {} : { entryMode: ENTRY[step.entry] });
  let onMessage: ((m: { id: string }) => void) | undefined;
  if (step.swipe !== undefined) {
    const card = step.swipe;
    if (reader === undefined)
      return {
        what: `pay with a swipe of ${card}`,
        ok: false,
        problems: ['no card reader: set agent.cardReader: true'],
      };
    // Swipe once the agent has asked the pad for a card: the readers are armed by then.
    const swipe = (m: { id: string }): void => {
      if (m.id !== '20') return;
      pad.off('message', swipe);
      reader.swipe(card);
    };
    onMessage = swipe;
    pad.on('message', swipe);
  }
  const body = {
    amount: step.amount,
    currency: step.currency,
    ...(step.offline === undefined ? {} : { offline: step.offline }),
  };
  const answer = await api(agent, 'POST', '/v1/payments', { body, key });
  if (onMessage !== undefined) pad.off('message', onMessage);
  pad.setPinResult('ok');
  let payment = answer.json;
  const error = answer.json.error as { code?: string; details?: { reason?: string } } | undefined;
  if (error !== undefined) {
    const list = await api(agent, 'GET', `/v1/payments?idempotencyKey=${encodeURIComponent(key)}`);
    payment = ((list.json.payments as Record<string, unknown>[] | undefined) ?? [])[0] ?? {};
  }
  const card = payment.card as { brand?: string; entryMode?: string } | null | undefined;
  const actual: Record<keyof PaymentExpectation, unknown> = {
    status: answer.status,
    error: error?.code,
    state: payment.state,
    approval: payment.approval ?? null,
    declineCode: payment.declineCode ?? null,
    reason: error?.details?.reason,
    brand: card?.brand,
    entryMode: card?.entryMode,
  };
  const problems = (Object.entries(expect) as [keyof PaymentExpectation, unknown][])
    .filter(([field, want]) => want !== undefined && actual[field] !== want)
    .map(
      ([field, want]) =>
        `${field}: expected ${JSON.stringify(want)}, got ${JSON.stringify(actual[field])}${
          field !== 'error' && error !== undefined ? ` (answer ${answer.status} ${error.code})` : ''
        }`,
    );
  const how =
    step.swipe !== undefined
      ? `a swipe of ${step.swipe}`
      : step.cancelAtPad
        ? 'cancel at the pad'
        : step.card;
  const outcome =
    error !== undefined
      ? `${answer.status} ${error.code ?? ''}${error.details?.reason === undefined ? '' : ` ${error.details.reason}`}`
      : `${String(payment.state)}${payment.approval ? ` ${String(payment.approval)}` : ''}${payment.declineCode ? ` ${String(payment.declineCode)}` : ''}`;
  return {
    what: `pay ${money(step.amount, step.currency)} with ${how}${step.pin === 'ok' ? '' : `, PIN ${step.pin}`} → ${outcome}`,
    ok: problems.length === 0,
    problems,
  };
}

/**
 * Reads, checks and runs scenario files, printing one line per step; returns the exit code:
 * 0 when every scenario passed, 1 when one failed.
 * @throws AgentError POS501 when a file cannot be read or does not fit the schema (every problem
 *   listed), before anything runs.
 */
export async function simScenario(
  files: readonly string[],
  out: NodeJS.WritableStream,
): Promise<number> {
  if (files.length === 0)
    throw new AgentError(
      'POS501',
      'name at least one scenario file, e.g. pos-agent sim scenario simulator/scenarios/online-approve.yaml',
    );
  const scenarios: Scenario[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new AgentError(
        'POS501',
        `cannot read scenario ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
      );
    }
    try {
      scenarios.push(parseScenario(text, file));
    } catch (error) {
      if (error instanceof ScenarioError) throw new AgentError('POS501', error.message);
      throw error;
    }
  }
  let failed = 0;
  for (const scenario of scenarios) {
    out.write(`scenario: ${scenario.name}\n`);
    const result = await runScenario(scenario, {
      onStep: (r) => {
        out.write(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.step}. ${r.what}\n`);
        for (const p of r.problems) out.write(`         ${p}\n`);
      },
    });
    if (!result.passed) failed += 1;
    out.write(`  ${result.passed ? 'passed' : 'FAILED'}\n`);
  }
  if (scenarios.length > 1) out.write(`${scenarios.length - failed}/${scenarios.length} passed\n`);
  return failed === 0 ? 0 : 1;
}
