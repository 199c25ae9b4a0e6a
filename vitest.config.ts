import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import DropgateSequencer from './test/sequencer.ts';
import { chooseTestWorkers } from './test/test-workers.ts';

// Node processes the tests start (the API, the worker, `npm start`, the simulator, drops) keep the
// compiled code of the modules they load here, and so do the test workers for what they import
// natively: a process loading the stack again spends about a third less CPU on it.
process.env['NODE_COMPILE_CACHE'] ??= fileURLToPath(new URL('./node_modules/.cache/node-compile/', import.meta.url));

const workers = chooseTestWorkers();
// One line before the run, so a slow run's log says how many files ran at once and why.
if (!process.env['VITEST_WORKER_ID']) console.log(`vitest: ${workers.workers} test files at once (${workers.reason})`);

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Every test file owns its namespace (its own database, event ids, queue prefix, ports), so files
    // run in parallel; how many at once is a measure of the machine (test/test-workers.ts: seven on a
    // fast one, four on a slow or busy one; TEST_WORKERS overrides). A worker runs its files one after
    // another in one process (no isolation), importing the stack once instead of once per file; no
    // test file relies on a fresh module state.
    pool: 'forks',
    maxWorkers: workers.workers,
    isolate: false,
    globalSetup: ['test/global-setup.ts'],
    // On a fresh clone (no timings yet) the longest rehearsals start first, not last.
    sequence: { sequencer: DropgateSequencer },
  },
});
