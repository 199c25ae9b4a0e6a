/**
 * hold_at "order" (issue 11): the order reserves its places at selection, the confirm approves the
 * live reservation, a lapsed one is refused only when its places were taken, and POST
 * /orders/:merchant_uid/extend renews a live one a bounded number of times. Real Redis, Postgres, worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, waitFor, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { MAX_RESERVATION_EXTENSIONS } from '@dropgate/domain';
import { orders as ordersRepo } from '@dropgate/db';
import { sql } from 'kysely';

let stack: TestStack;
// Reservations lapse by this clock: a test moves it past an expiry instead of waiting for it.
const clock = new TestClock();
beforeAll(async () => { stack = await startStack({ label: 'reserve', clock }); });
afterAll(async () => { await stack?.close(); });

async function makeEvent(extra: Record<string, unknown> = {}) {
  const id = eventId('rs');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Reservations', hold_at: 'order', reservation_ttl_seconds: 30,
    seat_blocks: [{ section: 'A', rows: 1, seats_per_row: 4, price: 10_000 }],
    pools: [{ id: 'ga', name: 'General admission', capacity: 5, price: 5_000 }],
    ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** An order; a 503 (the API shedding load while test files share the cores) is retried, as a buyer would. */
async function order(id: string, body: Record<string, unknown>) {
  for (;;) {
    const res = await http(stack.url, 'POST', `/events/${id}/orders`, body);
    if (res.status !== 503) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const confirm = (imp: string, merchantUid: string, amount: number) =>
  http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: imp, merchant_uid: merchantUid, amount });
const extend = (muid: string, token: string | null) =>
  http(stack.url, 'POST', `/orders/${muid}/extend`, undefined, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
async function availability(id: string) {
  return (await http(stack.url, 'GET', `/events/${id}`)).body.availability as {
    seats: { available: number; held: number; sold: number }; pools: { id: string; available: number; held: number }[];
  };
}

describe('hold_at "order"', () => {
  it('reserves at selection: 201 held with hold_expires_at, the places held, the record following', async () => {
    const id = await makeEvent();
    const event = (await http(stack.url, 'GET', `/events/${id}`)).body;
    expect(event).toMatchObject({ hold_at: 'order', reservation_ttl_seconds: 30 });
    const before = clock.now();
    const res = await order(id, { buyer_id: 'b1', seats: ['A-1-1'], items: [{ pool: 'ga', quantity: 2 }] });
    expect(res.status, res.text).toBe(201);
    expect(res.body.status).toBe('held');
    const exp = Date.parse(res.body.hold_expires_at);
    expect(exp).toBeGreaterThanOrEqual(before + 30_000);
    expect(exp).toBeLessThanOrEqual(clock.now() + 30_000);
    const a = await availability(id);
    expect(a.seats).toMatchObject({ held: 1, available: 3 });
    expect(a.pools[0]).toMatchObject({ held: 2, available: 3 });
    // The worker records the reservation as the order's live hold.
    await waitFor(async () => (await stack.api.deps.db.selectFrom('holds').selectAll().where('merchant_uid', '=', res.body.merchant_uid).execute()).length === 1, 10_000, 'the hold row');
    const mine = await http(stack.url, 'GET', `/orders/${res.body.merchant_uid}`, undefined, { headers: { authorization: `Bearer ${res.body.order_token}` } });
    expect(mine.body).toMatchObject({ status: 'held', hold_expires_at: res.body.hold_expires_at });
    await waitFor(async () => (await stack.api.deps.db.selectFrom('orders').select('status').where('merchant_uid', '=', res.body.merchant_uid).executeTakeFirst())?.status === 'held', 10_000, 'the order held in the record');
  });

  it('holds exactly the capacity when many buyers race for the last places, and writes no refused order', async () => {
    const id = await makeEvent();
    const pool = await Promise.all(Array.from({ length: 40 }, (_, i) => order(id, { buyer_id: `p${i}`, items: [{ pool: 'ga', quantity: 1 }] })));
    const seats = await Promise.all(Array.from({ length: 30 }, (_, i) => order(id, { buyer_id: `s${i}`, seats: [`A-1-${1 + (i % 4)}`, `A-1-${1 + ((i + 1) % 4)}`] })));
    const statuses = (rs: typeof pool) => rs.map((r) => r.status);
    expect(statuses(pool).filter((s) => s === 201)).toHaveLength(5);
    expect(statuses(pool).filter((s) => s === 409)).toHaveLength(35);
    for (const r of [...pool, ...seats].filter((x) => x.status === 409)) expect(r.body.code).toBe('SOLD_OUT');
    const seatWins = seats.filter((r) => r.status === 201);
    // Two seats per order out of four: at most two orders can win, and every won seat is held once.
    expect(seatWins.length).toBeGreaterThanOrEqual(1);
    expect(seatWins.length).toBeLessThanOrEqual(2);
    expect(seats.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    const a = await availability(id);
    expect(a.pools[0]).toMatchObject({ held: 5, available: 0 });
    expect(a.seats.held).toBe(seatWins.length * 2);
    const rows = await stack.api.deps.db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute();
    expect(rows).toHaveLength(5 + seatWins.length);
  });

  it('approves the confirm on the live reservation and extends it to cover the approval', async () => {
    const id = await makeEvent({ hold_ttl_seconds: 300 });
    const o = (await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 5 }] })).body;
    const res = await confirm(impUid(), o.merchant_uid, o.amount);
    expect(res.status, res.text).toBe(200);
    expect(Date.parse(res.body.hold_expires_at)).toBeGreaterThanOrEqual(clock.now() + 299_000);
    // Nothing more held: the reservation became the payment's hold.
    expect((await availability(id)).pools[0]).toMatchObject({ held: 5, available: 0 });
    // A second attempt rides on the same hold.
    expect((await confirm(impUid(), o.merchant_uid, o.amount)).status).toBe(200);
    expect((await availability(id)).pools[0]).toMatchObject({ held: 5 });
    // The worker verified the payment with PortOne (unreachable in this test) and recorded the new hold.
    await waitFor(async () => {
      const holds = await stack.api.deps.db.selectFrom('holds').select(['seq', 'status', 'imp_uid']).where('merchant_uid', '=', o.merchant_uid).orderBy('seq').execute();
      // The reservation's own row is recorded only if its job ran before the confirm (else skipped).
      const live = holds.filter((h) => h.status === 'live');
      return live.length === 1 && live[0]!.seq === 2 && live[0]!.imp_uid !== '';
    }, 10_000, 'the confirm hold recorded as the one live hold');
  });

  it('refuses at confirm only a lapsed reservation whose places were taken; renews one still unswept', async () => {
    const id = await makeEvent({ reservation_ttl_seconds: 5 });
    const first = (await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 5 }] })).body;
    const second = (await order(id, { buyer_id: 'b2', seats: ['A-1-1'] })).body;
    // Stop the sweep from seeing the lapse of `second` by reading Redis before the worker acts: a lapsed
    // but unswept reservation still owns its places and is renewed by the confirm.
    clock.advance(6_000);
    const renewed = await confirm(impUid(), second.merchant_uid, second.amount);
    expect([200, 409]).toContain(renewed.status);
    // The worker expires `first` (nothing paid on it) and its places return.
    await waitFor(async () => (await stack.store.orderState(id, first.merchant_uid))?.status === 'expired', 15_000, 'the reservation expired');
    expect((await availability(id)).pools[0]).toMatchObject({ held: 0, available: 5 });
    const taker = await order(id, { buyer_id: 'b3', items: [{ pool: 'ga', quantity: 3 }] });
    expect(taker.status).toBe(201);
    const late = await confirm(impUid(), first.merchant_uid, first.amount);
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('SOLD_OUT');
    expect((await availability(id)).pools[0]).toMatchObject({ held: 3, available: 2 });
  });

  it('extends a live reservation at most the bound, only with its order token, and not once a payment is under way', async () => {
    const id = await makeEvent({ reservation_ttl_seconds: 20 });
    const o = (await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 1 }] })).body;
    expect((await extend(o.merchant_uid, null)).status).toBe(401);
    const forged = await extend(o.merchant_uid, 'x'.repeat(43));
    expect(forged.status).toBe(404);
    const other = (await order(id, { buyer_id: 'b2', items: [{ pool: 'ga', quantity: 1 }] })).body;
    expect((await extend(o.merchant_uid, other.order_token)).status).toBe(404);
    let last = Date.parse(o.hold_expires_at);
    for (let i = 0; i < MAX_RESERVATION_EXTENSIONS; i++) {
      clock.advance(2_000);
      const r = await extend(o.merchant_uid, o.order_token);
      expect(r.status, r.text).toBe(200);
      expect(r.body.extensions_left).toBe(MAX_RESERVATION_EXTENSIONS - i - 1);
      const exp = Date.parse(r.body.hold_expires_at);
      expect(exp).toBeGreaterThan(last);
      expect(exp).toBeGreaterThanOrEqual(clock.now() + 19_000);
      last = exp;
    }
    const over = await extend(o.merchant_uid, o.order_token);
    expect(over.status).toBe(409);
    expect(over.body.code).toBe('NOT_EXTENDABLE');
    // Under payment: the confirm covers it; extend refuses.
    expect((await confirm(impUid(), other.merchant_uid, other.amount)).status).toBe(200);
    const paying = await extend(other.merchant_uid, other.order_token);
    expect(paying.status).toBe(409);
    expect(paying.body.code).toBe('NOT_EXTENDABLE');
    // The record follows the extensions: the live hold row has the latest expiry.
    await waitFor(async () => {
      const live = await stack.api.deps.db.selectFrom('holds').select('expires_at').where('merchant_uid', '=', o.merchant_uid).where('status', '=', 'live').execute();
      return live.length === 1 && live[0]!.expires_at.getTime() === last;
    }, 10_000, 'the extended hold recorded');
  });

  it('does not extend a reservation once the sale has closed (attack round 20B)', async () => {
    const closes = clock.now() + 20_000;
    const id = await makeEvent({ sale_closes_at: new Date(closes).toISOString() });
    const o = (await order(id, { buyer_id: 'cl', items: [{ pool: 'ga', quantity: 1 }] })).body;
    expect(o.status).toBe('held');
    expect((await extend(o.merchant_uid, o.order_token)).status).toBe(200);
    clock.advance(21_000);
    const late = await extend(o.merchant_uid, o.order_token);
    expect(late.status).toBe(403);
    expect(late.body).toEqual({ code: 'SALE_CLOSED', message: expect.any(String) });
  });

  it('refuses what cannot work: extend on a confirm-hold event, bad settings', async () => {
    const plain = eventId('rs');
    expect((await http(stack.url, 'POST', '/admin/events', { id: plain, name: 'Plain', pools: [{ id: 'ga', name: 'GA', capacity: 2, price: 1 }] }, { admin: true })).status).toBe(201);
    const o = (await order(plain, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 1 }] })).body;
    expect(o.status).toBe('pending');
    const r = await extend(o.merchant_uid, o.order_token);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('NOT_EXTENDABLE');
    for (const bad of [
      { hold_at: 'order' },
      { hold_at: 'order', reservation_ttl_seconds: 4 },
      { hold_at: 'order', reservation_ttl_seconds: 3601 },
      { hold_at: 'later', reservation_ttl_seconds: 60 },
      { reservation_ttl_seconds: 60 },
      { hold_at: 'confirm', waitlist: { offer_ttl_seconds: 60 } },
    ]) {
      const res = await http(stack.url, 'POST', '/admin/events', { id: eventId('rs'), name: 'Bad', pools: [{ id: 'ga', name: 'GA', capacity: 2, price: 1 }], ...bad }, { admin: true });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    }
  });

  it('withdraws an orphan (pending in Postgres, never in Redis) once it is old enough, and nothing else', async () => {
    // The worker's own pass (every 10 s, under its orphan lock) would race the calls below for the
    // aged orphan: the test holds that lock, as a second worker would, once the last pass's lapsed.
    const orphanLock = `${stack.prefix}:orphan-lock`;
    await waitFor(async () => (await stack.redis.set(orphanLock, 'test', 'PX', 120_000, 'NX')) === 'OK', 15_000, 'the orphan lock');
    try {
      await orphansWithdrawn();
    } finally {
      await stack.redis.del(orphanLock);
    }
  });
});

/** The orphan test's body, run while it holds the worker's orphan lock. */
async function orphansWithdrawn() {
  const id = await makeEvent();
  const db = stack.api.deps.db;
  // A genuine reservation, and two orders written as the API writes them before Redis refused them
  // and the withdrawal failed too: one old enough to be an orphan, one just inserted.
  const live = await order(id, { buyer_id: 'live', seats: ['A-1-1'] });
  expect(live.status, live.text).toBe(201);
  const orphan = `${id}.orphan000001`;
  const young = `${id}.orphan000002`;
  for (const [muid, buyer] of [[orphan, 'o1'], [young, 'o2']] as const) {
    await ordersRepo.insertOrder(db, { merchantUid: muid, eventId: id, buyerId: buyer, amount: 10_000, currency: 'KRW', seats: [{ id: 'A-1-2', price: 10_000 }], items: [] });
  }
  const age = (muid: string) => sql`update orders set created_at = now() - interval '5 minutes' where merchant_uid = ${muid}`.execute(db);
  await age(orphan);
  await age(live.body.merchant_uid);

  expect(await stack.worker!.withdrawOrphans()).toEqual([orphan]);
  const rows = await db.selectFrom('orders').select(['merchant_uid', 'status']).where('event_id', '=', id).orderBy('merchant_uid').execute();
  expect(rows.map((r) => r.merchant_uid).sort()).toEqual([live.body.merchant_uid, young].sort());
  const log = await db.selectFrom('order_events').select(['type', 'data']).where('merchant_uid', '=', orphan).orderBy('id').execute();
  expect(log).toEqual([{ type: 'created', data: expect.anything() }, { type: 'withdrawn', data: { reason: 'orphan' } }]);
  // Run again: nothing left to withdraw; the young one only once it is old enough (here: any age).
  expect(await stack.worker!.withdrawOrphans()).toEqual([]);
  expect(await stack.worker!.withdrawOrphans({ minAgeMs: 0 })).toEqual([young]);
  expect(await ordersRepo.findOrder(db, live.body.merchant_uid)).toMatchObject({ status: expect.stringMatching(/^(pending|held)$/) });
  // The API's Redis step for a withdrawn orphan comes late (its process stalled between the insert
  // and here): refused, nothing reserved or made visible (attack round 18: it made visible an order
  // Postgres no longer had, and its buyer paid for it).
  const line = { amount: 10_000, buyerId: 'o1', seats: ['A-1-2'], items: [], tickets: 1 };
  expect(await stack.store.reserveOrder(id, { merchantUid: orphan, ...line }, clock.now(), 60_000)).toEqual({ result: 'withdrawn' });
  expect(await stack.store.createOrder(id, { merchantUid: young, ...line })).toBe('withdrawn');
  expect(await stack.store.orderStatuses(id, [orphan, young])).toEqual(new Map([[orphan, null], [young, null]]));
  expect((await http(stack.url, 'GET', `/events/${id}/seats?status=available`)).body.seats.map((x: { id: string }) => x.id)).toContain('A-1-2');
}
