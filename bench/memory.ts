/**
 * architecture.md §9 target 3 — memory flat in backlog size: the resident memory of an agent process
 * holding N stored payments (default 100,000, and 10,000 on the way: issue 9 asks for 0 / 10k /
 * 100k) against one holding none, each in a fresh child
 * process (bench/memory-child.ts, `--expose-gc`) after `startAgent` and a first pass of the sync
 * worker with the broker DOWN, so nothing drains. Idle and loaded runs alternate.
 *
 * The N payments are written once by the real `PaymentStore.createPayment` (one synchronous=FULL
 * transaction each) into a template database on a RAM file system where an fsync is free
 * (bench/fixtures.ts `templateDir`), then the file is copied into each loaded run's data
 * directory on the disk.
 */
import { fork } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { copyDurably, freePort, tempDir, removeDir } from './fixtures.js';
import type { MemoryChildReport, MemoryChildRequest } from './memory-child.js';
import { median } from './stats.js';

/**
 * Runs one child and resolves its report. With `BENCH_CHILD_PROF=DIR` in the environment the
 * child also writes a V8 CPU profile (`--cpu-prof`) into DIR: where its start-up time goes.
 *
 * @throws Error when the child fails or exits early.
 */
export async function runMemoryChild(request: MemoryChildRequest): Promise<MemoryChildReport> {
  const profileDir = process.env.BENCH_CHILD_PROF;
  const child = fork(new URL('./memory-child.js', import.meta.url), [], {
    execArgv: [
      '--expose-gc',
      ...(profileDir === undefined || profileDir === ''
        ? []
        : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]),
    ],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const report = new Promise<MemoryChildReport>((resolve, reject) => {
    child.once('message', (message: MemoryChildReport | { error: string }) => {
      if ('error' in message) reject(new Error(`memory child: ${message.error}`));
      else resolve(message);
    });
    child.once('exit', (code) => reject(new Error(`memory child exited with code ${code}`)));
  });
  child.send(request);
  try {
    return await report;
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

/** Result of the memory benchmark. */
export interface MemoryResult {
  stored: number;
  rounds: number;
  settleMs: number;
  idle: MemoryChildReport[];
  /** The runs with the largest backlog (`stored`). */
  loaded: MemoryChildReport[];
  /** Every backlog size's runs, smallest first (the last is `loaded`). */
  levels: { stored: number; reports: MemoryChildReport[] }[];
  /** Medians of rss, bytes. */
  idleRss: number;
  loadedRss: number;
}

/**
 * Alternates `rounds` idle and loaded child runs: per round one idle run, then one run per
 * template; each template is a closed store database holding `stored` pending payments.
 *
 * @throws Error when a child fails, the loaded agent does not see its backlog, or a worker was
 *   online (then the broker was not down and the comparison is void).
 */
export async function benchMemory(options: {
  parentDir: string;
  /** At least one; ascending by `stored`. */
  templates: { stored: number; path: string }[];
  rounds: number;
  settleMs: number;
}): Promise<MemoryResult> {
  const templates = [...options.templates].sort((a, b) => a.stored - b.stored);
  const largest = templates.at(-1);
  if (largest === undefined) throw new Error('benchMemory needs at least one template');
  const idle: MemoryChildReport[] = [];
  const levels = templates.map((t) => ({ stored: t.stored, reports: [] as MemoryChildReport[] }));
  for (let round = 0; round < options.rounds; round++) {
    for (let level = -1; level < templates.length; level++) {
      const template = templates[level];
      const dir = tempDir('memory', options.parentDir);
      try {
        const dataDir = path.join(dir, 'data');
        mkdirSync(dataDir, { mode: 0o700 });
        if (template !== undefined) copyDurably(template.path, path.join(dataDir, 'agent.db'));
        const report = await runMemoryChild({
          dataDir,
          keysDir: path.join(dir, 'keys'),
          brokerUrl: `mqtt://127.0.0.1:${await freePort()}`,
          pinPadPath: `tcp://127.0.0.1:${await freePort()}`,
          settleMs: options.settleMs,
        });
        if (report.online) throw new Error('the sync worker was online: the broker was not down');
        const expected = template?.stored ?? 0;
        if (report.depth !== expected)
          throw new Error(`the agent saw ${report.depth} stored records, expected ${expected}`);
        (levels[level]?.reports ?? idle).push(report);
      } finally {
        removeDir(dir);
      }
    }
  }
  const loaded = levels.at(-1)?.reports ?? [];
  return {
    stored: largest.stored,
    rounds: options.rounds,
    settleMs: options.settleMs,
    idle,
    loaded,
    levels,
    idleRss: median(idle.map((r) => r.rss)),
    loadedRss: median(loaded.map((r) => r.rss)),
  };
}
