/**
 * The error codes are one closed set (issue 15): every code the source raises or names is in one
 * of the four tables (drivers/errors.ts, store-forward/errors.ts, cloud-sync/errors.ts,
 * agent/errors.ts); every table entry is raised somewhere or marked reserved with a reason; the
 * committed docs/error-codes.md is what the tables make; and no document names a code the tables
 * do not have. The local API's HTTP statuses come from the tables (agent/errors.ts `httpStatus`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentError, isAgentError, type ErrorCode } from '../../common/agent-error.js';
import { isCommandError, isSyncError } from '../../cloud-sync/errors.js';
import { isDriverError, isLinkError, isTransportError } from '../../drivers/errors.js';
import { isDatabaseError, isStoreError } from '../../store-forward/errors.js';
import { ERROR_SECTIONS, errorCodesMarkdown } from '../../agent/error-docs.js';
import {
  agentError,
  ERROR_TABLE,
  httpStatus,
  isApiError,
  isConfigError,
} from '../../agent/errors.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** The folders whose code raises errors (test/ and bench/ only check them). */
const SOURCE_FOLDERS = ['agent', 'drivers', 'store-forward', 'cloud-sync', 'common', 'simulator'];
/** The tables themselves: a code listed there is defined, not raised. */
const TABLE_FILES = new Set([
  'agent/errors.ts',
  'drivers/errors.ts',
  'store-forward/errors.ts',
  'cloud-sync/errors.ts',
]);

function files(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(rel, suffix));
    else if (entry.name.endsWith(suffix)) out.push(rel);
  }
  return out;
}

/** A range such as `POS100–POS199` or `` `POS200`–`POS299` `` names a family, not a code. */
function withoutRanges(text: string): string {
  return text.replace(/`?POS\d{3}`?\s*(?:–|-|to)\s*`?POS\d{3}`?/g, '');
}

/** Every `POSnnn` a text names (ranges left out), with the line of its first mention. */
function namedCodes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = withoutRanges(text).split('\n');
  lines.forEach((line, i) => {
    for (const m of line.matchAll(/\bPOS\d{3}\b/g)) if (!out.has(m[0])) out.set(m[0], i + 1);
  });
  return out;
}

/**
 * The codes a source text uses outside its comments: as a literal (`new AgentError('POS406', …)`,
 * `code: 'POS145'`), a key (`counters.POS401`) or inside a text it builds (`` `${problem} (POS607)` ``).
 * Comment lines (`//`, `/*`, ` *`) are left out: a code only described there is not raised.
 */
function usedCodes(text: string): Set<string> {
  const code = text
    .split('\n')
    .filter((line) => !/^\s*(\/\/|\/\*|\*)/.test(line))
    .join('\n');
  return new Set([...withoutRanges(code).matchAll(/\bPOS\d{3}\b/g)].map((m) => m[0]));
}

const known = new Set(Object.keys(ERROR_TABLE));
const sources = SOURCE_FOLDERS.flatMap((dir) => files(dir, '.ts')).map((file) => ({
  file,
  text: readFileSync(path.join(ROOT, file), 'utf8'),
}));

describe('error tables', () => {
  it('hold well-formed codes, each in its family and in one table only', () => {
    const seen = new Map<string, string>();
    for (const section of ERROR_SECTIONS) {
      const codes = Object.entries(section.codes).filter(([code]) =>
        code.startsWith(section.prefix),
      );
      expect(codes.length, section.title).toBeGreaterThan(0);
      for (const [code, spec] of codes) {
        expect(code, section.file).toMatch(/^POS\d{3}$/);
        expect(seen.get(code), `${code} is in ${seen.get(code)} and ${section.file}`).toBe(
          undefined,
        );
        seen.set(code, section.file);
        expect(spec.name.trim(), `${code} name`).not.toBe('');
        expect(spec.fix.trim(), `${code} fix`).not.toBe('');
        if (spec.status !== undefined) {
          expect(Number.isInteger(spec.status) && spec.status >= 400 && spec.status <= 599).toBe(
            true,
          );
        }
        if (spec.reserved !== undefined) expect(spec.reserved.trim(), code).not.toBe('');
      }
      // A table holds its family only: agent/errors.ts is two sections, POS4xx and POS5xx.
      const others = Object.keys(section.codes).filter((code) => !code.startsWith(section.prefix));
      const sameFile = ERROR_SECTIONS.filter((s) => s.codes === section.codes).map((s) => s.prefix);
      expect(others.filter((code) => !sameFile.some((p) => code.startsWith(p)))).toEqual([]);
    }
    expect([...seen.keys()].sort(), 'ERROR_TABLE and ERROR_SECTIONS differ').toEqual(
      [...known].sort(),
    );
  });

  it('hold every code the source raises or names (comments included)', () => {
    const unknown: string[] = [];
    for (const { file, text } of sources) {
      for (const [code, line] of namedCodes(text)) {
        if (!known.has(code)) unknown.push(`${file}:${line} ${code}`);
      }
    }
    expect(unknown, 'add these codes to their folder table (one entry each)').toEqual([]);
  });

  it('hold no dead code: each is raised in the source, or reserved with a reason and not raised', () => {
    const raised = new Set<string>();
    for (const { file, text } of sources) {
      if (!TABLE_FILES.has(file)) for (const code of usedCodes(text)) raised.add(code);
    }
    const problems: string[] = [];
    for (const [code, spec] of Object.entries(ERROR_TABLE)) {
      if (spec.reserved === undefined && !raised.has(code))
        problems.push(`${code} (${spec.name}) is raised nowhere: remove it or mark it reserved`);
      if (spec.reserved !== undefined && raised.has(code))
        problems.push(`${code} is marked reserved but is raised: drop "reserved"`);
    }
    expect(problems).toEqual([]);
  });
});

describe('error code documents', () => {
  it('docs/error-codes.md is what the tables make', () => {
    const committed = readFileSync(path.join(ROOT, 'docs/error-codes.md'), 'utf8');
    expect(committed, 'docs/error-codes.md is stale: run "npm run contracts"').toBe(
      errorCodesMarkdown(),
    );
  });

  it('documents every code of the tables', () => {
    const documented = namedCodes(readFileSync(path.join(ROOT, 'docs/error-codes.md'), 'utf8'));
    expect([...known].filter((code) => !documented.has(code))).toEqual([]);
  });

  it('no document names a code the tables do not have', () => {
    const documents = [
      'README.md',
      ...files('docs', '.md'),
      'docs/openapi.json',
      'docs/asyncapi.json',
    ];
    const unknown: string[] = [];
    for (const file of documents) {
      for (const [code, line] of namedCodes(readFileSync(path.join(ROOT, file), 'utf8'))) {
        if (!known.has(code)) unknown.push(`${file}:${line} ${code}`);
      }
    }
    expect(unknown).toEqual([]);
  });
});

describe('httpStatus', () => {
  it('answers the statuses the local API has always answered, 500 for the rest', () => {
    // The former STATUS_BY_CODE of agent/api.ts, plus the refusals of agent/api-auth.ts.
    const expected: Partial<Record<ErrorCode, number>> = {
      POS400: 400,
      POS401: 401,
      POS402: 429,
      POS403: 403,
      POS404: 404,
      POS405: 404,
      POS406: 400,
      POS407: 403,
      POS408: 401,
      POS409: 409,
      POS210: 409,
      POS410: 409,
      POS420: 422,
      POS430: 503,
      POS207: 503,
      POS209: 503,
      POS230: 503,
      POS231: 503,
      POS431: 503,
      POS211: 404,
      POS212: 409,
      POS213: 400,
      POS214: 400,
      POS102: 503,
      POS120: 504,
      POS499: 500,
    };
    for (const code of Object.keys(ERROR_TABLE) as ErrorCode[]) {
      expect(httpStatus(code), code).toBe(expected[code] ?? 500);
    }
    // A code that got past the type (a cast) still answers, 500, instead of throwing.
    expect(httpStatus('POS999' as ErrorCode)).toBe(500);
  });
});

describe('AgentError and the family predicates', () => {
  it('keeps the code typed and appended to the message', () => {
    const error = agentError('POS406', 'the Idempotency-Key header is missing');
    expect(error).toBeInstanceOf(AgentError);
    expect(error.code).toBe('POS406');
    expect(error.message).toBe('the Idempotency-Key header is missing (POS406)');
    expect(error.reason).toBe('the Idempotency-Key header is missing');
    expect(isAgentError(error, 'POS406')).toBe(true);
    expect(isAgentError(error, 'POS405')).toBe(false);
  });

  it('sorts codes into their families', () => {
    const link = new AgentError('POS111', 'no ACK');
    const transport = new AgentError('POS101', 'cannot open');
    const store = new AgentError('POS207', 'write failed');
    const command = new AgentError('POS321', 'replayed');
    const api = new AgentError('POS410', 'busy');
    const config = new AgentError('POS501', 'bad config');
    expect([isDriverError(link), isLinkError(link), isTransportError(link)]).toEqual([
      true,
      true,
      false,
    ]);
    expect([isTransportError(transport), isLinkError(transport)]).toEqual([true, false]);
    expect([isStoreError(store), isDatabaseError(store), isDriverError(store)]).toEqual([
      true,
      true,
      false,
    ]);
    expect([isSyncError(command), isCommandError(command), isStoreError(command)]).toEqual([
      true,
      true,
      false,
    ]);
    expect([isApiError(api), isConfigError(api)]).toEqual([true, false]);
    expect([isConfigError(config), isApiError(config)]).toEqual([true, false]);
    expect(isDriverError(new Error('POS101'))).toBe(false);
    expect(isApiError({ code: 'POS410' })).toBe(false);
  });
});
