/**
 * The drop's CPU accounting (cpu.ts): Postgres is measured per server (by postmaster), so a server
 * that starts or stops between the drop's two samples (another test's private Postgres, in a full
 * run) is left out of the difference instead of taking its CPU with it: summed as one, a private
 * server stopping during a drop made Postgres's share negative, reported as 0.
 */
import { describe, expect, it } from 'vitest';
import { cpuUsed, type CpuSample } from '../src/cpu.ts';

const sample = (postgres: Record<number, number> | null, at = 0): CpuSample => ({ drop: at, simulator: at, api: at, worker: at, redis: at, postgres });

describe('cpuUsed', () => {
  it('counts each Postgres server present at both samples, leaving out one that stopped or started between them', () => {
    const start = sample({ 100: 5, 200: 3 });
    const end = sample({ 100: 6.5, 300: 9 }, 1);
    const used = cpuUsed(start, end, 2);
    expect(used.postgres).toBeCloseTo(1.5, 6);
    expect(used).toMatchObject({ drop: 1, simulator: 1, api: 1, worker: 1, redis: 1, buyers: 2 });
    expect(cpuUsed(sample(null), sample({ 100: 1 }), 0).postgres).toBeNull();
  });
});
