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
    // run in parallel, three at once: most of a stack test's time is waiting (hold TTLs, webhook
    // delays, child processes starting), which two workers left as idle CPU (a third of it). Three keep
    // both cores busy; four were no faster here (196 s against 203 s) and only crowded the machine. A
    // worker runs its files one after another in one process (no isolation), importing the stack once
    // instead of once per file; no test file relies on a fresh module state.
    pool: 'forks',
    maxWorkers: 3,
    isolate: false,
    globalSetup: ['test/global-setup.ts'],
    // On a fresh clone (no timings yet) the longest rehearsals start first, not last.
    sequence: { sequencer: DropgateSequencer },
  },
});
