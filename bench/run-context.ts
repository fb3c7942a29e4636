/**
 * What every row of `npm run bench` (bench/run.ts) shares: the command line, the plan of the run
 * (sizes of the quick and full runs), the results collected for `--json`, and the printing helpers.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
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

export const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    stored: { type: 'string' },
    dir: { type: 'string' },
    only: { type: 'string' },
  },
  strict: true,
});

export const quick = values.quick === true;
export const stored =
  values.stored === undefined ? (quick ? 10_000 : 100_000) : Number(values.stored);
if (!Number.isInteger(stored) || stored < 1)
  throw new Error(`--stored ${values.stored} must be a positive integer (payments)`);
export const only = new Set((values.only ?? '1,2,3,4,5,6').split(',').map((s) => s.trim()));
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
export const settleMs = 1500;
export const diskParent = values.dir ?? os.tmpdir();

export const results: TargetResult[] = [];
export const line = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};
export const mark = (v: Verdict): string => (v.pass ? 'PASS' : 'MISS');
export const mib = (bytes: number): string => fmt(bytes / 2 ** 20, 1);

/** `--json FILE`: where the results go, when given. */
export const jsonPath: string | undefined = values.json;
