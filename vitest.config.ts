import { defineConfig } from 'vitest/config';

/**
 * Test files that change process-wide state other files would see if they shared a process:
 * module mocks, fake global timers, spies on prototypes or process streams, process event
 * handlers, environment variables, or a scan of the process's own memory. They run isolated
 * (a fresh module graph per file).
 */
const ISOLATED = [
  'test/agent/fatal-handler.test.ts',
  'test/agent/silent-partition.test.ts',
  'test/agent/sim-cli-errors.test.ts',
  'test/cloud-sync/commands.test.ts',
  'test/cloud-sync/mqtt-session.test.ts',
  'test/drivers/link-machine.test.ts',
  'test/drivers/pin-pad-cancel.test.ts',
  // Failed once in a shared run (up/auth not seen by the tap; cause not established yet).
  'test/e2e/readers-sred.e2e.test.ts',
  'test/fuzz/parsers.fuzz.test.ts',
  'test/memory/card-data-memory.test.ts',
  'test/store-forward/commit-durability.test.ts',
];

/**
 * `POS_TEST_SHARED_WORKERS=1` (opt-in, issue 15): the files not in {@link ISOLATED} share each
 * worker's module graph instead of importing agent/ (fastify, mqtt, SQLite, zod) again per file,
 * which is more than a third of the suite's time; measured on test/drivers + test/cloud-sync,
 * 116 s -> 66 s wall; test/agent + test/e2e + the rest, 697 s -> 338 s on the loaded machine. Not
 * the default until a full run has shown no file depends on a fresh process.
 */
const shared = process.env.POS_TEST_SHARED_WORKERS === '1';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests that spawn Mosquitto and socat bind loopback ports and ptys; two workers match the
    // two-core machines CI runs on. Forks, not threads: the native modules (better-sqlite3,
    // serialport, node-hid) and the tests' child processes want a process of their own.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1, isolate: !shared } },
    ...(shared
      ? {
          projects: [
            { extends: true, test: { name: 'isolated', include: ISOLATED, isolate: true } },
            {
              extends: true,
              test: {
                name: 'shared',
                include: ['test/**/*.test.ts'],
                exclude: ISOLATED,
                isolate: false,
              },
            },
          ],
        }
      : { include: ['test/**/*.test.ts'] }),
  },
});
