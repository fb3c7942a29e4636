/**
 * `pos-agent doctor` and a damaged WAL (issue 10, regression): doctor reported the database
 * "ok … 0 to forward" and, by opening and closing it, deleted the 1.36 MB WAL that held the 10
 * payments after the damaged frame. Now the WAL is checked first, the damage is a problem that
 * says how many committed transactions are affected, and the database is not opened.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { doctor } from '../../agent/commands/doctor.js';
import { generateDevelopmentKeys } from '../../agent/keys.js';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { checkWal } from '../../store-forward/wal-check.js';
import { newPayment } from '../store-forward/helpers.js';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function terminalWithWal(): { configFile: string; wal: string } {
  dir = mkdtempSync(path.join(tmpdir(), 'pos-doctor-wal-'));
  generateDevelopmentKeys(path.join(dir, 'keys'));
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const configFile = path.join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      deviceId: 'doctor-wal-lane-1',
      dataDir: 'data',
      keysDir: 'keys',
      pinPad: { path: 'tcp://127.0.0.1:9' },
      broker: { url: 'mqtt://127.0.0.1:9', development: true },
    }),
    { mode: 0o600 },
  );
  const live = path.join(dir, 'live.db');
  const store = PaymentStore.open({ path: live });
  for (let i = 1; i <= 10; i++) store.createPayment(newPayment(`doctor-wal-${i}`));
  copyFileSync(live, path.join(dataDir, 'agent.db'));
  copyFileSync(`${live}-wal`, path.join(dataDir, 'agent.db-wal'));
  store.close();
  return { configFile, wal: path.join(dataDir, 'agent.db-wal') };
}

describe('pos-agent doctor: the WAL before the database', () => {
  it('an intact WAL is ok and the database checks run', async () => {
    const { configFile } = terminalWithWal();
    const findings = await doctor(configFile, { timeoutMs: 200 });
    expect(findings.find((f) => f.check === 'wal')).toMatchObject({ level: 'ok' });
    expect(findings.some((f) => f.check === 'database')).toBe(true);
  });

  it('a damaged frame is a problem naming the committed transactions after it; the database is not opened and the WAL is kept', async () => {
    const { configFile, wal } = terminalWithWal();
    const intact = checkWal(wal);
    const bytes = readFileSync(wal);
    const offset = 32 + (24 + intact.pageSize) + 24 + 64; // inside frame 2's page
    for (let i = 0; i < 32; i++) bytes[offset + i] = (bytes[offset + i] ?? 0) ^ 0xff;
    writeFileSync(wal, bytes);
    const after = checkWal(wal);
    expect(after.condition).toBe('damaged');

    const findings = await doctor(configFile, { timeoutMs: 200 });
    const finding = findings.find((f) => f.check === 'wal');
    expect(finding?.level).toBe('problem');
    expect(finding?.message).toContain(`${after.transactionsAfterBad} committed transaction(s)`);
    expect(finding?.message).toContain('after frame 2');
    expect(finding?.fix).toContain('do not delete or move');
    expect(findings.some((f) => f.check === 'database')).toBe(false);
    expect(readFileSync(wal).equals(bytes)).toBe(true);
  });
});
