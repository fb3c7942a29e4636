/**
 * Storage damage found at start-up (issue 10, faults 3 and 4):
 * - a damaged WAL frame with committed payments after it: the agent refuses to start (POS230)
 *   without opening the database, and keeps a copy of the files — before, SQLite replayed the WAL
 *   up to the damaged frame, a checkpoint deleted the rest, and 10 acknowledged payments vanished;
 * - an event edited in the hash chain: `run` logged two lines and sold on; now every
 *   `POST /v1/payments` answers 503 POS231 and the files are copied aside.
 */
import Database from 'better-sqlite3';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { generateDevelopmentKeys, type TerminalKeys } from '../../agent/keys.js';
import { createLogger } from '../../agent/logger.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { checkWal } from '../../store-forward/wal-check.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { serveMock } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { newPayment } from '../store-forward/helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Setup {
  dir: string;
  dataDir: string;
  dbPath: string;
  keys: TerminalKeys;
  start(): Promise<RunningAgent>;
  log(): string;
}

async function setup(): Promise<Setup> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pos-damage-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const { terminal } = generateDevelopmentKeys(path.join(dir, 'keys'));
  const broker = await EmbeddedBroker.start();
  cleanups.push(() => broker.stop());
  const pad = new VirtualPinPad();
  const padServer = serveMock(pad, `damage-${process.pid}-${Math.random()}`);
  cleanups.push(() => padServer.stop());
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const logFile = path.join(dir, 'agent.log');
  const config = parseConfig({
    deviceId: 'damage-lane-1',
    dataDir,
    keysDir: path.join(dir, 'keys'),
    pinPad: { path: padServer.url },
    broker: { url: broker.url, reconnectPeriodMs: 100, development: true },
    api: { port: 0 },
  });
  return {
    dir,
    dataDir,
    dbPath: path.join(dataDir, 'agent.db'),
    keys: terminal,
    async start() {
      const agent = await startAgent({
        config,
        keys: terminal,
        logger: createLogger({ level: 'info', file: logFile }),
      });
      cleanups.push(() => agent.stop());
      return agent;
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
}

describe('a damaged WAL at start-up (regression: acknowledged payments vanished)', () => {
  it('refuses to start with POS230, never opens the database, and keeps a copy of the files', async () => {
    const s = await setup();
    // The payments live only in the WAL, as after a kill -9: the files are copied while open.
    const live = path.join(s.dir, 'live.db');
    const store = PaymentStore.open({ path: live });
    for (let i = 1; i <= 10; i++) store.createPayment(newPayment(`wal-key-${i}`));
    copyFileSync(live, s.dbPath);
    copyFileSync(`${live}-wal`, `${s.dbPath}-wal`);
    store.close();
    const intact = checkWal(`${s.dbPath}-wal`);
    expect(intact.condition).toBe('ok');
    // 32 bytes flipped inside the page of frame 2.
    const wal = readFileSync(`${s.dbPath}-wal`);
    const frame2Page = 32 + (24 + intact.pageSize) + 24 + 100;
    for (let i = 0; i < 32; i++) wal[frame2Page + i] = (wal[frame2Page + i] ?? 0) ^ 0x5a;
    writeFileSync(`${s.dbPath}-wal`, wal);
    expect(checkWal(`${s.dbPath}-wal`).condition).toBe('damaged');

    await expect(s.start()).rejects.toMatchObject({ code: 'POS230' });
    // Not opened: SQLite would have checkpointed the valid prefix and deleted the WAL on close.
    expect(readFileSync(`${s.dbPath}-wal`).equals(wal)).toBe(true);
    const copies = readdirSync(s.dataDir).filter((name) => name.startsWith('damaged-wal-'));
    expect(copies).toHaveLength(1);
    const copy = path.join(s.dataDir, copies[0] ?? '');
    expect(readFileSync(path.join(copy, 'agent.db-wal')).equals(wal)).toBe(true);
    expect(existsSync(path.join(copy, 'agent.db'))).toBe(true);
    expect(s.log()).toContain('POS230');
    expect(s.log()).toContain('restore the database from backup');
    // A second start (a supervisor's restart) refuses again and does not pile up copies.
    await expect(s.start()).rejects.toMatchObject({ code: 'POS230' });
    expect(readdirSync(s.dataDir).filter((name) => name.startsWith('damaged-wal-'))).toHaveLength(
      1,
    );
  });
});

describe('a failed hash-chain check at start-up (regression: the agent sold on)', () => {
  it('answers every POST /v1/payments with 503 POS231 and copies the files aside; status still answers', async () => {
    const s = await setup();
    const store = PaymentStore.open({ path: s.dbPath });
    store.createPayment(newPayment('chain-key-1', { amountMinor: 1050 }));
    store.close();
    const raw = new Database(s.dbPath);
    raw.exec('DROP TRIGGER events_no_update');
    raw.exec(
      `UPDATE events SET data = replace(data, '"amountMinor":1050', '"amountMinor":1') WHERE seq = 1`,
    );
    raw.close();

    const agent = await s.start();
    const headers = {
      authorization: `Bearer ${agent.apiToken}`,
      'content-type': 'application/json',
      'idempotency-key': 'after-tamper',
    };
    const refused = await fetch(`${agent.apiUrl}/v1/payments`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ amount: 500, currency: 'EUR' }),
    });
    expect(refused.status).toBe(503);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('POS231');
    expect(body.error.message).toContain('never delete the database');
    expect(agent.store.getPaymentByKey('after-tamper')).toBeUndefined();
    const status = await fetch(`${agent.apiUrl}/v1/status`, { headers });
    expect(status.status).toBe(200);
    expect(readdirSync(s.dataDir).some((name) => name.startsWith('damaged-chain-'))).toBe(true);
    expect(s.log()).toContain('POS231');
  });
});
