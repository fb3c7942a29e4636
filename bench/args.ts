/**
 * The command line of `npm run bench` (bench/run.ts), parsed without side effects so that a test
 * can call it: the options and the one command word `fleet`.
 */
import { parseArgs } from 'node:util';

/** The bench's options and its one command word. */
const BENCH_OPTIONS = {
  quick: { type: 'boolean', default: false },
  json: { type: 'string' },
  stored: { type: 'string' },
  dir: { type: 'string' },
  only: { type: 'string' },
} as const;

/**
 * Parses the bench's command line: the options above and at most one word, `fleet` (the fleet
 * bench of issue 16, `npm run bench -- fleet`).
 * @throws Error naming the word and the fix when another word is given, or more than one; the
 *   errors of `util.parseArgs` (ERR_PARSE_ARGS_*) for an unknown option.
 */
export function parseBenchArgs(argv: readonly string[]): {
  values: { quick?: boolean; json?: string; stored?: string; dir?: string; only?: string };
  fleet: boolean;
} {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: BENCH_OPTIONS,
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 1 || (positionals.length === 1 && positionals[0] !== 'fleet'))
    throw new Error(
      `npm run bench: unknown word "${positionals.join(' ')}"; the one word it takes is "fleet" (npm run bench -- fleet), the rest are options (--quick, --json FILE, --stored N, --dir DIR, --only 1,2,…)`,
    );
  return { values, fleet: positionals[0] === 'fleet' };
}
