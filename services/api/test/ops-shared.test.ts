/**
 * What the operations routes share between requests (ops.routes.ts `shared`): readiness checks and the
 * gauges a scrape reads from Redis and Postgres run once for every request that arrives while they
 * run (and, for the gauges, OPS_REUSE_MS after), so a flood of probes or scrapes costs one read at a time.
 */
import { describe, expect, it } from 'vitest';
import { shared } from '../src/routes/ops.routes.ts';

describe('shared', () => {
  it('runs once for the callers that arrive while it runs; with no reuse, a caller after it runs it again', async () => {
    let runs = 0;
    let release!: () => void;
    const work = shared(async () => { runs++; await new Promise<void>((r) => { release = r; }); return runs; }, 0);
    const callers = Array.from({ length: 50 }, () => work());
    expect(runs).toBe(1);
    release();
    expect(await Promise.all(callers)).toEqual(Array(50).fill(1));
    const after = work();
    expect(runs).toBe(2);
    release();
    expect(await after).toBe(2);
  });

  it('with reuse, answers from a run that started less than reuseMs ago; a failure is not kept', async () => {
    let now = 0;
    let runs = 0;
    let fail = true;
    const work = shared(async () => { runs++; if (fail) throw new Error('down'); return runs; }, 250, () => now);
    await expect(work()).rejects.toThrow('down');
    fail = false;
    expect(await work()).toBe(2);
    now = 249;
    expect(await work()).toBe(2);
    now = 251;
    expect(await work()).toBe(3);
  });
});
