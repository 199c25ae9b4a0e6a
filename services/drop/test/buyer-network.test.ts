/**
 * A drop's buyer whose order meets a network error (an API process restarting, a load balancer
 * resetting connections while it has no process behind it) tries again, as a buyer refreshes, and
 * gives up only after ORDER_NETWORK_TRIES. The storefront is a real API (real Redis and Postgres)
 * behind a TCP front that resets connections until the test lets them through.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '@dropgate/api';
import { eventId, freePort, http, testEnvironment, waitFor, type TestEnvironment, IN_PROCESS_STACK_ENV } from '@dropgate/testkit';
import { DEFAULT_OPTIONS } from '../src/index.ts';
import { ORDER_NETWORK_TRIES, createOrder, emptyBuyerLog, type BuyersContext } from '../src/buyers.ts';

let env: TestEnvironment;
let api: RunningApi;
const events: string[] = [];

beforeAll(async () => {
  env = await testEnvironment({ label: 'buyernet', env: { ...IN_PROCESS_STACK_ENV } });
  api = await startApi(env.config, { logger: false, queuePrefix: env.prefix });
});
afterAll(async () => {
  await api?.close();
  await env?.dispose(events);
});

/** A TCP front to the API that resets every connection while `down`, and passes them on after. */
async function front(): Promise<{ url: string; resets: () => number; up: () => void; close: () => Promise<void> }> {
  const target = new URL(api.url);
  let down = true;
  let resets = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (down) {
      resets++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    resets: () => resets,
    up: () => { down = false; },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function poolEvent(): Promise<string> {
  const id = eventId('bn');
  const res = await http(api.url, 'POST', '/admin/events', { id, name: 'Network', pools: [{ id: 'ga', name: 'GA', capacity: 5, price: 1_000 }] }, { admin: true });
  expect(res.status, res.text).toBe(201);
  events.push(id);
  return id;
}

function context(apiUrl: string, id: string): BuyersContext {
  return { apiUrl, simUrl: 'http://127.0.0.1:9', eventId: id, venue: { seats: 0, pool: 5, capacity: 5, blocks: [], rows: [] }, options: { ...DEFAULT_OPTIONS, budgetMs: 3000, report: null, seed: 1, eventId: id }, t0: performance.now(), log: emptyBuyerLog() };
}

describe('a buyer meeting network errors', () => {
  it('tries again while the storefront resets connections, and gets its order once it answers', async () => {
    const id = await poolEvent();
    const f = await front();
    try {
      const ctx = context(f.url, id);
      const ordering = createOrder(ctx, 'buyer-net-1', null, { items: [{ pool: 'ga', quantity: 1 }] });
      await waitFor(async () => f.resets() >= 2, 20_000, 'two connections reset');
      f.up();
      const order = await ordering;
      expect(order).toMatchObject({ merchant_uid: expect.stringContaining(id), amount: 1_000 });
      expect(ctx.log.orderRefusals).toEqual({});
      expect(ctx.log.ordersCreated).toBe(1);
      // The order is the API's: it reads it back.
      const read = await http(api.url, 'GET', `/orders/${(order as { merchant_uid: string }).merchant_uid}`, undefined, { headers: { authorization: `Bearer ${(order as { order_token: string }).order_token}` } });
      expect(read.status, read.text).toBe(200);
      expect(read.body.status).toBe('pending');
    } finally {
      await f.close();
    }
  });

  it('gives up after ORDER_NETWORK_TRIES, counted as NETWORK, having made nothing', async () => {
    const id = await poolEvent();
    const f = await front();
    try {
      const ctx = context(f.url, id);
      expect(await createOrder(ctx, 'buyer-net-2', null, { items: [{ pool: 'ga', quantity: 1 }] })).toBe('NETWORK');
      expect(f.resets()).toBe(ORDER_NETWORK_TRIES);
      expect(ctx.log.orderRefusals).toEqual({ NETWORK: 1 });
      expect(ctx.log.ordersCreated).toBe(0);
      const availability = (await http(api.url, 'GET', `/events/${id}`)).body.availability;
      expect(availability.pools).toEqual([expect.objectContaining({ id: 'ga', available: 5 })]);
    } finally {
      await f.close();
    }
  }, 30_000);
});
