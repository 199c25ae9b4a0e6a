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
    // run in parallel, four at once: most of a stack test's time is waiting (hold TTLs, webhook
    // delays, child processes starting). Measured here on 2026-11-30, the same suite: three at once
    // 173 s with the machine 67 % busy, four 138 s (83 % busy, at most 58 Postgres connections of
    // 100), five 147 s (the extra CPU contention outweighs the waiting it overlaps). A worker runs its
    // files one after another in one process (no isolation), importing the stack once instead of once
    // per file; no test file relies on a fresh module state.
    pool: 'forks',
    maxWorkers: 4,
    isolate: false,
    globalSetup: ['test/global-setup.ts'],
    // On a fresh clone (no timings yet) the longest rehearsals start first, not last.
    sequence: { sequencer: DropgateSequencer },
  },
});
