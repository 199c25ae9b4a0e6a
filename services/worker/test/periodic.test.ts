/**
 * The worker's periodic tasks: never overlapping themselves, one worker at a time under a Redis lock,
 * failures logged and retried on the next tick, and a run that stalls (a Redis command lost in a
 * failover, retried forever) no longer stopping its task for good.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { deleteKeysMatching } from '@dropgate/redis';
import { rand } from '@dropgate/testkit';
import { periodicTask } from '../src/periodic.ts';

const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
const prefix = `{periodic-${rand(8)}}`;
afterAll(async () => {
  await deleteKeysMatching(redis, `${prefix}:*`);
  redis.disconnect();
});

function logger() {
  const lines: string[] = [];
  return { lines, log: { warn: (_fields: object, message: string) => void lines.push(message) } };
}

/** A run the test finishes when it wants. */
function controlled() {
  const finishers: (() => void)[] = [];
  let started = 0;
  const run = () => new Promise<void>((resolve) => { started++; finishers.push(resolve); });
  return { run, started: () => started, finish: (i: number) => finishers[i]!() };
}

/** A 'sweep' task over a controlled run, a logger and a clock the test moves (`clock.t`, ms). */
function controlledSweep() {
  const { log, lines } = logger();
  const c = controlled();
  const clock = { t: 0 };
  const tick = periodicTask('sweep', c.run, { log, stallMs: 60_000, now: () => clock.t });
  return { lines, c, clock, tick };
}

describe('periodicTask', () => {
  it('never overlaps itself: a tick while a run is in progress does nothing', async () => {
    const { lines, c, clock, tick } = controlledSweep();
    const first = tick();
    clock.t = 30_000;
    await tick();
    await tick();
    expect(c.started()).toBe(1);
    c.finish(0);
    await first;
    const second = tick();
    expect(c.started()).toBe(2);
    c.finish(1);
    await second;
    expect(lines).toEqual([]);
  });

  it('a run stalled past stallMs no longer blocks the task: it is reported and a new run starts; finishing late, it leaves the new run\'s mark', async () => {
    const { lines, c, clock, tick } = controlledSweep();
    const stalled = tick();
    clock.t = 61_000;
    const fresh = tick();
    expect(c.started()).toBe(2);
    expect(lines).toEqual(['sweep has not finished in 61 s; starting it again']);
    // The stalled run finishes late: the new one is still in progress, so a tick still does nothing.
    c.finish(0);
    await stalled;
    clock.t = 62_000;
    await tick();
    expect(c.started()).toBe(2);
    c.finish(1);
    await fresh;
    await Promise.all([tick(), Promise.resolve().then(() => c.finish(2))]);
    expect(c.started()).toBe(3);
  });

  it('logs a failure and runs again on the next tick', async () => {
    const { log, lines } = logger();
    let calls = 0;
    const tick = periodicTask('guard', async () => { calls++; if (calls === 1) throw new Error('Redis went away'); }, { log, stallMs: 60_000 });
    await tick();
    await tick();
    expect(calls).toBe(2);
    expect(lines).toEqual(['guard failed']);
  });

  it('with a lock, runs in one worker at a time (real Redis, SET NX PX)', async () => {
    const { log } = logger();
    const take = async (key: string, ms: number) => (await redis.set(`${prefix}:${key}`, 'x', 'PX', ms, 'NX')) === 'OK';
    let runs = 0;
    const lock = { take, key: 'sweep-lock', ms: 60_000 };
    const a = periodicTask('sweep', async () => { runs++; }, { log, stallMs: 60_000, lock });
    const b = periodicTask('sweep', async () => { runs++; }, { log, stallMs: 60_000, lock });
    await Promise.all([a(), b()]);
    await a();
    expect(runs).toBe(1);
    expect(await redis.pttl(`${prefix}:sweep-lock`)).toBeGreaterThan(0);
    await redis.del(`${prefix}:sweep-lock`);
    await b();
    expect(runs).toBe(2);
  });
});
