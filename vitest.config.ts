import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import DropgateSequencer from './test/sequencer.ts';

// Node processes the tests start (the API, the worker, `npm start`, the simulator, drops) keep the
// compiled code of the modules they load here, and so do the test workers for what they import
// natively: a process loading the stack again spends about a third less CPU on it.
process.env['NODE_COMPILE_CACHE'] ??= fileURLToPath(new URL('./node_modules/.cache/node-compile/', import.meta.url));

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Every test file owns its namespace (its own database, event ids, queue prefix, ports), so files
    // run in parallel. The rehearsals (drops, chaos seeds) mostly wait (hold TTLs, webhook delays, child
    // processes starting), and files beside them fill those waits. How many at once is a measure of
    // the machine: on a fast one (2026-11-30, the suite about 170-300 core-seconds) seven at once took
    // 86-113 s and four 116-136 s; on a machine of the same kind three times slower (2026-12-01,
    // redis-benchmark GET 45,000/s, the suite 450-650 core-seconds), seven at once took 267-359 s and
    // starved the rehearsals' in-process stacks past their deadlines (drops not settled in 45 s, hooks
    // over 60 s), while four at once took 239 s with every file green and the CPU 93 % busy: less
    // waiting polled, fewer context switches. Four is the setting that holds on both; TEST_WORKERS
    // overrides it. A worker runs its files one after another in one process (no isolation),
    // importing the stack once instead of once per file; no test file relies on a fresh module state.
    pool: 'forks',
    maxWorkers: Math.max(1, Number.parseInt(process.env['TEST_WORKERS'] ?? '', 10) || 4),
    isolate: false,
    globalSetup: ['test/global-setup.ts'],
    // On a fresh clone (no timings yet) the longest rehearsals start first, not last.
    sequence: { sequencer: DropgateSequencer },
  },
});
