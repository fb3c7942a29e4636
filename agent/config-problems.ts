/**
 * The problems of a config file as a field tech reads them (issue 15): a missing field "is
 * required"; an unknown key names the known key it is closest to ("did you mean `pinPad`?", as
 * better-sqlite3 answers a misspelt option).
 */
import { z } from 'zod';

/** One problem of a config file: the dotted path of the field (`''` = top level) and what is wrong. */
export interface ConfigProblem {
  path: string;
  message: string;
}

/**
 * The issues of `schema` (the config's root schema) as problems a field tech can act on: a missing field "is required"; an
 * unknown key (zod's `unrecognized_keys`, one problem per key) names the known key it is closest
 * to ("did you mean `pinPad`?"), and when that key is required and missing, the two issues are
 * one problem.
 */
export function describeProblems(
  schema: z.ZodType,
  issues: readonly z.core.$ZodIssue[],
): ConfigProblem[] {
  const dotted = (where: readonly PropertyKey[]): string => where.map(String).join('.');
  const missing = new Set(
    issues.filter((i) => / received undefined$/.test(i.message)).map((i) => dotted(i.path)),
  );
  const merged = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') {
      problems.push({
        path: dotted(issue.path),
        message: / received undefined$/.test(issue.message)
          ? 'is required (see AgentConfigSchema in agent/config.ts for what it holds)'
          : issue.message,
      });
      continue;
    }
    const known = knownKeys(schema, issue.path);
    for (const key of issue.keys) {
      const suggestion = closestKey(key, known);
      const target = dotted([...issue.path, suggestion ?? '']);
      const message =
        suggestion === undefined
          ? `unknown key; remove it${known.length === 0 ? '' : ` (known here: ${known.join(', ')})`}`
          : missing.has(target)
            ? `unknown key; did you mean \`${suggestion}\`? (${suggestion} is required and missing)`
            : `unknown key; did you mean \`${suggestion}\`?`;
      if (suggestion !== undefined && missing.has(target)) merged.add(target);
      problems.push({ path: dotted([...issue.path, key]), message });
    }
  }
  // A required key that was only misspelt is reported once, as the misspelling.
  return problems.filter((p) => !(merged.has(p.path) && p.message.startsWith('is required')));
}

/** The keys the object at `where` (a zod issue path) of `root` takes. */
function knownKeys(root: z.ZodType, where: readonly PropertyKey[]): string[] {
  let schema: unknown = root;
  // A section with a `.transform()` (broker, sync) is a pipe whose input side holds the keys; a
  // `z.preprocess()` pipe holds them on its output side.
  const unwrap = (s: unknown): unknown => {
    let inner = s;
    for (;;) {
      if (
        inner instanceof z.ZodDefault ||
        inner instanceof z.ZodPrefault ||
        inner instanceof z.ZodOptional
      )
        inner = inner.unwrap();
      else if (inner instanceof z.ZodPipe)
        inner = inner.in instanceof z.ZodTransform ? inner.out : inner.in;
      else return inner;
    }
  };
  for (const step of where) {
    schema = unwrap(schema);
    if (schema instanceof z.ZodArray && typeof step === 'number') schema = schema.element;
    else if (schema instanceof z.ZodObject && typeof step === 'string')
      schema = (schema.shape as Record<string, unknown>)[step];
    else return [];
  }
  schema = unwrap(schema);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/**
 * The known key a misspelt `key` most likely meant: the nearest by {@link editDistance} (case
 * ignored), when at most a third of its letters (at least 1) differ; `undefined` otherwise.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (best === undefined || distance < best.distance) best = { key: candidate, distance };
  }
  const allowed = Math.max(1, Math.floor(key.length / 3));
  return best !== undefined && best.distance <= allowed ? best.key : undefined;
}

/**
 * Edits (insert, delete, substitute, swap of two neighbours) that turn `a` into `b`: the optimal
 * string alignment distance, so `hots` is 1 from `host`.
 */
export function editDistance(a: string, b: string): number {
  // d[i][j] = distance between the first i characters of a and the first j of b.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}
