import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, http, eventId, impUid, waitFor, type TestStack } from '@dropgate/testkit';

let stack: TestStack;
beforeAll(async () => { stack = await startStack({ label: 'smoke' }); });
afterAll(async () => { await stack?.close(); });

describe('smoke', () => {
  it('creates an event, an order, confirms it, and the worker records the hold', async () => {
    const id = eventId('smoke');
    const created = await http(stack.url, 'POST', '/admin/events', {
      id, name: 'Smoke', pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1000 }], seats: [{ id: 'A-1-1', section: 'A', row: '1', number: '1', price: 5000 }],
    }, { admin: true });
    expect(created.status, created.text).toBe(201);
    const order = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'u1', seats: ['A-1-1'], items: [{ pool: 'ga', quantity: 2 }] });
    expect(order.status, order.text).toBe(201);
    expect(order.body.amount).toBe(7000);
    const imp = impUid();
    const confirm = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: imp, merchant_uid: order.body.merchant_uid, amount: 7000 });
    expect(confirm.status, confirm.text).toBe(200);
    expect(confirm.body.approved).toBe(true);
    const ev = await http(stack.url, 'GET', `/events/${id}`);
    expect(ev.body.availability.seats).toEqual({ total: 1, available: 0, held: 1, sold: 0 });
    const row = await waitFor(() => stack.api.deps.db.selectFrom('holds').selectAll().where('merchant_uid', '=', order.body.merchant_uid).executeTakeFirst());
    expect(row.status).toBe('live');
    const o = await http(stack.url, 'GET', `/orders/${order.body.merchant_uid}`);
    expect(o.body.status).toBe('held');
  });
});
