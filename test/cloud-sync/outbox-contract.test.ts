/** The outbox contract run against the SQLite outbox and the in-memory fake (outbox-contract.ts). */
import { outboxContract } from './outbox-contract.js';
import { MemoryOutbox, makeRecord } from './fixtures.js';
import { freshStore, newPayment } from '../store-forward/helpers.js';

outboxContract('SqliteOutbox (store-forward/outbox.ts)', (n) => {
  const fx = freshStore();
  const keys: string[] = [];
  const add = (): string => {
    const key = `contract-${keys.length + 1}`;
    fx.store.createPayment(newPayment(key));
    keys.push(key);
    return key;
  };
  for (let i = 0; i < n; i++) add();
  return { outbox: fx.store.outbox, keys: [...keys], add, close: () => fx.close() };
});

outboxContract('MemoryOutbox (test fake)', (n) => {
  const outbox = new MemoryOutbox();
  let seq = 0;
  const add = (): string => {
    const record = makeRecord(++seq);
    outbox.add(record);
    return record.key;
  };
  const keys = Array.from({ length: n }, add);
  return { outbox, keys, add, close: () => undefined };
});
