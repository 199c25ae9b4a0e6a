/**
 * Creating an event when Redis will not take its inventory (out of memory here; unreachable or its
 * lock held alike): Postgres has the event, so the answer is 503 NOT_READY saying so, not a 500; the
 * worker's guard loads it once Redis takes writes, and it goes on sale. On a private redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, http, startPrivateRedis, waitFor, type PrivateRedis } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';

let redis: PrivateRedis;
let stack: TestStack;
beforeAll(async () => {
  redis = await startPrivateRedis();
  stack = await startStack({ label: 'eventfull', redisUrl: redis.url });
});
afterAll(async () => {
  await stack?.redis.config('SET', 'maxmemory', '0').catch(() => undefined);
  await stack?.close();
  await redis?.stop();
});

describe('creating an event Redis has no room for', () => {
  it('answers 503 NOT_READY (the event saved), and the worker loads it once Redis takes writes', async () => {
    const id = eventId('full');
    const used = Number(/used_memory:(\d+)/.exec(await stack.redis.info('memory'))![1]);
    await stack.redis.config('SET', 'maxmemory-policy', 'noeviction');
    await stack.redis.config('SET', 'maxmemory', String(used + 512 * 1024));
    const body = { id, name: 'No room', seat_blocks: [{ section: 'A', rows: 100, seats_per_row: 200, price: 1_000 }] };
    const res = await http(stack.url, 'POST', '/admin/events', body, { admin: true });
    expect(res.status, res.text).toBe(503);
    expect(res.body).toMatchObject({ code: 'NOT_READY', message: expect.stringContaining('is saved') });
    expect(res.text).not.toMatch(/\bat \S+\.(ts|js):\d+/);
    expect(await stack.api.deps.db.selectFrom('events').select('id').where('id', '=', id).executeTakeFirst()).toEqual({ id });
    expect((await http(stack.url, 'POST', '/admin/events', body, { admin: true })).body).toMatchObject({ code: 'EVENT_EXISTS' });
    // Orders and waiting-list joins of an event Redis has, while it takes no writes: 503 NOT_READY
    // (they answered 500 INTERNAL: attack round 16), and nothing is left behind.
    for (const holdAt of ['confirm', 'order'] as const) {
      const loaded = eventId(`full-${holdAt}`);
      await stack.redis.config('SET', 'maxmemory', '0');
      const made = await http(stack.url, 'POST', '/admin/events', {
        id: loaded, name: 'Loaded', hold_at: holdAt, ...(holdAt === 'order' ? { reservation_ttl_seconds: 60, waitlist: { offer_ttl_seconds: 60 } } : {}),
        pools: [{ id: 'ga', name: 'GA', capacity: 1, price: 1_000 }],
      }, { admin: true });
      expect(made.status, made.text).toBe(201);
      // Far below what Redis uses: every write is refused, whatever the memory does meanwhile.
      await stack.redis.config('SET', 'maxmemory', '1');
      const order = await http(stack.url, 'POST', `/events/${loaded}/orders`, { buyer_id: 'oom', items: [{ pool: 'ga', quantity: 1 }] });
      expect(order.status, `${holdAt}: ${order.text}`).toBe(503);
      expect(order.body).toMatchObject({ code: 'NOT_READY' });
      expect(await stack.api.deps.db.selectFrom('orders').select('status').where('event_id', '=', loaded).where('status', '!=', 'released').execute()).toEqual([]);
      if (holdAt === 'order') {
        const join = await http(stack.url, 'POST', `/events/${loaded}/waitlist`, { buyer_id: 'oom', items: [{ pool: 'ga', quantity: 1 }] });
        expect(join.status, join.text).toBe(503);
        expect(join.body).toMatchObject({ code: 'NOT_READY' });
      }
    }
    await stack.redis.config('SET', 'maxmemory', String(used + 512 * 1024));

    await stack.redis.config('SET', 'maxmemory', '0');
    const loaded = await waitFor(async () => {
      const ev = await http(stack.url, 'GET', `/events/${id}`, undefined, { headers: { 'cache-control': 'no-cache' } });
      return ev.status === 200 ? ev.body : null;
    }, 30_000, 'the event loaded by the worker');
    expect(loaded.availability.seats).toMatchObject({ total: 20_000, available: 20_000 });
    const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'b1', seats: ['A-1-1'] });
    expect(o.status, o.text).toBe(201);
  }, 60_000);
});
