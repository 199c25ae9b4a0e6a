/**
 * How many test files vitest runs at once. The suite is a mix of files that work (CPU) and rehearsals
 * that mostly wait (hold TTLs, webhook delays, child processes starting); files beside a rehearsal
 * fill its waits, until the two cores are full. Where that point lies is a property of the machine,
 * and VMs of this project's kind have differed by four times from one day to the next:
 *
 * - 2026-12-01 (afternoon), a fast VM (a fixed piece of work below: 27-31 ms; `redis-benchmark` GET
 *   93,000-96,000/s; the suite about 110 core-seconds): seven files at once took 72 s with the cores
 *   three quarters busy, four took 111 s.
 * - 2026-11-30, a VM about twice as slow (the suite 170-300 core-seconds): seven at once took 86-113 s,
 *   four 116-136 s, every file green in both.
 * - 2026-12-01 (morning), a VM about four times as slow (`redis-benchmark` GET 45,000/s, the suite
 *   450-650 core-seconds): seven at once starved the rehearsals' in-process stacks past their
 *   deadlines (drops not settled in 45 s, hooks over 60 s); four at once took 239 s, every file green.
 *
 * So: seven at once when a fixed piece of CPU work (hashing 16 MiB and a tight arithmetic loop, as the
 * suite's own work is mostly JavaScript and hashing, the median of five rounds) takes at most
 * FAST_MS — a machine at most about 1.7 times slower than the fast VM, where seven at once has held —
 * and four otherwise. The measure is wall time, so a machine busy with other work counts as slower.
 * `TEST_WORKERS=n` sets the number outright.
 */
import { createHash } from 'node:crypto';

/** Files at once on a machine that passes the measure, and on any other. */
export const FAST_WORKERS = 7;
export const SLOW_WORKERS = 4;
/** The measure's median on the fast VM was 27-31 ms; twice as slow (60 ms) is past where seven held. */
export const FAST_MS = 50;

/** Wall time of one round of the fixed work, in milliseconds. */
function round(): number {
  const start = process.hrtime.bigint();
  const block = Buffer.alloc(1 << 20, 7);
  for (let i = 0; i < 16; i += 1) createHash('sha256').update(block).digest();
  let x = 0;
  for (let i = 0; i < 5_000_000; i += 1) x = (x * 31 + i) % 1_000_003;
  if (x < 0) throw new Error('unreachable'); // keeps the loop from being optimised away
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Median wall time of five rounds of the fixed work (about 150 ms on the fast VM). */
export function measureMachine(): number {
  const rounds = Array.from({ length: 5 }, round).sort((a, b) => a - b);
  return rounds[2]!;
}

export interface WorkerChoice {
  workers: number;
  /** Why: the override, or the measure and the rule it met. */
  reason: string;
}

/** TEST_WORKERS when set to a positive integer; otherwise from the machine's measure. */
export function chooseTestWorkers(env: NodeJS.ProcessEnv = process.env, measure: () => number = measureMachine): WorkerChoice {
  const set = env['TEST_WORKERS'];
  if (set !== undefined && set !== '') {
    const n = Number(set);
    if (Number.isInteger(n) && n > 0) return { workers: n, reason: `TEST_WORKERS=${set}` };
    throw new Error(`TEST_WORKERS must be a positive integer (got ${JSON.stringify(set)})`);
  }
  const ms = measure();
  return ms <= FAST_MS
    ? { workers: FAST_WORKERS, reason: `the machine's measure took ${ms.toFixed(0)} ms (at most ${FAST_MS}: fast)` }
    : { workers: SLOW_WORKERS, reason: `the machine's measure took ${ms.toFixed(0)} ms (over ${FAST_MS}: slow or busy)` };
}
