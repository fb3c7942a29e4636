/**
 * Fixtures of the benchmark: realistic payments (a real {@link CardToken} with sealed card data
 * from the drivers' {@link CardBoundary}, fed a simulator test card), seeding of a store,
 * temp directories, free ports and a Mosquitto child process.
 *
 * bench/ is a measurement tool outside the product layers of architecture.md §1: it may import every
 * folder and, for the bare baselines, `better-sqlite3` and `mqtt` directly.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import nacl from 'tweetnacl';
import { v7 as uuidv7 } from 'uuid';
import type { CardToken } from '../drivers/boundary/card-token.js';
import type { NewPayment } from '../store-forward/model.js';
import { PaymentStore } from '../store-forward/payment-store.js';
import { approvedCardTokens } from '../simulator/card-tokens.js';
import { freePort } from '../simulator/free-port.js';
import { median } from './stats.js';
import {
  mosquittoAvailable,
  startMosquitto as startSimulatedMosquitto,
} from '../simulator/mosquitto.js';

/** Keys of one benchmark run: device signing, cloud signing, vault box, tenant token key. */
export interface BenchKeys {
  device: nacl.SignKeyPair;
  cloud: nacl.SignKeyPair;
  vault: nacl.BoxKeyPair;
  tokenKey: Uint8Array;
}

/** Fresh random keys. */
export function makeKeys(): BenchKeys {
  return {
    device: nacl.sign.keyPair(),
    cloud: nacl.sign.keyPair(),
    vault: nacl.box.keyPair(),
    tokenKey: new Uint8Array(randomBytes(32)),
  };
}

/**
 * `count` card tokens (with `sealed`) made by the drivers' card boundary from swipes of the
 * approving simulator test cards, round robin. tweetnacl's box costs about a millisecond, so
 * seeding reuses a small pool of tokens rather than sealing once per payment; every token is a
 * real one of realistic size.
 */
export function makeCardTokens(keys: BenchKeys, count: number): CardToken[] {
  return approvedCardTokens(
    { tokenKey: keys.tokenKey, vaultPublicKey: keys.vault.publicKey },
    count,
  );
}

/** The `i`-th payment of a run: a UUIDv7 idempotency key, an amount that the cloud approves. */
export function newPayment(i: number, token: CardToken): NewPayment {
  const { sealed, sred: _sred, ...card } = token;
  return {
    idempotencyKey: uuidv7(),
    amountMinor: 1000 + (i % 40), // never ends in 51 (the simulator's decline rule)
    currency: 'EUR',
    reference: `bench-${i}`,
    card,
    sealed,
  };
}

/** Bytes of the bare baseline's row blob. */
export const BARE_ROW_BYTES = 256;

/** The bare baseline of the store rows: one better-sqlite3 connection and its single-row commit. */
export interface BareBaseline {
  readonly db: Database.Database;
  /**
   * Commits one row: `key` (default a new UUIDv7) and `blob` (default {@link BARE_ROW_BYTES}
   * random bytes).
   */
  insert(key?: string, blob?: Buffer): void;
  close(): void;
}

/**
 * Opens the bare baseline every store row compares with (architecture.md §9): a SQLite file at
 * `file` in WAL mode with `synchronous=FULL`, one table `t (id, k UNIQUE, v BLOB)`, one row per
 * autocommit — the library call a payment's commit is measured against.
 *
 * @throws Error when the pragmas did not take (then the ratios would compare unlike commits).
 */
export function openBareBaseline(file: string): BareBaseline {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    const journal = db.pragma('journal_mode', { simple: true });
    const sync = db.pragma('synchronous', { simple: true });
    if (journal !== 'wal' || sync !== 2)
      throw new Error(`baseline pragmas did not take: journal_mode=${journal} synchronous=${sync}`);
    db.exec(
      'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BLOB NOT NULL) STRICT',
    );
  } catch (error) {
    db.close();
    throw error;
  }
  const statement = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
  const row = randomBytes(BARE_ROW_BYTES);
  return {
    db,
    insert: (key = uuidv7(), blob = row) => void statement.run(key, blob),
    close: () => db.close(),
  };
}

/**
 * Page numbers of every frame in the WAL file at `walPath`, in file order: the page number is at
 * byte 0 of each frame's 24-byte header, after the 32-byte WAL header (SQLite file format §4.1).
 * Right after `wal_checkpoint(TRUNCATE)` and one commit, their count is that commit's WAL frames.
 * A missing WAL counts as no frames.
 */
export function walPageNumbers(walPath: string, pageSize: number): number[] {
  if (!existsSync(walPath)) return [];
  const wal = readFileSync(walPath);
  const pages: number[] = [];
  for (let off = 32; off + 24 + pageSize <= wal.length; off += 24 + pageSize) {
    pages.push(wal.readUInt32BE(off));
  }
  return pages;
}

/**
 * WAL frames of `samples` single commits, each made by `commit` on the database at `file` after
 * the WAL was checkpointed and truncated through a second connection
 * (`wal_checkpoint(TRUNCATE)`), so that what the WAL holds after is that commit alone.
 *
 * @returns one frame count per sample, in order.
 * @throws SqliteError when the file cannot be opened or checkpointed; what `commit` throws.
 */
export function commitFrameCounts(file: string, commit: () => void, samples: number): number[] {
  const side = new Database(file);
  try {
    const pageSize = side.pragma('page_size', { simple: true }) as number;
    const counts: number[] = [];
    for (let n = 0; n < samples; n++) {
      side.pragma('wal_checkpoint(TRUNCATE)');
      commit();
      counts.push(walPageNumbers(`${file}-wal`, pageSize).length);
    }
    return counts;
  } finally {
    side.close();
  }
}

/**
 * A blob for {@link BareBaseline.insert} on the bare file at `file` whose commit writes
 * `targetFrames` WAL frames, as many as a payment's commit (bench/commit-floor.ts). It starts
 * from the overflow pages the row lacks (4 bytes of each overflow page hold the next page's
 * number: SQLite file format §1.6), then corrects by what it counted, up to 3 tries: the row's
 * own leaf and its b-tree neighbours may add a frame. Counts are medians of 5 commits
 * ({@link commitFrameCounts}).
 *
 * @returns the blob (undefined: the default row already writes enough), `frames` its commit
 *   wrote at the last try (it may differ from `targetFrames` by a frame or two), and
 *   `rowFrames` the default row's commit wrote.
 * @throws SqliteError as {@link commitFrameCounts} does.
 */
export function blobForFrames(
  baseline: BareBaseline,
  file: string,
  targetFrames: number,
): { blob: Buffer | undefined; frames: number; rowFrames: number } {
  const pageSize = baseline.db.pragma('page_size', { simple: true }) as number;
  const frameMedian = (blob: Buffer | undefined): number =>
    median(commitFrameCounts(file, () => baseline.insert(undefined, blob), 5));
  const rowFrames = frameMedian(undefined);
  let overflowPages = Math.max(0, targetFrames - rowFrames);
  let blob: Buffer | undefined;
  let frames = 0;
  for (let tries = 0; tries < 3; tries++) {
    blob = overflowPages === 0 ? undefined : randomBytes(overflowPages * (pageSize - 4));
    frames = frameMedian(blob);
    if (frames === targetFrames) break;
    overflowPages = Math.max(0, overflowPages + targetFrames - frames);
  }
  return { blob, frames, rowFrames };
}

/**
 * Creates `count` payments through {@link PaymentStore.createPayment} in the database at
 * `dbPath` (one synchronous=FULL transaction each, exactly as the agent stores them) and closes
 * the store (which checkpoints the WAL into the main file, so the file alone can be copied).
 *
 * @returns the elapsed milliseconds.
 */
export function seedStore(dbPath: string, count: number, tokens: readonly CardToken[]): number {
  const started = performance.now();
  const store = PaymentStore.open({ path: dbPath });
  try {
    for (let i = 0; i < count; i++) {
      const token = tokens[i % tokens.length];
      if (token === undefined) throw new Error('no card tokens');
      store.createPayment(newPayment(i, token));
    }
    // A terminal that has run holds a verified checkpoint (written by its background integrity
    // pass); start-up walks only what came after it (issue 9 §4).
    store.integrity.saveCheckpoint(store.integrity.verifySinceCheckpoint().head);
  } finally {
    store.close();
  }
  return performance.now() - started;
}

/**
 * A directory on a RAM file system (`/dev/shm`) when there is one, for template databases: there
 * an fsync costs nothing, so seeding 100,000 payments through the real `createPayment` (one
 * synchronous=FULL commit each) takes seconds instead of many minutes. Measurements never run
 * there; templates are copied to the disk directory first. Falls back to `fallback`.
 */
export function templateDir(fallback: string): string {
  const shm = '/dev/shm';
  try {
    if (existsSync(shm)) return mkdtempSync(path.join(shm, 'pos-bench-template-'));
  } catch {
    // not writable: use the disk
  }
  return mkdtempSync(path.join(fallback, 'pos-bench-template-'));
}

/** A fresh temp directory under `parent` (default the OS temp dir). */
export function tempDir(prefix: string, parent = tmpdir()): string {
  return mkdtempSync(path.join(parent, `pos-bench-${prefix}-`));
}

/**
 * Copies a template database to `to` and flushes the copy and its folder to the disk (fsync)
 * before returning. A copy left to the kernel's writeback is flushed by the next fsync anyone
 * makes on that file system (ext4 data=ordered): the measured agent's first commit then paid
 * for the bench's ~100 MB copy (a start-up step waited 86 ms on it with 2 ms of CPU).
 */
export function copyDurably(from: string, to: string): void {
  copyFileSync(from, to);
  for (const [target, flags] of [
    [to, 'r+'],
    [path.dirname(to), 'r'],
  ] as const) {
    const fd = openSync(target, flags);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** Removes a directory tree, ignoring errors. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A TCP port that was free on 127.0.0.1 a moment ago (simulator/free-port.ts). */
export { freePort };

/** A broker the drain benchmark runs against. */
export interface BenchBroker {
  name: string;
  url: string;
  stop(): Promise<void>;
}

/** Path of the Mosquitto binary ($MOSQUITTO, /usr/sbin/mosquitto, or on PATH), or null. */
export const mosquittoBinary = mosquittoAvailable;

/**
 * Starts Mosquitto as a child process on a free loopback port with the tests' settings
 * (simulator/mosquitto.ts: anonymous, no persistence, TCP_NODELAY, room for a device's window
 * of batches).
 *
 * @throws Error when it does not accept connections within 5 s.
 */
export async function startMosquitto(binary: string): Promise<BenchBroker> {
  const broker = await startSimulatedMosquitto({ binary });
  return { name: 'Mosquitto', url: broker.url, stop: () => broker.dispose() };
}
