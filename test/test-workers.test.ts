import { describe, expect, it } from 'vitest';
import { FAST_MS, FAST_WORKERS, SLOW_WORKERS, chooseTestWorkers, measureMachine } from './test-workers.ts';

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
    expect(chooseTestWorkers({}, () => FAST_MS - 20).workers).toBe(FAST_WORKERS);
    expect(chooseTestWorkers({}, () => FAST_MS).workers).toBe(FAST_WORKERS);
    const slow = chooseTestWorkers({ TEST_WORKERS: '' }, () => FAST_MS + 1);
    expect(slow.workers).toBe(SLOW_WORKERS);
    expect(slow.reason).toMatch(/slow or busy/);
    expect(SLOW_WORKERS).toBeLessThan(FAST_WORKERS);
  });

  it('measures the machine as a positive wall time', () => {
    const ms = measureMachine();
    expect(Number.isFinite(ms)).toBe(true);
    expect(ms).toBeGreaterThan(0);
  });
});
