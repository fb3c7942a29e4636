/**
 * Checks an SQLite write-ahead log before the database is opened (issue 10).
 *
 * SQLite reads a WAL up to the first frame that fails its checksum and ignores the rest; the next
 * checkpoint then deletes the file. A damaged frame in the middle of the WAL therefore silently
 * drops every transaction committed after it — payments that were answered 201 vanish. This
 * module reads the WAL with plain file I/O (never through SQLite, which would act on it) and
 * tells a damaged frame with committed transactions after it (damage) from a frame that was
 * being written when the power went (a torn tail, which SQLite rightly ignores).
 *
 * The format (SQLite file format §4.1–4.4, https://www.sqlite.org/fileformat2.html#walformat):
 * ```
 * WAL header, 32 bytes, big-endian fields
 *   0  magic 0x377f0682 (checksum words little-endian) or 0x377f0683 (big-endian)
 *   4  format version 3007000        8  page size
 *  12  checkpoint sequence          16  salt-1      20  salt-2
 *  24  checksum-1 ┐ over bytes 0–23
 *  28  checksum-2 ┘
 * frame = 24-byte header + one page
 *   0  page number
 *   4  database size in pages after commit (commit frame), else 0
 *   8  salt-1 ┐ copied from the WAL header; other salts are frames of an earlier WAL generation
 *  12  salt-2 ┘
 *  16  checksum-1 ┐ cumulative: seeded with the previous frame's (the header's for frame 1),
 *  20  checksum-2 ┘ over frame bytes 0–7 and the page
 * checksum over 32-bit words x0..xN (byte order by magic):
 *   s0 += x[i] + s1;  s1 += x[i+1] + s0   (mod 2^32), two words at a time
 * ```
 *
 * A frame is checked against its predecessor's STORED checksum as the seed, so each frame is
 * judged on its own bytes: a bad frame does not make every later frame look bad, and the frames
 * after it tell whether anything committed was lost.
 *
 * With `synchronous=FULL` a transaction's frames are on disk before the next one starts, so a
 * write torn by a power cut can only be in the last transaction, after which no commit frame
 * verifies. A verified commit frame after a bad frame is therefore reported as damage, even
 * in the rare case where a power cut reordered the last transaction's writes: never hidden.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';

const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;
const MAGIC_LE = 0x377f0682;
const MAGIC_BE = 0x377f0683;
const WAL_VERSION = 3007000;

/**
 * What the WAL check found:
 * - `absent` — no WAL file (a clean shutdown checkpointed and deleted it);
 * - `empty` — a WAL with no frames (header only, or shorter than a header: nothing to replay);
 * - `ok` — every frame of the current generation verifies (a partial last frame may be cut off);
 * - `torn_tail` — frames at the end fail, with no commit frame after the first failure: the last
 *   transaction was being written when the process or power stopped, and SQLite correctly ignores
 *   it (it was never committed, so never answered);
 * - `damaged` — a frame fails its checksum and a commit frame verifies after it, or the WAL
 *   header is damaged while frames follow it: committed transactions would be dropped by SQLite.
 */
export type WalCondition = 'absent' | 'empty' | 'ok' | 'torn_tail' | 'damaged';

/** The report of {@link checkWal}. Frame numbers are 1-based, as in SQLite. */
export interface WalReport {
  condition: WalCondition;
  /** The WAL file's path. */
  path: string;
  /** File size, bytes (0 when absent). */
  bytes: number;
  /** Page size from the header (0 when unknown). */
  pageSize: number;
  /** Whole frames in the file (of any generation). */
  frames: number;
  /** Frames SQLite would replay: those up to the last commit frame before the first bad frame. */
  replayableFrames: number;
  /** Commit frames among the replayable ones: transactions SQLite would keep. */
  replayableTransactions: number;
  /** The first frame that fails its checksum (damaged or torn), if any; 0 for a bad header. */
  firstBadFrame?: number;
  /** Frames after the first bad frame that verify against their own predecessor. */
  verifiedFramesAfterBad: number;
  /**
   * Commit frames after the first bad frame that verify: transactions that were committed (and
   * answered) but that SQLite would drop. Nonzero only when `condition` is `damaged`.
   */
  transactionsAfterBad: number;
  /** One sentence for a log line or `pos-agent doctor`. */
  summary: string;
}

/** The SQLite WAL checksum (file format §4.4), continuing from `seed`. */
function walChecksum(
  bytes: Buffer,
  bigEndian: boolean,
  seed: readonly [number, number],
): [number, number] {
  let s0 = seed[0];
  let s1 = seed[1];
  for (let i = 0; i + 8 <= bytes.length; i += 8) {
    const x0 = bigEndian ? bytes.readUInt32BE(i) : bytes.readUInt32LE(i);
    const x1 = bigEndian ? bytes.readUInt32BE(i + 4) : bytes.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}

/**
 * Reads and checks the WAL at `walPath` (normally `<database>-wal`). Never writes, never opens
 * the database.
 *
 * @returns a {@link WalReport}; `condition: 'damaged'` is the one that must stop the agent.
 * @throws Error only for I/O errors reading a WAL that exists (EACCES, EIO).
 */
export function checkWal(walPath: string): WalReport {
  const base = {
    path: walPath,
    bytes: 0,
    pageSize: 0,
    frames: 0,
    replayableFrames: 0,
    replayableTransactions: 0,
    verifiedFramesAfterBad: 0,
    transactionsAfterBad: 0,
  };
  if (!existsSync(walPath)) {
    return { ...base, condition: 'absent', summary: `no WAL at ${walPath}` };
  }
  const fd = openSync(walPath, 'r');
  try {
    const bytes = fstatSync(fd).size;
    const header = Buffer.alloc(WAL_HEADER_BYTES);
    const got = bytes >= WAL_HEADER_BYTES ? readSync(fd, header, 0, WAL_HEADER_BYTES, 0) : 0;
    if (got < WAL_HEADER_BYTES) {
      return {
        ...base,
        bytes,
        condition: 'empty',
        summary: `WAL ${walPath} holds no frames (${bytes} bytes)`,
      };
    }
    const magic = header.readUInt32BE(0);
    const pageSize = header.readUInt32BE(8);
    const validPageSize = pageSize >= 512 && pageSize <= 65536 && (pageSize & (pageSize - 1)) === 0;
    const bigEndian = magic === MAGIC_BE;
    const frameBytes = FRAME_HEADER_BYTES + (validPageSize ? pageSize : 0);
    const frames = validPageSize ? Math.floor((bytes - WAL_HEADER_BYTES) / frameBytes) : 0;
    const headerSum = walChecksum(header.subarray(0, 24), bigEndian, [0, 0]);
    const headerOk =
      (magic === MAGIC_LE || magic === MAGIC_BE) &&
      header.readUInt32BE(4) === WAL_VERSION &&
      validPageSize &&
      headerSum[0] === header.readUInt32BE(24) &&
      headerSum[1] === header.readUInt32BE(28);
    if (!headerOk) {
      // SQLite treats a WAL with a bad header as empty: every frame in it is dropped.
      const frameCount = validPageSize
        ? frames
        : Math.floor((bytes - WAL_HEADER_BYTES) / FRAME_HEADER_BYTES);
      if (bytes - WAL_HEADER_BYTES < FRAME_HEADER_BYTES) {
        return {
          ...base,
          bytes,
          condition: 'empty',
          summary: `WAL ${walPath} has an unreadable header and no frames`,
        };
      }
      // The frames cannot be verified without the header's checksum; their commit fields still
      // say how many transactions SQLite would drop.
      let commits = 0;
      const frameHeader = Buffer.alloc(FRAME_HEADER_BYTES);
      for (let n = 1; validPageSize && n <= frameCount; n++) {
        readSync(fd, frameHeader, 0, FRAME_HEADER_BYTES, WAL_HEADER_BYTES + (n - 1) * frameBytes);
        if (frameHeader.readUInt32BE(4) !== 0) commits += 1;
      }
      return {
        ...base,
        bytes,
        pageSize: validPageSize ? pageSize : 0,
        frames: validPageSize ? frameCount : 0,
        firstBadFrame: 0,
        transactionsAfterBad: commits,
        condition: 'damaged',
        summary: `the header of WAL ${walPath} is damaged (${bytes - WAL_HEADER_BYTES} bytes of frames follow it${commits > 0 ? `, ${commits} commit frame(s)` : ''}): SQLite would drop every transaction in it`,
      };
    }
    const salt1 = header.readUInt32BE(16);
    const salt2 = header.readUInt32BE(20);
    const frame = Buffer.alloc(frameBytes);
    let seed: [number, number] = [headerSum[0], headerSum[1]];
    let firstBad: number | undefined;
    let lastCommitBeforeBad = 0;
    let replayableTransactions = 0;
    let verifiedAfterBad = 0;
    let transactionsAfterBad = 0;
    for (let n = 1; n <= frames; n++) {
      readSync(fd, frame, 0, frameBytes, WAL_HEADER_BYTES + (n - 1) * frameBytes);
      // A frame of an earlier generation (other salts) ends the current WAL: SQLite restarts
      // a WAL from its start after a checkpoint and leaves the old frames behind it.
      if (frame.readUInt32BE(8) !== salt1 || frame.readUInt32BE(12) !== salt2) break;
      const stored: [number, number] = [frame.readUInt32BE(16), frame.readUInt32BE(20)];
      let sum = walChecksum(frame.subarray(0, 8), bigEndian, seed);
      sum = walChecksum(frame.subarray(FRAME_HEADER_BYTES), bigEndian, sum);
      const ok = sum[0] === stored[0] && sum[1] === stored[1];
      const commit = frame.readUInt32BE(4) !== 0;
      if (firstBad === undefined) {
        if (ok) {
          if (commit) {
            lastCommitBeforeBad = n;
            replayableTransactions += 1;
          }
        } else firstBad = n;
      } else if (ok) {
        verifiedAfterBad += 1;
        if (commit) transactionsAfterBad += 1;
      }
      // The next frame is judged against what was stored, so one bad frame does not taint the
      // rest (they were written against these stored values).
      seed = stored;
    }
    const report = {
      ...base,
      bytes,
      pageSize,
      frames,
      replayableFrames: lastCommitBeforeBad,
      replayableTransactions,
      verifiedFramesAfterBad: verifiedAfterBad,
      transactionsAfterBad,
      ...(firstBad === undefined ? {} : { firstBadFrame: firstBad }),
    };
    if (firstBad === undefined) {
      return {
        ...report,
        condition: frames === 0 ? 'empty' : 'ok',
        summary: `WAL ${walPath}: ${frames} frames verify, ${replayableTransactions} committed transactions`,
      };
    }
    if (transactionsAfterBad > 0) {
      return {
        ...report,
        condition: 'damaged',
        summary: `WAL ${walPath}: frame ${firstBad} of ${frames} fails its checksum and ${transactionsAfterBad} committed transaction(s) (${verifiedAfterBad} frames) follow it; SQLite would drop them`,
      };
    }
    return {
      ...report,
      condition: 'torn_tail',
      summary: `WAL ${walPath}: the last ${frames - firstBad + 1} frame(s) from frame ${firstBad} were being written when the agent stopped (no commit after them); ${replayableTransactions} committed transactions verify`,
    };
  } finally {
    closeSync(fd);
  }
}
