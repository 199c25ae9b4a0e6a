/**
 * A signed buyer's order is counted in Redis before it is written (claimOrder). When Redis stalls past
 * the API's command timeout, the order is answered 503 and nothing is made, but Redis still runs the
 * queued claim once the stall ends: the API gives the claim back on the same connection, after it, so
 * the buyer's count is what it was. Without that, three stalls used up a buyer's bound of three with no
 * order made (found attacking the bound, round 4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signBuyerToken } from '@dropgate/domain';
import { eventKeys } from '@dropgate/redis';
import { eventId, http, startPrivateRedis, waitFor, type PrivateRedis } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { REDIS_COMMAND_TIMEOUT_MS } from '../src/server.ts';

const SECRET = 'buyer-claim-stall-test-secret-0123456';
let server: PrivateRedis;
let stack: ApiStack;
beforeAll(async () => {
  server = await startPrivateRedis();
  stack = await startApiStack({ label: 'claimstall', redisUrl: server.url, env: { BUYER_TOKEN_SECRET: SECRET, ORDERS_PER_BUYER_MAX: '3', MAX_EVENT_LOOP_DELAY_MS: '60000' } });
});
afterAll(async () => {
  await stack?.close();
  await server?.stop();
});

describe('a Redis stall during a signed buyer\'s order', () => {
  it('answers 503, makes nothing, and leaves the buyer\'s count as it was once Redis answers again', async () => {
    const id = eventId('stall');
    const created = await http(stack.url, 'POST', '/admin/events', { id, name: 'Stall', pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1_000 }] }, { admin: true });
    expect(created.status, created.text).toBe(201);
    const body = { buyer_id: 'patient', items: [{ pool: 'ga', quantity: 1 }], buyer_token: signBuyerToken(SECRET, 'patient', Date.now() + 600_000) };
    expect((await http(stack.url, 'POST', `/events/${id}/orders`, body)).status).toBe(201);
    const k = eventKeys(id);
    expect(await stack.redis.hget(k.buyerOrders, 'patient')).toBe('1');

    // Redis holds every write for longer than the API waits for an answer.
    await stack.redis.call('CLIENT', 'PAUSE', String(REDIS_COMMAND_TIMEOUT_MS + 2_000), 'WRITE');
    const stalled = await http(stack.url, 'POST', `/events/${id}/orders`, body);
    expect(stalled.status, stalled.text).toBe(503);
    expect(stalled.body.code).toBe('NOT_READY');
    // Once Redis runs what was queued (the claim, then its give-back), the count is back to one.
    await waitFor(async () => (await stack.redis.hlen(k.buyerClaims)) === 0 && (await stack.redis.hget(k.buyerOrders, 'patient')) === '1', 15_000, 'the stalled claim given back');
    const orders = await stack.api.deps.db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute();
    expect(orders).toHaveLength(1);
    // The buyer still has the rest of the bound.
    expect((await http(stack.url, 'POST', `/events/${id}/orders`, body)).status).toBe(201);
    expect((await http(stack.url, 'POST', `/events/${id}/orders`, body)).status).toBe(201);
    expect((await http(stack.url, 'POST', `/events/${id}/orders`, body)).status).toBe(429);
  }, 30_000);
});
