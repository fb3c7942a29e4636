/**
 * `npm run bench -- fleet` (issue 16's named command) must reach the fleet bench: the shared
 * command line was parsed with positionals refused, at import, so the word threw
 * ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL before run.ts could look at it.
 */
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../bench/args.js';

describe('the bench command line', () => {
  it('takes the word fleet, alone or with options', () => {
    expect(parseBenchArgs(['fleet']).fleet).toBe(true);
    expect(parseBenchArgs(['--json', 'out.json', 'fleet'])).toMatchObject({
      fleet: true,
      values: { json: 'out.json' },
    });
    expect(parseBenchArgs(['--only', '1,6'])).toMatchObject({
      fleet: false,
      values: { only: '1,6', quick: false },
    });
  });

  it('refuses another word or an unknown option, naming the fix', () => {
    expect(() => parseBenchArgs(['flet'])).toThrow(/unknown word "flet".*npm run bench -- fleet/);
    expect(() => parseBenchArgs(['fleet', 'now'])).toThrow(/unknown word "fleet now"/);
    expect(() => parseBenchArgs(['--fast'])).toThrow(/--fast/);
  });
});
