/**
 * Start-up that does not grow with history (issue 9 §4): the agent verifies the chain only after
 * its newest verified checkpoint, then checks everything in the background and moves the
 * checkpoint forward; tampering before the checkpoint is missed by start-up and found by that
 * background pass (and by `pos-agent verify`).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { startBackgroundCheck } from '../../agent/background-check.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { freshStore, newPayment, rawConnection } from '../store-forward/helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const keysByDir = new Map<string, ReturnType<typeof generateDevelopmentKeys>['terminal']>();

async function start(dir: string): Promise<RunningAgent> {
  let keys = keysByDir.get(dir);
  if (keys === undefined) {
    keys = generateDevelopmentKeys(path.join(dir, 'keys-gen')).terminal;
    keysByDir.set(dir, keys);
  }
  const config = parseConfig({
    deviceId: 'checkpoint-lane',
    dataDir: path.join(dir, 'data'),
    keysDir: path.join(dir, 'keys'),
    // Nothing listens on either: the agent runs without its PIN pad and offline.
    pinPad: { path: 'tcp://127.0.0.1:9' },
    broker: { url: 'mqtt://127.0.0.1:9', reconnectPeriodMs: 60_000, development: true },
    api: { port: 0 },
  });
  const agent = await startAgent({
    config,
    keys,
    backgroundCheckDelayMs: 0,
    logger: createLogger({ level: 'silent', file: path.join(dir, 'agent.log') }),
  });
  cleanups.push(() => agent.stop());
  return agent;
}

describe('start-up from a verified checkpoint', () => {
  it('walks only what came after the checkpoint; the background pass checks everything and moves it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-checkpoint-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(path.join(dir, 'data'), { recursive: true, mode: 0o700 });
    const dbPath = path.join(dir, 'data', 'agent.db');
    const seed = PaymentStore.open({ path: dbPath });
    for (let i = 0; i < 30; i++) seed.createPayment(newPayment(`seed-${i}`));
    seed.close();

    const first = await start(dir);
    // No checkpoint yet: start-up walked the 30 events, and saved one at the head.
    expect(first.integrity.startup).toMatchObject({ from: null, walked: 30 });
    expect(await first.integrity.background.done).toMatchObject({
      chain: { ok: true, events: 30 },
      projection: { ok: true, payments: 30 },
    });
    first.store.createPayment(newPayment('after-1'));
    first.store.createPayment(newPayment('after-2'));
    await first.stop();
    cleanups.pop();

    // An edit of an early event, behind the agent's back (triggers dropped).
    const raw = rawConnection(dbPath);
    raw.exec('DROP TRIGGER events_no_update');
    raw.exec(
      `UPDATE events SET data = replace(data, '"amountMinor":1050', '"amountMinor":1') WHERE seq = 3`,
    );
    raw.close();

    const second = await start(dir);
    expect(second.integrity.startup).toMatchObject({
      from: { seq: 30 },
      walked: 2,
      chain: { ok: true },
      projection: { ok: true, payments: 2 },
    });
    const chain = (await second.integrity.background.done)?.chain;
    expect(chain?.ok).toBe(false);
    expect(chain === undefined || chain.ok ? [] : chain.problems).toEqual([
      expect.stringMatching(/^event 3 \(payment_stored of pay_.*\): stored hash differs/),
    ]);
    // A pass that failed moves no checkpoint.
    expect(second.store.integrity.lastCheckpoint()?.seq).toBe(32);
  });
});

describe('the background pass waits for an idle agent', () => {
  it('starts no page while the agent is busy, then checks everything once it is idle', async () => {
    const { store, close } = freshStore();
    cleanups.push(close);
    for (let i = 0; i < 5; i++) store.createPayment(newPayment(`idle-${i}`));
    let busyAnswers = 0;
    let pagesStartedWhileBusy = 0;
    const fullCheck = store.integrity.fullCheck.bind(store.integrity);
    store.integrity.fullCheck = () => {
      if (busyAnswers < 5) pagesStartedWhileBusy += 1;
      return fullCheck();
    };
    const check = startBackgroundCheck(store, createLogger({ level: 'silent' }), () => undefined, {
      delayMs: 0,
      busyRetryMs: 1,
      isBusy: () => ++busyAnswers <= 5,
    });
    expect(await check.done).toMatchObject({
      chain: { ok: true, events: 5 },
      projection: { ok: true, payments: 5 },
    });
    expect(busyAnswers).toBeGreaterThan(5);
    expect(pagesStartedWhileBusy).toBe(0);
  });

  it('a pass stopped before its start resolves undefined and reads nothing', async () => {
    const { store, close } = freshStore();
    cleanups.push(close);
    const check = startBackgroundCheck(store, createLogger({ level: 'silent' }), () => undefined);
    check.stop();
    expect(await check.done).toBeUndefined();
  });
});
