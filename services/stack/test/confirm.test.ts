/**
 * The V1 confirm endpoint's semantics over real HTTP, real Redis and real Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, newOrder, waitFor, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { REFUSAL_REASONS } from '@dropgate/domain';

let stack: TestStack;
// Sale windows are decided by this clock: a test moves it past a window's end instead of waiting.
const clock = new TestClock();
beforeAll(async () => { stack = await startStack({ label: 'confirm', clock }); });
afterAll(async () => { await stack?.close(); });

async function makeEvent(extra: Record<string, unknown> = {}) {
  const id = eventId('cf');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Confirm semantics',
    seat_blocks: [{ section: 'A', rows: 2, seats_per_row: 5, price: 10_000 }],
    pools: [{ id: 'ga', name: 'General admission', capacity: 3, price: 5_000 }],
    ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

const order = (id: string, body: Record<string, unknown>) => newOrder(stack.url, id, body);

const confirm = (imp: string, merchantUid: string, amount?: number | null) =>
  http(stack.url, 'POST', '/portone/v1/confirm', amount === undefined ? { imp_uid: imp, merchant_uid: merchantUid } : { imp_uid: imp, merchant_uid: merchantUid, amount });

async function availability(id: string) {
  const res = await http(stack.url, 'GET', `/events/${id}`);
  return res.body.availability as { seats: { available: number; held: number; sold: number }; pools: { id: string; available: number; held: number }[] };
}

describe('POST /portone/v1/confirm', () => {
  it('approves a free order with its hold expiry and holds every seat and pool place', async () => {
    const id = await makeEvent();
    const o = await order(id, { buyer_id: 'b1', seats: ['A-1-1', 'A-1-2'], items: [{ pool: 'ga', quantity: 2 }] });
    expect(o.amount).toBe(30_000);
    const before = Date.now();
    const res = await confirm(impUid(), o.merchant_uid, 30_000);
    expect(res.status).toBe(200);
    expect(res.body.approved).toBe(true);
    const expires = Date.parse(res.body.hold_expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 299_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 300_000);
    const a = await availability(id);
    expect(a.seats).toMatchObject({ held: 2, available: 8, sold: 0 });
    expect(a.pools[0]).toMatchObject({ held: 2, available: 1 });
  });

  it('is idempotent by imp_uid: a repeat answers the same and holds nothing more', async () => {
    const id = await makeEvent();
    const o = await order(id, { buyer_id: 'b1', seats: ['A-1-1'] });
    const imp = impUid();
    const first = await confirm(imp, o.merchant_uid, o.amount);
    const again = await Promise.all([confirm(imp, o.merchant_uid, o.amount), confirm(imp, o.merchant_uid, o.amount)]);
    for (const r of again) {
      expect(r.status).toBe(200);
      expect(r.body).toEqual(first.body);
    }
    expect((await availability(id)).seats.held).toBe(1);
    // A refusal is remembered too: the same imp_uid keeps its SOLD_OUT even once the seat is free.
    const rival = await order(id, { buyer_id: 'b2', seats: ['A-1-1'] });
    const rivalImp = impUid();
    const refused = await confirm(rivalImp, rival.merchant_uid, rival.amount);
    // The answer PortOne shows the buyer: JSON, the reason in Korean.
    expect(refused.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(refused.body).toEqual({ code: 'SOLD_OUT', reason: REFUSAL_REASONS.SOLD_OUT, message: REFUSAL_REASONS.SOLD_OUT });
    await stack.store.releaseHold(id, o.merchant_uid, { status: 'released', nowMs: Date.now(), onlyIfOverdue: false });
    const replay = await confirm(rivalImp, rival.merchant_uid, rival.amount);
    expect(replay.status).toBe(409);
    expect(replay.body.code).toBe('SOLD_OUT');
    // ...while a new payment attempt for that order gets a fresh decision.
    expect((await confirm(impUid(), rival.merchant_uid, rival.amount)).status).toBe(200);
  });

  it('approves a new imp_uid on an order whose hold is live, without holding more', async () => {
    const id = await makeEvent();
    const o = await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 2 }] });
    const first = await confirm(impUid(), o.merchant_uid, o.amount);
    const retry = await confirm(impUid(), o.merchant_uid, o.amount);
    expect(retry.status).toBe(200);
    expect(retry.body.hold_expires_at).toBe(first.body.hold_expires_at);
    expect((await availability(id)).pools[0]).toMatchObject({ held: 2, available: 1 });
    const state = await stack.store.orderState(id, o.merchant_uid);
    expect(state?.impUids).toHaveLength(2);
  });

  it('refuses ALREADY_PAID for an order that is paid', async () => {
    const id = await makeEvent();
    const o = await order(id, { buyer_id: 'b1', seats: ['A-2-1'] });
    expect((await confirm(impUid(), o.merchant_uid, o.amount)).status).toBe(200);
    expect(await stack.store.settlePaid(id, o.merchant_uid)).toBe('committed');
    const res = await confirm(impUid(), o.merchant_uid, o.amount);
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ code: 'ALREADY_PAID', reason: REFUSAL_REASONS.ALREADY_PAID, message: REFUSAL_REASONS.ALREADY_PAID });
    expect((await availability(id)).seats).toMatchObject({ held: 0, sold: 1 });
  });

  it('refuses a wrong amount and holds nothing; tolerates a missing amount', async () => {
    const id = await makeEvent();
    const o = await order(id, { buyer_id: 'b1', seats: ['A-1-3'] });
    const wrong = await confirm(impUid(), o.merchant_uid, o.amount - 1);
    expect(wrong.status).toBe(409);
    expect(wrong.body.code).toBe('AMOUNT_MISMATCH');
    expect((await availability(id)).seats.held).toBe(0);
    const missing = await confirm(impUid(), o.merchant_uid);
    expect(missing.status).toBe(200);
    const nullAmount = await order(id, { buyer_id: 'b2', seats: ['A-1-4'] });
    expect((await confirm(impUid(), nullAmount.merchant_uid, null)).status).toBe(200);
  });

  it('refuses unknown orders with ORDER_NOT_FOUND', async () => {
    const id = await makeEvent();
    for (const muid of [`${id}.AAAAAAAAAAA`, 'no-such-event.AAAAAAAAAAA', 'not-a-merchant-uid', 'order-0001']) {
      const res = await confirm(impUid(), muid, 1000);
      expect(res.status, muid).toBe(404);
      expect(res.body.code).toBe('ORDER_NOT_FOUND');
      expect(res.body.reason).toBe(REFUSAL_REASONS.ORDER_NOT_FOUND);
    }
  });

  it('refuses SALE_CLOSED once the sale window has closed', async () => {
    const now = clock.now();
    // Closing a minute on (making the event and the order takes seconds on a loaded machine), then
    // the clock moved past it.
    const id = await makeEvent({ sale_opens_at: new Date(now - 60_000).toISOString(), sale_closes_at: new Date(now + 60_000).toISOString() });
    const o = await order(id, { buyer_id: 'b1', seats: ['A-1-1'] });
    clock.advance(60_100);
    const res = await confirm(impUid(), o.merchant_uid, o.amount);
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('SALE_CLOSED');
    expect((await availability(id)).seats.held).toBe(0);
    const late = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'b1', seats: ['A-1-2'] });
    expect(late.status).toBe(403);
    expect(late.body.code).toBe('SALE_CLOSED');
  });

  it('refuses orders before the sale opens', async () => {
    const id = await makeEvent({ sale_opens_at: new Date(Date.now() + 3_600_000).toISOString() });
    const res = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'b1', seats: ['A-1-1'] });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('SALE_NOT_OPEN');
  });

  it('enforces max_per_buyer across live holds at confirm and at order creation', async () => {
    const id = await makeEvent({ max_per_buyer: 3 });
    const a = await order(id, { buyer_id: 'fan', seats: ['A-1-1', 'A-1-2'] });
    const b = await order(id, { buyer_id: 'fan', items: [{ pool: 'ga', quantity: 2 }] });
    expect((await confirm(impUid(), a.merchant_uid, a.amount)).status).toBe(200);
    const over = await confirm(impUid(), b.merchant_uid, b.amount);
    expect(over.status).toBe(403);
    expect(over.body.code).toBe('BUYER_LIMIT');
    expect((await availability(id)).pools[0]!.held).toBe(0);
    const tooMany = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'fan', seats: ['A-2-1', 'A-2-2'] });
    expect(tooMany.status).toBe(403);
    expect(tooMany.body.code).toBe('BUYER_LIMIT');
    // Another buyer is not affected.
    const other = await order(id, { buyer_id: 'someone-else', items: [{ pool: 'ga', quantity: 3 }] });
    expect((await confirm(impUid(), other.merchant_uid, other.amount)).status).toBe(200);
  });

  it('hands every approved hold to the worker, which records it in Postgres', async () => {
    const id = await makeEvent();
    const o = await order(id, { buyer_id: 'b1', seats: ['A-2-5'] });
    const res = await confirm(impUid(), o.merchant_uid, o.amount);
    const hold = await waitFor(() => stack.api.deps.db.selectFrom('holds').selectAll().where('merchant_uid', '=', o.merchant_uid).executeTakeFirst());
    expect(hold).toMatchObject({ status: 'live', seq: 1, event_id: id });
    expect(hold.expires_at.toISOString()).toBe(res.body.hold_expires_at);
    const detail = await http(stack.url, 'GET', `/orders/${o.merchant_uid}`, undefined, { headers: { authorization: `Bearer ${o.order_token}` } });
    expect(detail.body).toMatchObject({ status: 'held', hold_expires_at: res.body.hold_expires_at, seats: ['A-2-5'] });
    const row = await stack.api.deps.db.selectFrom('orders').select(['status']).where('merchant_uid', '=', o.merchant_uid).executeTakeFirstOrThrow();
    expect(row.status).toBe('held');
  });
});

describe('POST /portone/v1/webhook', () => {
  // No worker here: a job that started already does not make a new webhook a duplicate (it may have
  // asked PortOne before the news), so "duplicate" is only seen while the first job waits.
  let idle: TestStack;
  beforeAll(async () => { idle = await startStack({ label: 'confirm-wh', worker: false }); });
  afterAll(async () => { await idle?.close(); });

  it('queues a webhook once and reports the copies as duplicates, JSON or form-encoded', async () => {
    const id = eventId('cw');
    expect((await http(idle.url, 'POST', '/admin/events', { id, name: 'Webhook', seat_blocks: [{ section: 'A', rows: 1, seats_per_row: 2, price: 10_000 }] }, { admin: true })).status).toBe(201);
    const o = await newOrder(idle.url, id, { buyer_id: 'b1', seats: ['A-1-1'] });
    const imp = impUid();
    const stack = idle;
    const first = await http(stack.url, 'POST', '/portone/v1/webhook', { imp_uid: imp, merchant_uid: o.merchant_uid, status: 'paid' });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ received: true, duplicate: false });
    const again = await http(stack.url, 'POST', '/portone/v1/webhook', undefined, {
      raw: `imp_uid=${imp}&merchant_uid=${encodeURIComponent(o.merchant_uid)}&status=paid`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ received: true, duplicate: true });
    // The claimed status is only a hint: while the queued job has not started, it will ask PortOne about
    // the payment anyway, so any other claim about it is a duplicate too.
    const other = await http(stack.url, 'POST', '/portone/v1/webhook', { imp_uid: imp, merchant_uid: o.merchant_uid, status: 'cancelled' });
    expect(other.body.duplicate).toBe(true);
  });
});
