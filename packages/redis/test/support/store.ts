/**
 * The Redis tests' shared setup: a client of the test Redis and a HoldStore on it, and the events a
 * file loads (pushed to `created`) deleted after its tests, with the client closed.
 */
import { afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { HoldStore } from '@dropgate/redis';

export function holdStoreFixture(): { redis: Redis; store: HoldStore; created: string[] } {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  const store = new HoldStore(redis);
  const created: string[] = [];
  afterAll(async () => {
    for (const id of created) await store.deleteEvent(id);
    redis.disconnect();
  });
  return { redis, store, created };
}
