/**
 * The WAL checkpoint is maintenance's, not a payment's (issue 9): SQLite's auto-checkpoint of
 * 1000 pages made every ~37th offline payment copy and sync the pages of the payments before it
 * inside its own commit (the p99 of the store work). The store's connection checkpoints only
 * past `WAL_AUTOCHECKPOINT_PAGES`; `PaymentStore.maintenance()` checkpoints once
 * `WAL_CHECKPOINT_WRITES` commits piled up, and then starts the WAL over itself, so the next
 * payment's commit does not pay the WAL restart's header sync (a second fsync in one commit).
 */
import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WAL_CHECKPOINT_WRITES } from '../../store-forward/kernel.js';
import { freshStore, newPayment, rawConnection } from './helpers.js';

/**
 * The WAL header's checkpoint sequence number and salts (bytes 12–23, SQLite file format §4.1):
 * a WAL restart writes new ones, so they tell whether a commit started the WAL over.
 */
function walRestartMark(path: string): string {
  return readFileSync(`${path}-wal`).subarray(12, 24).toString('hex');
}

/** Frames the WAL file has room for (its size: SQLite reuses it from the start, never shrinks it). */
function walFileFrames(path: string): number {
  const size = statSync(`${path}-wal`).size;
  return size === 0 ? 0 : (size - 32) / (4096 + 24);
}

describe('WAL maintenance', () => {
  it('lets commits pass 1000 WAL pages without a checkpoint, and checkpoints in maintenance', () => {
    const fx = freshStore({ memory: true });
    try {
      expect(fx.store.maintenance()).toBe(false); // control: nothing committed yet
      let i = 0;
      while (walFileFrames(fx.path) <= 1200) {
        fx.store.createPayment(newPayment(`wal-${i++}`));
        expect(i).toBeLessThan(500);
      }
      // Past 1000 pages and no commit checkpointed: the WAL file only grew.
      expect(i).toBeGreaterThanOrEqual(WAL_CHECKPOINT_WRITES);
      expect(fx.store.maintenance()).toBe(true);
      const raw = rawConnection(fx.path);
      try {
        // Every payment frame is in the database file already and the WAL was started over: it
        // holds maintenance's one restart frame (the schema version page), nothing else.
        const [result] = raw.pragma('wal_checkpoint(PASSIVE)') as {
          busy: number;
          log: number;
          checkpointed: number;
        }[];
        expect(result?.log).toBe(1);
        expect(result?.checkpointed).toBe(result?.log);
      } finally {
        raw.close();
      }
      expect(fx.store.maintenance()).toBe(false); // nothing committed since
      for (let k = 0; k < WAL_CHECKPOINT_WRITES - 1; k++) {
        fx.store.createPayment(newPayment(`again-${k}`));
      }
      expect(fx.store.maintenance()).toBe(false);
      fx.store.createPayment(newPayment('again-last'));
      expect(fx.store.maintenance()).toBe(true);
    } finally {
      fx.close();
    }
  });
  it('starts the WAL over itself, so the first payment commit after a checkpoint syncs once', () => {
    const fx = freshStore({ memory: true });
    try {
      for (let k = 0; k < WAL_CHECKPOINT_WRITES; k++) fx.store.createPayment(newPayment(`r-${k}`));
      // Control: a checkpoint alone leaves the restart to the next commit, which writes a new
      // WAL header (and, synchronous=FULL, syncs it before its own frames).
      const raw = rawConnection(fx.path);
      try {
        raw.pragma('wal_checkpoint(PASSIVE)');
      } finally {
        raw.close();
      }
      const beforeRestart = walRestartMark(fx.path);
      fx.store.createPayment(newPayment('restarts'));
      expect(walRestartMark(fx.path)).not.toBe(beforeRestart);

      for (let k = 0; k < WAL_CHECKPOINT_WRITES; k++) fx.store.createPayment(newPayment(`s-${k}`));
      const beforeMaintenance = walRestartMark(fx.path);
      expect(fx.store.maintenance()).toBe(true);
      const restarted = walRestartMark(fx.path);
      expect(restarted).not.toBe(beforeMaintenance); // maintenance started the WAL over
      fx.store.createPayment(newPayment('after-maintenance'));
      expect(walRestartMark(fx.path)).toBe(restarted); // the payment only appended its frames
    } finally {
      fx.close();
    }
  });
  it('passes quietly when its timer fires after the store closed (close checkpointed already)', () => {
    const fx = freshStore({ memory: true });
    try {
      for (let k = 0; k < WAL_CHECKPOINT_WRITES; k++) fx.store.createPayment(newPayment(`c-${k}`));
      fx.store.close();
      expect(fx.store.maintenance()).toBe(false);
    } finally {
      fx.close();
    }
  });
});
