#!/usr/bin/env node
/* global process, URL */
/**
 * Compiles the agent's TypeScript sources to JavaScript file by file, without the type check
 * (`npm run check` does that): the same output as `tsc -p tsconfig.build.json`, in seconds.
 * Used by build-deb.mjs --transpile-only and by tests that run the `pos-agent` command
 * (test/field-guide.test.ts).
 *
 * Usage: node packaging/transpile.mjs OUT_DIR — writes OUT_DIR/agent/cli.js and the rest. An
 * OUT_DIR inside the checkout resolves the packages from its node_modules.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The source folders that make up the agent (bench/ and test/ are left out). */
export const SOURCE_DIRS = [
  'agent',
  'drivers',
  'store-forward',
  'cloud-sync',
  'simulator',
  'common',
];

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)],
  );

/**
 * @param {string} repo — the checkout
 * @param {string} outDir — where the .js files go (folders mirror the sources)
 * @returns {Promise<number>} the number of files written
 */
export async function transpileSources(repo, outDir) {
  const ts = (await import('typescript')).default;
  let count = 0;
  for (const top of SOURCE_DIRS) {
    for (const file of walk(path.join(repo, top))) {
      if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
      const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
        fileName: file,
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2022,
          esModuleInterop: true,
          sourceMap: false,
        },
      });
      const target = path.join(outDir, path.relative(repo, file)).replace(/\.ts$/, '.js');
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, outputText);
      count++;
    }
  }
  return count;
}

if (
  process.argv[1] !== undefined &&
  new URL(import.meta.url).pathname === path.resolve(process.argv[1])
) {
  const out = process.argv[2];
  if (out === undefined) {
    process.stderr.write('usage: node packaging/transpile.mjs OUT_DIR\n');
    process.exit(2);
  }
  const repo = path.resolve(new URL('..', import.meta.url).pathname);
  const n = await transpileSources(repo, path.resolve(out));
  process.stdout.write(`transpiled ${n} files into ${path.resolve(out)}\n`);
}
