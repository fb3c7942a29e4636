/**
 * kill -9 in the middle of a payment, before its decision (issue 9 §2): the payment is a draft in
 * the process's memory, so the killed process leaves nothing of it in the database file or its
 * WAL — no row, no event, no card token, no sealed card data — while what was committed before
 * survives whole. Nobody was told anything about the draft (no answer, no request), so nothing is
 * lost; its idempotency key is free for the POS app's retry, and start-up recovery has nothing
 * to do for it.
 *
 * A real process killed with SIGKILL (test/store-forward/draft-child.ts, bundled with esbuild,
 * the bundler vitest itself runs on), a real SQLite file.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { sealedBlob, tempDir, tokenFor } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** Bundles the child next to node_modules, so its packages resolve as the agent's do. */
async function bundleChild(): Promise<string> {
  const { build } = await import('esbuild');
  const dir = path.join(ROOT, 'node_modules', '.cache', `pos-draft-kill-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const outfile = path.join(dir, 'draft-child.mjs');
  await build({
    entryPoints: [path.join(ROOT, 'test', 'store-forward', 'draft-child.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'silent',
  });
  return outfile;
}

/** Runs the child on `dbPath` until it says `ready <draft id>`, then kills it with SIGKILL. */
async function killMidPayment(bundle: string, dbPath: string): Promise<string> {
  const child = spawn(process.execPath, [bundle, dbPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  const draftId = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready (pay_[0-9a-f-]+)\n/.exec(out);
      if (match !== null) resolve(match[1] as string);
    });
    child.on('exit', (code) => reject(new Error(`child exited ${String(code)} early: ${err}`)));
  });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return draftId;
}

describe('kill -9 during a payment before its decision', () => {
  it('leaves nothing of the draft, keeps what was committed, and frees its key', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const dbPath = path.join(dir, 'agent.db');
    const draftId = await killMidPayment(await bundleChild(), dbPath);

    // The files as the killed process left them (WAL not checkpointed), before anything opens them.
    const bytes = Buffer.concat(
      ['', '-wal']
        .map((suffix) => `${dbPath}${suffix}`)
        .filter((file) => existsSync(file))
        .map((file) => readFileSync(file)),
    );
    // Control: the committed payment's card token and sealed data are found by the same scan.
    expect(bytes.includes(Buffer.from(tokenFor(1)))).toBe(true);
    expect(bytes.includes(Buffer.from(sealedBlob(1)))).toBe(true);
    expect(bytes.includes(Buffer.from(tokenFor(2)))).toBe(false);
    expect(bytes.includes(Buffer.from(sealedBlob(2)))).toBe(false);
    expect(bytes.includes(Buffer.from('draft-1'))).toBe(false);
    expect(bytes.includes(Buffer.from(draftId))).toBe(false);

    const store = PaymentStore.open({ path: dbPath });
    cleanups.unshift(() => store.close());
    expect(store.getPaymentByKey('kept-1')).toMatchObject({ state: 'stored', approval: 'offline' });
    expect(store.getPayment(draftId)).toBeUndefined();
    expect(store.getPaymentByKey('draft-1')).toBeUndefined();
    expect(store.recoverInterrupted()).toEqual({ recovered: [], failed: [] });
    expect(store.verifyChain()).toMatchObject({ ok: true, events: 3 });
    expect(store.checkProjection()).toMatchObject({ ok: true, payments: 1 });
    // The POS app's retry with the same key starts the payment again.
    const retry = store.startPayment({
      idempotencyKey: 'draft-1',
      amountMinor: 1002,
      currency: 'EUR',
      offlineMode: 'prefer_online',
    });
    expect(retry.created).toBe(true);
  }, 30_000);
});
