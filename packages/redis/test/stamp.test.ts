/**
 * The replication stamp (issue 12): loading an event stamps its state with the replication id of the
 * primary it was written on; a state stamped by another history (what a failover leaves on the
 * promoted replica) reads as not known to be whole. The failover itself is tested on a real cluster
 * in services/drop/test/cluster.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { HoldStore, eventKeys } from '@dropgate/redis';
import { eventId } from '@dropgate/testkit';

let redis: Redis;
let store: HoldStore;
const created: string[] = [];
beforeAll(() => {
  redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  store = new HoldStore(redis);
});
afterAll(async () => {
  for (const id of created) await store.deleteEvent(id);
  redis.disconnect();
});

describe('replication stamp', () => {
  it('a loaded event is whole on its primary; stamped by another history it is not; missing and loading are told apart', async () => {
    const id = eventId('stamp');
    created.push(id);
    expect(await store.stampState(id)).toBe('missing');
    await store.loadEvent({ id, opensAt: 0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [{ id: 'p', capacity: 5 }], seats: [], orders: [] }, 'test');
    expect(await store.stampState(id)).toBe('whole');
    const replid = /master_replid:(\w+)/.exec(await redis.info('replication'))![1];
    expect(await redis.hget(eventKeys(id).meta, 'replid')).toBe(replid);
    // What a promoted replica holds: the old primary's id, not its own.
    await redis.hset(eventKeys(id).meta, 'replid', 'f'.repeat(40));
    expect(await store.stampState(id)).toBe('unstamped');
    await store.markLoading(id);
    expect(await store.stampState(id)).toBe('loading');
  });
});
