import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blobForFrames, commitFrameCounts, openBareBaseline } from '../../bench/fixtures.js';
import { median } from '../../bench/stats.js';

describe('bench fixtures: the same-frames floor', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const bareFile = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-bench-fixtures-'));
    dirs.push(dir);
    return path.join(dir, 'bare.db');
  };

  it('sizes a blob whose commit writes the asked number of WAL frames, on a real SQLite file', () => {
    const file = bareFile();
    const bare = openBareBaseline(file);
    try {
      const sized = blobForFrames(bare, file, 20);
      expect(sized.rowFrames).toBeGreaterThanOrEqual(1);
      expect(sized.rowFrames).toBeLessThan(20);
      expect(sized.blob?.length).toBeGreaterThan(0);
      expect(Math.abs(sized.frames - 20)).toBeLessThanOrEqual(1);
      // What it reports is what a commit of that blob writes.
      const again = median(commitFrameCounts(file, () => bare.insert(undefined, sized.blob), 5));
      expect(Math.abs(again - sized.frames)).toBeLessThanOrEqual(1);
    } finally {
      bare.close();
    }
  });

  it('gives no blob when the default row already writes as many frames', () => {
    const file = bareFile();
    const bare = openBareBaseline(file);
    try {
      expect(blobForFrames(bare, file, 1).blob).toBeUndefined();
    } finally {
      bare.close();
    }
  });
});
