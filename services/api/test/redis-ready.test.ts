/**
 * The API takes requests once the Redis client of its confirm path is ready. That client keeps no
 * offline queue (a confirm during a Redis outage is refused at once, inside its deadline), so a request
 * that arrived before its first connection had answered the ready check was refused with 503
 * NOT_READY: on a busy machine, an event created right after the API started failed now and then.
 * Here Redis holds every client's commands (CLIENT PAUSE) while the API starts.
 *
 * Once running, no request waits on Redis longer than PortOne's confirm deadline: a Redis that takes a
 * command and never answers (paused here; on a Redis Cluster after a failover, ioredis could leave
 * commands queued and never written) fails the command, and the request answers 503.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, http, startPrivateRedis, testEnvironment, type PrivateRedis, type TestEnvironment } from '@dropgate/testkit';
import { REDIS_COMMAND_TIMEOUT_MS, startApi, type RunningApi } from '../src/server.ts';

let server: PrivateRedis;
let env: TestEnvironment;
let api: RunningApi | undefined;

beforeAll(async () => {
  server = await startPrivateRedis();
  env = await testEnvironment({ label: 'redisready', redisUrl: server.url });
});
afterAll(async () => {
  await api?.close();
  await env?.dispose([]);
  await server?.stop();
});

describe('starting the API while Redis answers late', () => {
  it('takes requests only once its Redis client is ready: the first request is served, not refused', async () => {
    const pausedFor = 1_500;
    await env.redis.call('CLIENT', 'PAUSE', String(pausedFor), 'ALL');
    const started = Date.now();
    api = await startApi(env.config, { logger: false, queuePrefix: env.prefix });
    // It listened only after Redis answered again (the pause ends the wait, not a timer of the API's).
    expect(Date.now() - started).toBeGreaterThanOrEqual(pausedFor - 100);
    const id = eventId('ready');
    const created = await http(api.url, 'POST', '/admin/events', { id, name: 'Ready', pools: [{ id: 'p', name: 'P', capacity: 1, price: 1000 }] }, { admin: true });
    expect(created.status, created.text).toBe(201);
    expect((await http(api.url, 'GET', '/readyz')).status).toBe(200);
  });

  it('answers 503 when Redis takes a command and does not answer, after the command timeout, not when Redis does', async () => {
    const id = eventId('mute');
    api ??= await startApi(env.config, { logger: false, queuePrefix: env.prefix });
    const created = await http(api.url, 'POST', '/admin/events', { id, name: 'Mute', pools: [{ id: 'p', name: 'P', capacity: 5, price: 1000 }] }, { admin: true });
    expect(created.status, created.text).toBe(201);
    const pausedFor = REDIS_COMMAND_TIMEOUT_MS + 4_000;
    await env.redis.call('CLIENT', 'PAUSE', String(pausedFor), 'ALL');
    const paused = Date.now();
    const order = await http(api.url, 'POST', `/events/${id}/orders`, { buyer_id: 'u-1', items: [{ pool: 'p', quantity: 1 }] });
    const waited = Date.now() - paused;
    expect(order.status, order.text).toBe(503);
    expect(order.body).toMatchObject({ code: 'NOT_READY' });
    expect(waited).toBeGreaterThanOrEqual(REDIS_COMMAND_TIMEOUT_MS - 100);
    // Answered by the timeout, not by Redis waking up.
    expect(waited).toBeLessThan(pausedFor - 1_000);
  }, 30_000);
});
