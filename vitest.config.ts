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
    // run in parallel, seven at once. The rehearsals (drops, chaos seeds) mostly wait (hold TTLs,
    // webhook delays, child processes starting): alone, the chaos seeds use 9 core-seconds in 43 s.
    // Running more files beside them fills those waits with other files' work until both cores are
    // busy. Measured here on 2026-12-01, the same suite (about 170 core-seconds of work): four at
    // once 116-136 s with the machine 73 % busy, five 104 s, six 91-102 s, seven 86 s (97 % busy; at
    // most 70 Postgres connections of 100); later that day the suite took 205-216 core-seconds and
    // 103-113 s. More than seven cannot help: the CPU is the bound. A
    // worker runs its files one after another in one process (no isolation), importing the stack
    // once instead of once per file; no test file relies on a fresh module state.
    pool: 'forks',
    maxWorkers: 7,
    isolate: false,
    globalSetup: ['test/global-setup.ts'],
    // On a fresh clone (no timings yet) the longest rehearsals start first, not last.
    sequence: { sequencer: DropgateSequencer },
  },
});
