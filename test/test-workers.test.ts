import { describe, expect, it } from 'vitest';
import { FAST_MS, FAST_REDIS_RPS, FAST_WORKERS, SLOW_WORKERS, chooseTestWorkers, measureMachine, measureRedis } from './test-workers.ts';

describe('how many test files run at once', () => {
  it('takes TEST_WORKERS outright, without measuring', () => {
    const never = (): number => { throw new Error('measured'); };
    expect(chooseTestWorkers({ TEST_WORKERS: '3' }, never)).toEqual({ workers: 3, reason: 'TEST_WORKERS=3' });
  });

  it('refuses a TEST_WORKERS that is not a positive integer, naming it', () => {
    for (const bad of ['0', '-2', '2.5', 'many']) {
      expect(() => chooseTestWorkers({ TEST_WORKERS: bad }, () => 1)).toThrow(/TEST_WORKERS must be a positive integer/);
    }
  });

  it('runs more files at once on a machine whose measure is fast, fewer on a slow or busy one', () => {
    const quick = () => FAST_REDIS_RPS + 1;
    expect(chooseTestWorkers({}, () => FAST_MS - 20, quick).workers).toBe(FAST_WORKERS);
    expect(chooseTestWorkers({}, () => FAST_MS, quick).workers).toBe(FAST_WORKERS);
    const never = (): number => { throw new Error('measured Redis'); };
    const slow = chooseTestWorkers({ TEST_WORKERS: '' }, () => FAST_MS + 1, never);
    expect(slow.workers).toBe(SLOW_WORKERS);
    expect(slow.reason).toMatch(/slow or busy/);
    expect(SLOW_WORKERS).toBeLessThan(FAST_WORKERS);
  });

  it('runs fewer when Redis answers slowly though the CPU measure is fast; a Redis it cannot measure does not count', () => {
    const slowTrips = chooseTestWorkers({}, () => FAST_MS - 20, () => FAST_REDIS_RPS - 1);
    expect(slowTrips.workers).toBe(SLOW_WORKERS);
    expect(slowTrips.reason).toMatch(/slow round trips/);
    expect(chooseTestWorkers({}, () => FAST_MS - 20, () => FAST_REDIS_RPS).workers).toBe(FAST_WORKERS);
    const unmeasured = chooseTestWorkers({}, () => FAST_MS - 20, () => null);
    expect(unmeasured.workers).toBe(FAST_WORKERS);
    expect(unmeasured.reason).toMatch(/Redis not measured/);
  });

  it('measures the local Redis with redis-benchmark, and nothing where no Redis answers', () => {
    const rps = measureRedis({});
    expect(rps).not.toBeNull();
    expect(rps!).toBeGreaterThan(1_000);
    expect(measureRedis({ TEST_REDIS_URL: 'redis://127.0.0.1:9' })).toBeNull();
  });

  it('measures the machine as a positive wall time', () => {
    const ms = measureMachine();
    expect(Number.isFinite(ms)).toBe(true);
    expect(ms).toBeGreaterThan(0);
  });
});
