/** Admin, storefront and operations endpoints. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { checkReadiness } from '../src/routes/ops.routes.ts';
import type { Clock } from '@dropgate/domain';
import { eventKeys } from '@dropgate/redis';

let stack: ApiStack;
beforeAll(async () => { stack = await startApiStack({ label: 'events' }); });
afterAll(async () => { await stack?.close(); });

describe('events', () => {
  it('creates a 50,000-seat venue from seat_blocks and serves it', async () => {
    const id = eventId('venue');
    const started = performance.now();
    const res = await http(stack.url, 'POST', '/admin/events', {
      id, name: 'Big venue', hold_ttl_seconds: 120, max_per_buyer: 4, currency: 'KRW',
      seat_blocks: [
        { section: 'A', rows: 100, seats_per_row: 250, price: 150_000 },
        { section: 'B', rows: 100, seats_per_row: 250, price: 99_000 },
      ],
    }, { admin: true });
    const ms = performance.now() - started;
    console.log(`50,000-seat event created in ${ms.toFixed(0)} ms`);
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ id, seat_count: 50_000, hold_ttl_seconds: 120, max_per_buyer: 4, availability: { seats: { total: 50_000, available: 50_000, held: 0, sold: 0 } } });
    const db = stack.api.deps.db;
    expect(Number((await db.selectFrom('seats').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow()).n)).toBe(50_000);
    const got = await http(stack.url, 'GET', `/events/${id}`);
    expect(got.body.availability.seats.total).toBe(50_000);
  });

  it('pages seats with a cursor and filters them by status', async () => {
    const id = eventId('pages');
    await http(stack.url, 'POST', '/admin/events', { id, name: 'Pages', seat_blocks: [{ section: 'P', rows: 3, seats_per_row: 10, price: 1 }] }, { admin: true });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { seats: { id: string; status: string }[]; next_cursor: string | null } } =
        await http(stack.url, 'GET', `/events/${id}/seats?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.body.seats.length).toBeLessThanOrEqual(7);
      seen.push(...page.body.seats.map((s) => s.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(30);
    expect(new Set(seen).size).toBe(30);
    const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'b', seats: ['P-2-3', 'P-1-1'] });
    await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.body.merchant_uid, amount: o.body.amount });
    const held = await http(stack.url, 'GET', `/events/${id}/seats?status=held`);
    expect(held.body.seats.map((s: { id: string }) => s.id).sort()).toEqual(['P-1-1', 'P-2-3']);
    expect(held.body.next_cursor).toBeNull();
    const available = await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=1000`);
    expect(available.body.seats).toHaveLength(28);
    expect(available.body.seats[0]).toMatchObject({ section: 'P', status: 'available', price: 1 });
  });

  it('shows an order with its seats, items and status', async () => {
    const id = eventId('order');
    await http(stack.url, 'POST', '/admin/events', { id, name: 'Order', seats: [{ id: 'VIP-1', section: 'VIP', row: '1', number: '1', price: 300_000 }], pools: [{ id: 'floor', name: 'Floor', capacity: 100, price: 120_000 }] }, { admin: true });
    const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'buyer-7', seats: ['VIP-1'], items: [{ pool: 'floor', quantity: 2 }] });
    expect(o.status).toBe(201);
    expect(o.body).toEqual({
      merchant_uid: expect.stringMatching(new RegExp(`^${id}\\.[0-9A-Za-z]{11}$`)), event_id: id, amount: 540_000, currency: 'KRW', status: 'pending',
      order_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    const detail = await http(stack.url, 'GET', `/orders/${o.body.merchant_uid}`, undefined, { headers: { authorization: `Bearer ${o.body.order_token}` } });
    expect(detail.body).toMatchObject({
      merchant_uid: o.body.merchant_uid, event_id: id, buyer_id: 'buyer-7', status: 'pending', amount: 540_000,
      seats: ['VIP-1'], items: [{ pool: 'floor', quantity: 2 }], hold_expires_at: null, tickets: [], payments: [], status_reason: null,
    });
  });

  it('reports health and readiness', async () => {
    expect((await http(stack.url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await http(stack.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ redis: 'ok', postgres: 'ok', inventory: 'ok', clock: 'ok' });
    // An active event whose Redis state is gone makes the API not ready until a worker rebuilds it
    // (no worker runs here).
    const id = eventId('gone');
    await http(stack.url, 'POST', '/admin/events', { id, name: 'Gone', pools: [{ id: 'p', name: 'P', capacity: 5, price: 1 }] }, { admin: true });
    await stack.store.deleteEvent(id);
    const notReady = await http(stack.url, 'GET', '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body.code).toBe('NOT_READY');
    expect(notReady.body.events_not_loaded).toEqual([id]);
  });

  it('shows no availability while the event\'s state is being loaded (orders are refused until it is ready)', async () => {
    const id = eventId('loading');
    expect((await http(stack.url, 'POST', '/admin/events', { id, name: 'Loading', pools: [{ id: 'p', name: 'P', capacity: 5, price: 1 }] }, { admin: true })).status).toBe(201);
    const fresh = { headers: { 'cache-control': 'no-cache' } };
    expect((await http(stack.url, 'GET', `/events/${id}`, undefined, fresh)).status).toBe(200);
    // What a load in progress looks like: the counts written, the state not declared ready yet.
    await stack.redis.hset(eventKeys(id).meta, 'state', 'loading');
    const during = await http(stack.url, 'GET', `/events/${id}`, undefined, fresh);
    expect(during.status).toBe(503);
    expect(during.body.code).toBe('NOT_READY');
    const order = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'l1', items: [{ pool: 'p', quantity: 1 }] });
    expect(order.status).toBe(503);
    await stack.redis.hset(eventKeys(id).meta, 'state', 'ready');
    expect((await http(stack.url, 'GET', `/events/${id}`, undefined, fresh)).body.availability.pools[0]).toMatchObject({ available: 5 });
  });

  it('is not ready while its clock was never measured against Redis\'s (it would decide by its host\'s alone)', async () => {
    // This API's own clock measured at start.
    expect((stack.api.deps.clock as { everMeasured?: boolean }).everMeasured).toBe(true);
    const unmeasured: Clock & { everMeasured: boolean } = { now: () => Date.now(), everMeasured: false };
    const r = await checkReadiness({ ...stack.api.deps, clock: unmeasured });
    expect(r.ready).toBe(false);
    expect(r.checks.clock).toBe('not measured against Redis');
    const measured: Clock & { everMeasured: boolean } = { ...unmeasured, everMeasured: true };
    expect((await checkReadiness({ ...stack.api.deps, clock: measured })).checks.clock).toBe('ok');
  });
});
