// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * architecture.md §1, enforced: which folder may import which folder, and which file may import the
 * hardware, MQTT and SQLite libraries. ESLint replaces (does not merge) a rule's options when two
 * config objects match one file, so each block below lists everything its files may not import.
 */
const folders = {
  agent: '**/agent/**',
  drivers: '**/drivers/**',
  storeForward: '**/store-forward/**',
  cloudSync: '**/cloud-sync/**',
  simulator: '**/simulator/**',
};
const libs = {
  serial: {
    group: ['serialport', '@serialport/*'],
    message: 'only drivers/transport/ imports serialport (architecture.md §1)',
  },
  hid: {
    group: ['node-hid'],
    message: 'only drivers/transport/ imports node-hid (architecture.md §1)',
  },
  mqtt: {
    group: ['mqtt'],
    message: 'only cloud-sync/mqtt-session.ts imports mqtt (architecture.md §1)',
  },
  sqlite: {
    group: ['better-sqlite3'],
    message: 'only store-forward/ imports better-sqlite3 (architecture.md §1)',
  },
};
const notFolders = (names, message) => ({ group: names.map((n) => folders[n]), message });
const restrict = (files, patterns, ignores = []) => ({
  files,
  ...(ignores.length > 0 ? { ignores } : {}),
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  restrict(['agent/**/*.ts', 'simulator/**/*.ts'], [libs.serial, libs.hid, libs.mqtt, libs.sqlite]),
  restrict(
    ['simulator/**/*.ts'],
    [
      notFolders(
        ['agent', 'storeForward'],
        'simulator/ may use driver codecs and cloud-sync schemas only (architecture.md §1)',
      ),
      libs.serial,
      libs.hid,
      libs.mqtt,
      libs.sqlite,
    ],
  ),
  // The cloud core simulator's ledger stands in for the cloud's own database (issue 10): this one
  // file may import better-sqlite3; nothing else in simulator/ may.
  restrict(
    ['simulator/cloud-ledger.ts'],
    [
      notFolders(
        ['agent', 'storeForward'],
        'simulator/ may use driver codecs and cloud-sync schemas only (architecture.md §1)',
      ),
      libs.serial,
      libs.hid,
      libs.mqtt,
    ],
  ),
  restrict(
    ['drivers/**/*.ts'],
    [
      notFolders(
        ['agent', 'storeForward', 'cloudSync', 'simulator'],
        'drivers/ imports only common/ (architecture.md §1)',
      ),
      libs.serial,
      libs.hid,
      libs.mqtt,
      libs.sqlite,
    ],
    ['drivers/transport/**', 'drivers/readers/**'],
  ),
  // The transports own the hardware libraries.
  restrict(
    ['drivers/transport/**/*.ts'],
    [
      notFolders(
        ['agent', 'storeForward', 'cloudSync', 'simulator'],
        'drivers/ imports only common/ (architecture.md §1)',
      ),
      libs.mqtt,
      libs.sqlite,
    ],
  ),
  // Serial card readers frame lines with @serialport/parser-readline (architecture.md §3.3), a pure parser.
  restrict(
    ['drivers/readers/**/*.ts'],
    [
      notFolders(
        ['agent', 'storeForward', 'cloudSync', 'simulator'],
        'drivers/ imports only common/ (architecture.md §1)',
      ),
      {
        group: ['serialport', '@serialport/*', '!@serialport/parser-readline'],
        message: 'only drivers/transport/ imports serialport (architecture.md §1)',
      },
      libs.hid,
      libs.mqtt,
      libs.sqlite,
    ],
  ),
  restrict(
    ['store-forward/**/*.ts'],
    [
      notFolders(
        ['agent', 'drivers', 'cloudSync', 'simulator'],
        'store-forward/ imports only common/ (architecture.md §1)',
      ),
      libs.serial,
      libs.hid,
      libs.mqtt,
    ],
  ),
  restrict(
    ['cloud-sync/**/*.ts'],
    [
      notFolders(
        ['agent', 'drivers', 'storeForward', 'simulator'],
        'cloud-sync/ imports only common/ (architecture.md §1)',
      ),
      libs.serial,
      libs.hid,
      libs.mqtt,
      libs.sqlite,
    ],
    ['cloud-sync/mqtt-session.ts'],
  ),
  restrict(
    ['cloud-sync/mqtt-session.ts'],
    [
      notFolders(
        ['agent', 'drivers', 'storeForward', 'simulator'],
        'cloud-sync/ imports only common/ (architecture.md §1)',
      ),
      libs.serial,
      libs.hid,
      libs.sqlite,
    ],
  ),
  restrict(
    ['common/**/*.ts'],
    [
      notFolders(
        ['agent', 'drivers', 'storeForward', 'cloudSync', 'simulator'],
        'common/ is a leaf',
      ),
      libs.serial,
      libs.hid,
      libs.mqtt,
      libs.sqlite,
    ],
  ),
);
