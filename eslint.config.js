// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Imports a folder may not make: DESIGN.md §1, the dependency direction. */
const layer = (files, patterns) => ({
  files,
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
  layer(
    ['drivers/**/*.ts'],
    [
      {
        group: ['**/agent/**', '**/store-forward/**', '**/cloud-sync/**', '**/simulator/**'],
        message: 'drivers/ imports only common/ (DESIGN §1).',
      },
      {
        group: ['mqtt', 'better-sqlite3'],
        message: 'drivers/ does not touch MQTT or SQLite (DESIGN §1).',
      },
    ],
  ),
  layer(
    ['store-forward/**/*.ts'],
    [
      {
        group: ['**/agent/**', '**/drivers/**', '**/cloud-sync/**', '**/simulator/**'],
        message: 'store-forward/ imports only common/ (DESIGN §1).',
      },
      {
        group: ['mqtt', 'serialport', '@serialport/*', 'node-hid'],
        message: 'store-forward/ does not touch devices or MQTT (DESIGN §1).',
      },
    ],
  ),
  layer(
    ['cloud-sync/**/*.ts'],
    [
      {
        group: ['**/agent/**', '**/drivers/**', '**/store-forward/**', '**/simulator/**'],
        message: 'cloud-sync/ imports only common/ (DESIGN §1).',
      },
      {
        group: ['better-sqlite3', 'serialport', '@serialport/*', 'node-hid'],
        message: 'cloud-sync/ does not touch devices or SQLite (DESIGN §1).',
      },
    ],
  ),
  layer(
    ['simulator/**/*.ts'],
    [
      {
        group: ['**/agent/**', '**/store-forward/**'],
        message: 'simulator/ may use driver codecs and cloud-sync schemas only (DESIGN §1).',
      },
      { group: ['better-sqlite3'], message: 'simulator/ does not touch SQLite (DESIGN §1).' },
    ],
  ),
  layer(
    ['common/**/*.ts'],
    [
      {
        group: [
          '**/agent/**',
          '**/drivers/**',
          '**/store-forward/**',
          '**/cloud-sync/**',
          '**/simulator/**',
        ],
        message: 'common/ is a leaf.',
      },
    ],
  ),
);
