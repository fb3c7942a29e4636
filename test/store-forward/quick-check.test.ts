import { openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PaymentStore } from '../../store-forward/payment-store.js';
import { storeClock, newPayment, tempDir } from './helpers.js';

describe('PaymentStore.quickCheck (for pos-agent doctor)', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  it('passes on a healthy file and names the damage when a b-tree page is overwritten', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const file = join(t.dir, 'agent.db');
    let store = PaymentStore.open({ path: file, clock: storeClock() });
    for (let i = 0; i < 200; i++) store.createPayment(newPayment(`quick-check-key-${i}`));
    expect(store.quickCheck()).toEqual({ ok: true });
    store.close();

    // Overwrite the middle of the last page (a leaf of one of the tables), leaving the header
    // and the schema page intact, as a bad sector or a torn write would.
    const pageSize = readFileSync(file).readUInt16BE(16);
    const size = readFileSync(file).length;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(512, 0xa5), 0, 512, size - pageSize + 8);
    closeSync(fd);

    store = PaymentStore.open({ path: file, clock: storeClock() });
    const report = store.quickCheck();
    store.close();
    expect(report.ok).toBe(false);
    expect(report.ok === false && report.problems.length).toBeGreaterThan(0);
  });
});
