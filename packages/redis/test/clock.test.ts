/**
 * RedisClock: every process decides by Redis's clock (attack round 20B: API processes whose hosts'
 * clocks were 40 s apart sold before the opening, showed the shuffle seed early and approved holds
 * already expired). A host clock that is off is corrected by the offset measured against Redis's TIME.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { RedisClock } from '@dropgate/redis';
import { startPrivateRedis } from '@dropgate/testkit';

const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
afterAll(() => redis.disconnect());

async function redisNow(): Promise<number> {
  const [s, us] = (await redis.time()).map(Number) as [number, number];
  return s * 1000 + us / 1000;
}

describe('RedisClock', () => {
  it('takes the offset of a host clock 40 s fast, or 40 s slow, and decides by Redis\'s clock', async () => {
    for (const skew of [40_000, -40_000, 0]) {
      const seen: number[] = [];
      const clock = new RedisClock(redis, { key: 'clock-test', hostNow: () => Date.now() + skew, onResult: (c) => seen.push(c.offsetMs) });
      // Before any measurement the host's clock is all it has.
      expect(Math.abs(clock.now() - (Date.now() + skew))).toBeLessThan(50);
      const m = await clock.measure();
      expect(m).not.toBeNull();
      expect(m!.roundTripMs).toBeGreaterThanOrEqual(0);
      expect(Math.abs(m!.offsetMs + skew)).toBeLessThan(250);
      expect(seen).toEqual([m!.offsetMs]);
      // Redis and this machine share a clock here: corrected, the clock reads Redis's time.
      const before = await redisNow();
      const now = clock.now();
      const after = await redisNow();
      expect(now).toBeGreaterThanOrEqual(Math.floor(before) - 250);
      expect(now).toBeLessThanOrEqual(Math.ceil(after) + 250);
    }
  });

  it('by default reads the monotonic clock: a step of the host\'s wall clock does not move its decisions (attack round 21B)', async () => {
    // The host's wall clock, under the test's control from here (the monotonic clock is not).
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      const clock = new RedisClock(redis, { key: 'clock-test' });
      expect(await clock.measure()).not.toBeNull();
      // The faked wall clock stood still while Redis was asked (seconds on a loaded machine): right again.
      vi.setSystemTime(vi.getRealSystemTime());
      const before = clock.now();
      expect(Math.abs(clock.wallOffsetMs())).toBeLessThan(250);
      vi.setSystemTime(Date.now() + 40_000);
      expect(Math.abs(clock.now() - before)).toBeLessThan(1_000);
      // What the offset gauge shows: the wall clock 40 s ahead of Redis's (the decisions are not).
      expect(Math.abs(clock.wallOffsetMs() + 40_000)).toBeLessThan(1_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes no sample across a step back of the host clock (a negative round trip), and says when it is synced', async () => {
    let back = 0;
    let stepping = false;
    // While stepping, each reading is 30 s before the last: every round trip looks negative.
    const clock = new RedisClock(redis, { key: 'clock-test', hostNow: () => Date.now() - (stepping ? (back += 30_000) : back) });
    expect(clock.everMeasured).toBe(false);
    expect(clock.synced).toBe(false);
    expect(await clock.measure()).not.toBeNull();
    expect(clock.everMeasured).toBe(true);
    expect(clock.synced).toBe(true);
    const kept = clock.offsetMs;
    stepping = true;
    expect(await clock.measure()).toBeNull();
    expect(clock.offsetMs).toBe(kept);
    // The last measurement is now far behind the host clock's reading: not synced any more.
    stepping = false;
    back = -120_000;
    expect(clock.synced).toBe(false);
  });

  it('measures while Redis refuses writes (out of memory)', async () => {
    const server = await startPrivateRedis();
    const client = new Redis(server.url);
    try {
      await client.config('SET', 'maxmemory', '1');
      await expect(client.set('k', 'v')).rejects.toThrow(/OOM/);
      const clock = new RedisClock(client, { key: 'clock-test', hostNow: () => Date.now() - 5_000 });
      const m = await clock.measure();
      expect(m).not.toBeNull();
      expect(Math.abs(m!.offsetMs - 5_000)).toBeLessThan(250);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });

  it('does not take an offset from slow round trips (a paused Redis, a stalled process): the last one stays', async () => {
    let slow = false;
    let calls = 0;
    // While `slow`, every reading of the host's clock is 200 ms after the last: each round trip looks 200 ms long.
    const clock = new RedisClock(redis, { key: 'clock-test', hostNow: () => Date.now() + 3_000 + (slow ? ++calls * 200 : 0) });
    expect(await clock.measure()).not.toBeNull();
    const kept = clock.offsetMs;
    expect(Math.abs(kept + 3_000)).toBeLessThan(250);
    slow = true;
    expect(await clock.measure()).toBeNull();
    expect(calls).toBeGreaterThanOrEqual(10);
    expect(clock.offsetMs).toBe(kept);
  });

  it('keeps its last offset when Redis does not answer, and measures again on its timer until stopped', async () => {
    const other = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    const skewed = new RedisClock(other, { key: 'clock-test', hostNow: () => Date.now() + 10_000, everyMs: 20 });
    await other.connect();
    let measured = 0;
    const counting = new RedisClock(redis, { key: 'clock-test', everyMs: 20, onResult: (c) => { if (c.synced) measured++; } });
    await counting.start();
    await skewed.start();
    expect(Math.abs(skewed.offsetMs + 10_000)).toBeLessThan(250);
    const kept = skewed.offsetMs;
    other.disconnect();
    expect(await skewed.measure()).toBeNull();
    expect(skewed.offsetMs).toBe(kept);
    skewed.stop();
    const start = measured;
    await new Promise<void>((resolve) => { const t = setInterval(() => { if (measured >= start + 2) { clearInterval(t); resolve(); } }, 5); });
    counting.stop();
    const stopped = measured;
    await new Promise((r) => setTimeout(r, 100));
    expect(measured).toBeLessThanOrEqual(stopped + 1);
  });
});
