#!/usr/bin/env node
/* global process, console, URL */
/**
 * `npm run package`: builds the Debian package of the agent (issue 12) with dpkg-deb over a
 * staged tree. Production dependencies only, taken from this checkout's node_modules (so the
 * native modules — better-sqlite3, serialport, node-hid — are the ones built on this machine,
 * and nothing is downloaded); the package's architecture is this machine's.
 *
 * ```
 * /usr/bin/pos-agent                            wrapper: node ../lib/pos-agent/dist/agent/cli.js
 * /usr/lib/pos-agent/{package.json,dist,node_modules}
 * /usr/lib/systemd/system/pos-agent.service     Restart=always, user pos-agent, hardening
 * /usr/lib/udev/rules.d/60-pos-agent.rules      /dev/pos/… names and groups for the known devices
 * /usr/share/doc/pos-agent/field-guide.md
 * DEBIAN/{control,postinst,prerm,postrm}        postinst: user pos-agent (dialout, plugdev),
 *                                               /etc/pos-agent, /var/lib/pos-agent
 * ```
 *
 * Usage: node packaging/build-deb.mjs [--out DIR] [--compression xz|gzip|zstd|none]
 *   [--transpile-only]
 * - `--out` — where the .deb goes (default dist/deb/).
 * - `--compression` — dpkg-deb's -Z (default xz, the smallest; tests use none, the fastest).
 * - `--transpile-only` — compile each file without the type check (`npm run check` does that);
 *   the output is the same JavaScript, in seconds instead of a minute.
 *
 * Prints the path of the .deb on the last line. Exit 1 with a reason when dpkg-deb is missing
 * (`apt-get install dpkg-dev`) or a step fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { transpileSources } from './transpile.mjs';
import { udevRules } from './udev-rules.mjs';

const repo = path.resolve(new URL('..', import.meta.url).pathname);

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const options = { out: path.join(repo, 'dist', 'deb'), compression: 'xz', transpileOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--out') options.out = path.resolve(argv[++i] ?? fail('--out needs a directory'));
    else if (arg === '--compression') options.compression = argv[++i] ?? '';
    else if (arg === '--transpile-only') options.transpileOnly = true;
    else fail(`unknown option ${arg}; see the comment at the top of packaging/build-deb.mjs`);
  }
  if (!['xz', 'gzip', 'zstd', 'none'].includes(options.compression))
    fail(`--compression ${options.compression}: use xz, gzip, zstd or none`);
  return options;
}

function which(program) {
  return spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).status === 0;
}

/** Compiles the sources into `outDir` (dist/), with or without the type check. */
async function compile(outDir, transpileOnly) {
  if (!transpileOnly) {
    execFileSync(
      process.execPath,
      [
        path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        path.join(repo, 'tsconfig.build.json'),
        '--outDir',
        outDir,
        '--sourceMap',
        'false',
        '--declaration',
        'false',
      ],
      { stdio: 'inherit' },
    );
    rmSync(path.join(outDir, 'bench'), { recursive: true, force: true });
    return;
  }
  await transpileSources(repo, outDir);
}

/**
 * Mirrors a folder by hard links (the staging tree is only read, by dpkg-deb), falling back to a
 * copy across file systems: linking 50 MB of modules takes a moment, copying it much longer.
 */
function linkTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) linkTree(source, target);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
    else {
      try {
        linkSync(source, target);
      } catch {
        cpSync(source, target);
      }
    }
  }
}

/** Copies the production dependencies (npm ls --omit=dev) from this checkout. */
function copyProductionModules(appDir) {
  const listed = spawnSync('npm', ['ls', '--omit=dev', '--parseable', '--all'], {
    cwd: repo,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const paths = listed.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((p) => p.startsWith(path.join(repo, 'node_modules') + path.sep))
    .sort();
  if (paths.length === 0) fail('npm ls --omit=dev listed no dependencies: run "npm ci" first');
  let copied = 0;
  let last = '';
  for (const from of paths) {
    // A nested package is copied with its parent.
    if (last !== '' && from.startsWith(last + path.sep)) continue;
    const to = path.join(appDir, path.relative(repo, from));
    linkTree(from, to);
    last = from;
    copied++;
  }
  // Build leftovers of better-sqlite3 (its SQLite sources and object files): 20 MB not needed.
  const sqlite = path.join(appDir, 'node_modules', 'better-sqlite3');
  for (const junk of [
    'deps',
    'src',
    'build/Release/obj',
    'build/Release/obj.target',
    'build/Release/.deps',
    'build/deps',
  ])
    rmSync(path.join(sqlite, junk), { recursive: true, force: true });
  if (!existsSync(path.join(sqlite, 'build', 'Release', 'better_sqlite3.node')))
    fail('better-sqlite3 has no native build in node_modules: run "npm ci" on this machine first');
  return copied;
}

function duKiB(dir) {
  let bytes = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) bytes += statSync(p).size;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (!which('dpkg-deb')) fail('dpkg-deb is missing: apt-get install dpkg-dev (or dpkg)');
  const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const stage = mkdtempSync(path.join(tmpdir(), 'pos-agent-deb-'));
  try {
    const root = path.join(stage, 'root');
    const app = path.join(root, 'usr', 'lib', 'pos-agent');
    mkdirSync(app, { recursive: true });

    await compile(path.join(app, 'dist'), options.transpileOnly);
    writeFileSync(
      path.join(app, 'package.json'),
      `${JSON.stringify(
        {
          name: pkg.name,
          version: pkg.version,
          description: pkg.description,
          type: 'module',
          private: true,
          dependencies: pkg.dependencies,
          optionalDependencies: pkg.optionalDependencies,
        },
        null,
        2,
      )}\n`,
    );
    const modules = copyProductionModules(app);

    const bin = path.join(root, 'usr', 'bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(path.join(repo, 'packaging', 'pos-agent.sh'), path.join(bin, 'pos-agent'));
    chmodSync(path.join(bin, 'pos-agent'), 0o755);

    const units = path.join(root, 'usr', 'lib', 'systemd', 'system');
    mkdirSync(units, { recursive: true });
    copyFileSync(
      path.join(repo, 'packaging', 'pos-agent.service'),
      path.join(units, 'pos-agent.service'),
    );

    const { USB_FINGERPRINTS } = await import(
      pathToFileURL(path.join(app, 'dist', 'drivers', 'discovery', 'usb-fingerprints.js')).href
    );
    const rules = path.join(root, 'usr', 'lib', 'udev', 'rules.d');
    mkdirSync(rules, { recursive: true });
    writeFileSync(path.join(rules, '60-pos-agent.rules'), udevRules(USB_FINGERPRINTS));

    const doc = path.join(root, 'usr', 'share', 'doc', 'pos-agent');
    mkdirSync(doc, { recursive: true });
    for (const file of ['docs/field-guide.md', 'README.md'])
      if (existsSync(path.join(repo, file)))
        copyFileSync(path.join(repo, file), path.join(doc, path.basename(file)));

    const debian = path.join(root, 'DEBIAN');
    mkdirSync(debian);
    const control = readFileSync(path.join(repo, 'packaging', 'debian', 'control.in'), 'utf8')
      .replace('@VERSION@', pkg.version)
      .replace('@ARCH@', arch)
      .replace('@SIZE@', String(duKiB(root)));
    writeFileSync(path.join(debian, 'control'), control);
    for (const script of ['postinst', 'prerm', 'postrm']) {
      copyFileSync(path.join(repo, 'packaging', 'debian', script), path.join(debian, script));
      chmodSync(path.join(debian, script), 0o755);
    }

    mkdirSync(options.out, { recursive: true });
    const deb = path.join(options.out, `pos-agent_${pkg.version}_${arch}.deb`);
    execFileSync(
      'dpkg-deb',
      ['--root-owner-group', `-Z${options.compression}`, '--build', root, deb],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    console.log(`package: ${modules} production packages, ${duKiB(root)} KiB installed`);
    console.log(deb);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

await main();
