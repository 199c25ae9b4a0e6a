/**
 * Redis restarting answers 503, not 500, and leaves nothing half-made. On a private redis-server:
 * while it is down, order creation is refused fast with 503 NOT_READY before anything is written;
 * when Redis fails after the order is in Postgres, the order (never returned to the buyer) is
 * withdrawn; when Redis is back (empty), the worker rebuilds the event and orders work again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { pgConnection } from '@dropgate/db';
import { startPrivateRedis, http, eventId, waitFor, type PrivateRedis } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';

let redis: PrivateRedis;
let stack: TestStack;

beforeAll(async () => {
  redis = await startPrivateRedis();
  stack = await startStack({ label: 'redisrestart', redisUrl: redis.url });
});
afterAll(async () => {
  // A failed test may leave Redis stopped: the stack needs it to close.
  if (redis && (redis.process.exitCode !== null || redis.process.signalCode !== null)) await redis.restart();
  await stack?.close();
  await redis?.stop();
});

async function makeEvent(): Promise<string> {
  const id = eventId('rdr');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Redis restart', seat_blocks: [{ section: 'A', rows: 1, seats_per_row: 50, price: 1000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: 1000, price: 500 }],
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

async function counts(eventId: string) {
  const db = stack.api.deps.db;
  const orders = await db.selectFrom('orders').select(['merchant_uid', 'buyer_id']).where('event_id', '=', eventId).execute();
  const log = await db.selectFrom('order_events').select(['merchant_uid', 'type']).where('event_id', '=', eventId).orderBy('id').execute();
  return { orders, log };
}

const orderWorks = (id: string, buyer: string) => waitFor(async () => {
  const res = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity: 1 }] });
  if (res.status === 201) return res;
  expect(res.status, res.text).toBe(503);
  return null;
}, 30_000, 'orders to work again');

describe('Redis restarting', () => {
  it('refuses orders fast with 503 NOT_READY while Redis is down, writes nothing, and recovers', async () => {
    const id = await makeEvent();
    await orderWorks(id, 'before');
    const before = await counts(id);

    await redis.stop();
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const res = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: `down-${i}`, items: [{ pool: 'ga', quantity: 1 }] });
      const ms = performance.now() - started;
      expect(res.status, res.text).toBe(503);
      expect(res.body).toEqual({ code: 'NOT_READY', message: expect.any(String) });
      expect(res.text).not.toMatch(/\bat \S+\.(ts|js):\d+/);
      expect(ms).toBeLessThan(1_000);
    }
    // Every path that needs Redis answers the same way.
    for (const path of [`/events/${id}`, `/events/${id}/seats?status=held`]) {
      const res = await http(stack.url, 'GET', path);
      expect(res.status, `${path}: ${res.text}`).toBe(503);
      expect(res.body.code).toBe('NOT_READY');
    }
    expect(await counts(id)).toEqual(before);

    await redis.restart();
    const after = await orderWorks(id, 'after');
    expect(after.body.status).toBe('pending');
  });

  it('withdraws an order already in Postgres when Redis fails before it is made visible', async () => {
    const id = await makeEvent();
    await orderWorks(id, 'warm');
    const before = await counts(id);

    // Hold the orders table so the next order passes what Redis is asked first, then waits at its insert.
    const blocker = new pg.Client(pgConnection(stack.db.url));
    blocker.on('error', () => undefined);
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table orders in exclusive mode');
      const pending = http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'caught', items: [{ pool: 'ga', quantity: 1 }] });
      await waitFor(async () => {
        const r = await blocker.query(`select count(*)::int as n from pg_locks where relation = 'orders'::regclass and not granted`);
        return r.rows[0].n > 0;
      }, 10_000, 'the order insert to wait for the lock');
      await redis.stop();
      await blocker.query('commit');
      const res = await pending;
      expect(res.status, res.text).toBe(503);
      expect(res.body.code).toBe('NOT_READY');
    } finally {
      await blocker.end();
    }

    const after = await counts(id);
    expect(after.orders).toEqual(before.orders);
    // The log is append-only: the order's creation stays, followed by its withdrawal.
    const added = after.log.slice(before.log.length);
    expect(added.map((e) => e.type)).toEqual(['created', 'withdrawn']);
    expect(added[0]!.merchant_uid).toBe(added[1]!.merchant_uid);

    await redis.restart();
    await orderWorks(id, 'after');
  });
});
