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
 * - 2026-12-01 (afternoon, another VM): the CPU measure below took 35-37 ms (fast), but its round
 *   trips were slow (`redis-benchmark` GET 32,000-47,000/s): seven at once failed a different
 *   rehearsal in each of two runs (a drop not settled, a worker restart past 60 s, a failover's setup
 *   command timing out, a deadline answered 1.2 s late), each green alone. The suite's waits are round
 *   trips to Redis, Postgres and child processes: a CPU measure alone misses a VM whose every system
 *   call is slow.
 *
 * So: seven at once when a fixed piece of CPU work (hashing 16 MiB and a tight arithmetic loop, as the
 * suite's own work is mostly JavaScript and hashing, the median of five rounds) takes at most
 * FAST_MS — a machine at most about 1.7 times slower than the fast VM, where seven at once has held —
 * and the local Redis answers at least FAST_REDIS_RPS GETs a second to `redis-benchmark` (50
 * connections; not counted when it cannot run), and four otherwise. The measures are wall time, so a
 * machine busy with other work counts as slower. `TEST_WORKERS=n` sets the number outright.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';

/** Files at once on a machine that passes the measure, and on any other. */
export const FAST_WORKERS = 7;
export const SLOW_WORKERS = 4;
/** The measure's median on the fast VM was 27-31 ms; twice as slow (60 ms) is past where seven held. */
export const FAST_MS = 50;

/** The fast VM's Redis answered 93,000-96,000 GETs a second; the VMs where seven at once failed, at most 56,000. */
export const FAST_REDIS_RPS = 70_000;

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

/**
 * GETs a second the tests' Redis (TEST_REDIS_URL, default the local one) answers to `redis-benchmark`
 * (30,000 requests, 50 connections, about half a second; 0 when it takes over 10 s); null when no
 * Redis answers a PING there or the benchmark cannot run.
 */
export function measureRedis(env: NodeJS.ProcessEnv = process.env): number | null {
  const url = new URL(env['TEST_REDIS_URL'] || 'redis://127.0.0.1:6379');
  const at = ['-h', url.hostname, '-p', url.port || '6379'];
  const ping = spawnSync('redis-cli', [...at, 'ping'], { encoding: 'utf8', timeout: 3_000 });
  if (ping.status !== 0 || !String(ping.stdout).includes('PONG')) return null;
  const run = spawnSync('redis-benchmark', [...at, '-t', 'get', '-n', '30000', '-c', '50', '--csv'], { encoding: 'utf8', timeout: 10_000 });
  if (run.error && (run.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return 0;
  if (run.status !== 0 || typeof run.stdout !== 'string') return null;
  const line = run.stdout.split('\n').find((l) => l.startsWith('"GET"'));
  const rps = line ? Number(line.split(',')[1]?.replace(/"/g, '')) : NaN;
  return Number.isFinite(rps) && rps > 0 ? rps : null;
}

export interface WorkerChoice {
  workers: number;
  /** Why: the override, or the measure and the rule it met. */
  reason: string;
}

/** TEST_WORKERS when set to a positive integer; otherwise from the machine's measures. */
export function chooseTestWorkers(
  env: NodeJS.ProcessEnv = process.env, measure: () => number = measureMachine, redisRps: () => number | null = () => measureRedis(env),
): WorkerChoice {
  const set = env['TEST_WORKERS'];
  if (set !== undefined && set !== '') {
    const n = Number(set);
    if (Number.isInteger(n) && n > 0) return { workers: n, reason: `TEST_WORKERS=${set}` };
    throw new Error(`TEST_WORKERS must be a positive integer (got ${JSON.stringify(set)})`);
  }
  const ms = measure();
  if (ms > FAST_MS) return { workers: SLOW_WORKERS, reason: `the machine's measure took ${ms.toFixed(0)} ms (over ${FAST_MS}: slow or busy)` };
  const rps = redisRps();
  const redis = rps === null ? 'Redis not measured' : `Redis answered ${Math.round(rps)} GETs a second`;
  return rps !== null && rps < FAST_REDIS_RPS
    ? { workers: SLOW_WORKERS, reason: `the machine's measure took ${ms.toFixed(0)} ms, but ${redis} (under ${FAST_REDIS_RPS}: slow round trips)` }
    : { workers: FAST_WORKERS, reason: `the machine's measure took ${ms.toFixed(0)} ms (at most ${FAST_MS}: fast), ${redis}` };
}
