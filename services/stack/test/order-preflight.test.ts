/**
 * What an order asks Redis before it is written to Postgres (orders.service.ts): nothing when the event
 * has no buyer limit and this process has no reason to doubt the event is loaded; the buyer's tickets
 * when it has a limit; the event's state and the buyer's tickets (the preflight) after an order found
 * the event not loaded, until the preflight finds it ready again. On a private redis-server and no
 * worker (nothing rebuilds the event behind the test's back, and INFO commandstats counts the API's
 * commands only).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSnapshot } from '@dropgate/db';
import { startPrivateRedis, http, eventId, type PrivateRedis } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';

let redis: PrivateRedis;
let stack: TestStack;

beforeAll(async () => {
  redis = await startPrivateRedis();
  stack = await startStack({ label: 'preflight', redisUrl: redis.url, worker: false });
});
afterAll(async () => {
  await stack?.close();
  await redis?.stop();
});

async function makeEvent(extra: Record<string, unknown> = {}): Promise<string> {
  const id = eventId('pre');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Preflight', pools: [{ id: 'ga', name: 'GA', capacity: 100, price: 500 }], ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/**
 * Calls of the commands an order's Redis work is made of while `fn` ran: the scripts and
 * the hash reads, those a script makes included (Redis counts them too: createOrder's one HGET of the
 * event's state is in every count below that has a script call).
 */
async function callsDuring(fn: () => Promise<void>): Promise<{ scripts: number; hget: number; hmget: number; hgetall: number }> {
  await stack.redis.config('RESETSTAT');
  await fn();
  const info = await stack.redis.info('commandstats');
  const calls = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  // EVALSHA, or EVAL the first time a script runs on this Redis (after NOSCRIPT, which is not counted).
  return { scripts: calls('evalsha') + calls('eval'), hget: calls('hget'), hmget: calls('hmget'), hgetall: calls('hgetall') };
}
/** The createOrder script alone. */
const SCRIPT_ONLY = { scripts: 1, hget: 1, hmget: 0, hgetall: 0 };

const order = (id: string, buyer: string, quantity = 1) => http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity }] });

async function rows(id: string) {
  const db = stack.api.deps.db;
  const orders = await db.selectFrom('orders').select(['merchant_uid', 'status']).where('event_id', '=', id).orderBy('merchant_uid').execute();
  const log = await db.selectFrom('order_events').select(['merchant_uid', 'type']).where('event_id', '=', id).orderBy('id').execute();
  return { orders, log };
}

describe('what an order asks Redis before it is written', () => {
  it('an event without a buyer limit: nothing, the script after the insert decides', async () => {
    const id = await makeEvent();
    let res: Awaited<ReturnType<typeof order>> | undefined;
    const reads = await callsDuring(async () => { res = await order(id, 'a'); });
    expect(res!.status, res!.text).toBe(201);
    expect(reads).toEqual(SCRIPT_ONLY);
    expect(await stack.redis.hget(`{ev:${id}}:o:${res!.body.merchant_uid}`, 'st')).toBe('pending');
  });

  it('an event with a buyer limit: the buyer\'s tickets, and a refusal writes nothing', async () => {
    const id = await makeEvent({ max_per_buyer: 2 });
    let res: Awaited<ReturnType<typeof order>> | undefined;
    // The buyer's tickets (one HGET), then the script.
    expect(await callsDuring(async () => { res = await order(id, 'a', 2); })).toEqual({ ...SCRIPT_ONLY, hget: 2 });
    expect(res!.status, res!.text).toBe(201);
    // Held tickets count toward the limit (the buyers hash, as a confirm's hold leaves it).
    await stack.redis.hset(`{ev:${id}}:buyer`, 'b', '1');
    const before = await rows(id);
    const over = await order(id, 'b', 2);
    expect(over.status, over.text).toBe(403);
    expect(over.body).toMatchObject({ code: 'BUYER_LIMIT' });
    expect(await rows(id)).toEqual(before);
    expect((await order(id, 'b', 1)).status).toBe(201);
  });

  it('an event found not loaded: that order is withdrawn, the next ones ask first and write nothing, until it is loaded', async () => {
    const id = await makeEvent();
    expect((await order(id, 'warm')).status).toBe(201);
    const snapshot = await loadSnapshot(stack.api.deps.db, id);
    await stack.store.deleteEvent(id);
    const before = await rows(id);

    // The first finds out after its insert: withdrawn (the buyer never got its merchant_uid).
    const first = await order(id, 'first');
    expect(first.status, first.text).toBe(503);
    expect(first.body).toMatchObject({ code: 'NOT_READY' });
    const afterFirst = await rows(id);
    expect(afterFirst.orders).toEqual(before.orders);
    // The log is append-only: the order's creation stays, followed by its withdrawal.
    expect(afterFirst.log.slice(before.log.length).map((e) => e.type)).toEqual(['created', 'withdrawn']);

    // The next ones take the preflight (the event's state and the buyer's tickets) and write nothing.
    for (let i = 0; i < 5; i++) {
      let res: Awaited<ReturnType<typeof order>> | undefined;
      // The event's state and the buyer's tickets; no script.
      expect(await callsDuring(async () => { res = await order(id, `next-${i}`); })).toEqual({ scripts: 0, hget: 2, hmget: 0, hgetall: 0 });
      expect(res!.status, res!.text).toBe(503);
      expect(res!.body).toMatchObject({ code: 'NOT_READY' });
    }
    expect(await rows(id)).toEqual(afterFirst);

    // Loaded again: the preflight finds it ready, and the order after that asks nothing first.
    await stack.store.loadEvent(snapshot!, 'reloaded');
    let res: Awaited<ReturnType<typeof order>> | undefined;
    expect(await callsDuring(async () => { res = await order(id, 'back'); })).toEqual({ ...SCRIPT_ONLY, hget: 3 });
    expect(res!.status, res!.text).toBe(201);
    expect(await callsDuring(async () => { res = await order(id, 'fast'); })).toEqual(SCRIPT_ONLY);
    expect(res!.status, res!.text).toBe(201);
  });

  it('Redis unreachable: refused at once, nothing written', async () => {
    const id = await makeEvent();
    expect((await order(id, 'warm')).status).toBe(201);
    const before = await rows(id);
    await redis.stop();
    try {
      for (let i = 0; i < 5; i++) {
        const res = await order(id, `down-${i}`);
        expect(res.status, res.text).toBe(503);
        expect(res.body).toEqual({ code: 'NOT_READY', message: expect.any(String) });
      }
      expect(await rows(id)).toEqual(before);
    } finally {
      await redis.restart();
    }
  });
});
