/**
 * What every row of `npm run bench` (bench/run.ts) shares: the command line, the plan of the run
 * (sizes of the quick and full runs), the results collected for `--json`, and the printing helpers.
 */
import os from 'node:os';
import { parseBenchArgs } from './args.js';
import { fmt, type Verdict } from './stats.js';

/** One target's outcome in the JSON output. */
export interface TargetResult {
  id: string;
  name: string;
  unit: string;
  measured: number;
  baseline: number;
  ratio: number;
  target: string;
  pass: boolean;
  details: unknown;
}

/** The command line (see bench/run.ts for the options). */
export const { values, fleet } = ((): ReturnType<typeof parseBenchArgs> => {
  try {
    return parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    // A wrong word or option: the sentence and exit 2, no stack trace.
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
})();

/** `--quick`: the smaller run (~1 minute). */
export const quick = values.quick === true;
/** `--stored N`: the backlog of target 3, payments. */
export const stored =
  values.stored === undefined ? (quick ? 10_000 : 100_000) : Number(values.stored);
if (!Number.isInteger(stored) || stored < 1)
  throw new Error(`--stored ${values.stored} must be a positive integer (payments)`);
/** `--only 1,2,…`: the targets to run. */
export const only = new Set((values.only ?? '1,2,3,4,5,6').split(',').map((s) => s.trim()));
/** Sizes of the run: iterations, payments and rounds per target. */
export const plan = quick
  ? {
      enqueue: 300,
      warmup: 30,
      drainPayments: 1000,
      baselineMessages: 3000,
      drainRounds: 1,
      memoryRounds: 1,
      awsPayments: 2000,
      listStored: 10_000,
      http: 50,
    }
  : {
      enqueue: 2000,
      warmup: 100,
      drainPayments: 5000,
      baselineMessages: 10_000,
      drainRounds: 2,
      memoryRounds: 2,
      awsPayments: 10_000,
      listStored: 100_000,
      http: 300,
    };
/** How long a memory child settles before it is measured, ms. */
export const settleMs = 1500;
/** `--dir DIR`: where the databases of targets 1 and 2 live (the disk under test). */
export const diskParent = values.dir ?? os.tmpdir();

/** Every target's outcome, in order, for the summary and `--json`. */
export const results: TargetResult[] = [];
/** Prints one line of the report. */
export const line = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};
/** PASS or MISS. */
export const mark = (v: Verdict): string => (v.pass ? 'PASS' : 'MISS');
/** Bytes as MiB with one decimal. */
export const mib = (bytes: number): string => fmt(bytes / 2 ** 20, 1);

/** `--json FILE`: where the results go, when given. */
export const jsonPath: string | undefined = values.json;
