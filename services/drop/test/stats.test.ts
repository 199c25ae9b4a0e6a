/**
 * The report's time series at the size of a 100,000-buyer drop: more confirms than a function call
 * takes arguments (a drop of that size crashed computing its latency chart after an 11-minute run).
 */
import { describe, expect, it } from 'vitest';
import { bucketize } from '../src/index.ts';

describe('bucketize', () => {
  it('takes 300,000 samples', () => {
    const samples = Array.from({ length: 300_000 }, (_, i) => ({ t: i, latencyMs: i % 100, approved: i % 5 === 0 }));
    const buckets = bucketize(samples, 5_000);
    expect(buckets).toHaveLength(60);
    expect(buckets.reduce((n, b) => n + b.approved + b.refused, 0)).toBe(300_000);
    expect(buckets[59]!.t).toBe(295_000);
  });
});
