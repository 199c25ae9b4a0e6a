/**
 * Group commit of new orders (issue 10): concurrent order creations share one statement and commit,
 * each caller answered only once its order is in Postgres; a bad order in a batch fails alone.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OrderWriter, withdrawOrders, orders as ordersRepo, events as eventsRepo, type Db } from '@dropgate/db';
import { rand } from '@dropgate/testkit';
import type { NewOrderInput } from '../src/repositories/orders.repository.ts';
import { useTestDatabase } from './support/database.ts';

let db: Db;
useTestDatabase('orderwriter', 10, (opened) => { db = opened; });

async function event(seats: number): Promise<string> {
  const id = `ow-${rand(6)}`;
  await eventsRepo.insertEvent(db, {
    id, name: id, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'ga', name: 'GA', capacity: 100_000, price: 500 }],
    seats: Array.from({ length: seats }, (_, i) => ({ id: `S-1-${i + 1}`, section: 'S', row: '1', number: String(i + 1), price: 1000 })),
  });
  return id;
}

function newOrder(eventId: string, i: number, over: Partial<NewOrderInput> = {}): NewOrderInput {
  const seat = i % 2 === 0;
  return {
    merchantUid: `${eventId}.o${String(i).padStart(10, '0')}`, eventId, buyerId: `b${i}`, currency: 'KRW',
    amount: seat ? 2000 : 1500,
    orderTokenHash: createHash('sha256').update(`token-${i}`).digest(),
    seats: seat ? [{ id: `S-1-${i + 1}`, price: 1000 }, { id: `S-1-${i + 2}`, price: 1000 }] : [],
    items: seat ? [] : [{ pool: 'ga', quantity: 3, unitPrice: 500 }],
    ...over,
  };
}

describe('group commit of new orders', () => {
  it('commits 300 concurrent orders in far fewer statements, each whole: seats, items, token hash and log entry', async () => {
    const id = await event(400);
    const writer = new OrderWriter(db);
    const orders = Array.from({ length: 300 }, (_, i) => newOrder(id, i));
    await Promise.all(orders.map((o) => writer.insert(o)));
    expect(writer.stats.orders).toBe(300);
    expect(writer.stats.statements).toBeLessThan(300);
    expect(writer.stats.largestBatch).toBeGreaterThan(1);

    const rows = await db.selectFrom('orders').select(['merchant_uid', 'amount', 'status', 'order_token_hash', 'buyer_id']).where('event_id', '=', id).orderBy('merchant_uid').execute();
    expect(rows).toHaveLength(300);
    for (const [i, r] of rows.entries()) {
      expect(r).toMatchObject({ merchant_uid: orders[i]!.merchantUid, status: 'pending', buyer_id: `b${i}` });
      expect(Number(r.amount)).toBe(orders[i]!.amount);
      expect(Buffer.compare(r.order_token_hash!, orders[i]!.orderTokenHash!)).toBe(0);
    }
    const seats = await db.selectFrom('order_seats').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow();
    const items = await db.selectFrom('order_items').select(['quantity', 'unit_price']).where('event_id', '=', id).execute();
    const log = await db.selectFrom('order_events').select(['merchant_uid', 'type', 'data']).where('event_id', '=', id).execute();
    expect(Number(seats.n)).toBe(300);
    expect(items).toHaveLength(150);
    expect(items.every((x) => x.quantity === 3 && Number(x.unit_price) === 500)).toBe(true);
    expect(log).toHaveLength(300);
    expect(log.every((e) => e.type === 'created')).toBe(true);
    expect(log.find((e) => e.merchant_uid === orders[1]!.merchantUid)?.data).toEqual({ amount: 1500, buyer_id: 'b1' });
  });

  it('a lone order is written at once, in one statement', async () => {
    const id = await event(4);
    const writer = new OrderWriter(db);
    await writer.insert(newOrder(id, 0, { orderTokenHash: undefined }));
    expect(writer.stats).toEqual({ statements: 1, orders: 1, largestBatch: 1 });
    const row = await ordersRepo.findOrder(db, newOrder(id, 0).merchantUid);
    expect(row?.order_token_hash).toBeNull();
  });

  it('a bad order in a batch fails alone, with its own error; the others commit', async () => {
    const id = await event(100);
    const writer = new OrderWriter(db);
    const orders = Array.from({ length: 40 }, (_, i) => newOrder(id, i));
    // A seat the event does not have breaks the seat foreign key; a duplicate merchant_uid the primary key.
    orders[7] = newOrder(id, 7, { seats: [{ id: 'NOPE-1', price: 1000 }], items: [] });
    orders[21] = { ...newOrder(id, 21), merchantUid: orders[20]!.merchantUid };
    const results = await Promise.allSettled(orders.map((o) => writer.insert(o)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    // Which of 20 and 21 loses the key depends on which committed first; exactly one does.
    expect(failed.includes(7)).toBe(true);
    expect(failed.filter((i) => i === 20 || i === 21)).toHaveLength(1);
    expect(failed).toHaveLength(2);
    const n = await db.selectFrom('orders').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(38);
    // Nothing of the bad order was left behind: no order row, no log entry.
    expect(await ordersRepo.findOrder(db, orders[7]!.merchantUid)).toBeUndefined();
    const log = await db.selectFrom('order_events').select('merchant_uid').where('merchant_uid', '=', orders[7]!.merchantUid).execute();
    expect(log).toEqual([]);
  });

  it('insertOrder shares one writer per database handle', async () => {
    const id = await event(60);
    await Promise.all(Array.from({ length: 50 }, (_, i) => ordersRepo.insertOrder(db, newOrder(id, i))));
    const n = await db.selectFrom('orders').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(50);
  });
});

describe('group commit of withdrawals', () => {
  it('withdraws 200 concurrent refused orders in far fewer statements; an order no longer pending stays', async () => {
    const id = await event(300);
    const orders = Array.from({ length: 201 }, (_, i) => newOrder(id, i, { seats: [], items: [{ pool: 'ga', quantity: 1, unitPrice: 500 }] }));
    await Promise.all(orders.map((o) => ordersRepo.insertOrder(db, o)));
    // The last one moved on (reserved at selection): a withdrawal must leave it alone.
    const kept = orders[200]!.merchantUid;
    await db.updateTable('orders').set({ status: 'held', status_cause: 'hold_taken' }).where('merchant_uid', '=', kept).execute();
    const results = await Promise.all(orders.map((o) => ordersRepo.withdrawOrder(db, o.merchantUid, id, 'sold_out')));
    expect(results.slice(0, 200).every(Boolean)).toBe(true);
    expect(results[200]).toBe(false);
    const left = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute();
    expect(left.map((r) => r.merchant_uid)).toEqual([kept]);
    const items = await db.selectFrom('order_items').select('merchant_uid').where('event_id', '=', id).execute();
    expect(items.map((r) => r.merchant_uid)).toEqual([kept]);
    const log = await db.selectFrom('order_events').select(['merchant_uid', 'data']).where('event_id', '=', id).where('type', '=', 'withdrawn').execute();
    expect(log).toHaveLength(200);
    expect(log.every((e) => (e.data as { reason: string }).reason === 'sold_out')).toBe(true);
    expect(log.some((e) => e.merchant_uid === kept)).toBe(false);
  });

  it('answers per withdrawal in one statement: a second withdrawal of the same order is false', async () => {
    const id = await event(4);
    const o = newOrder(id, 1);
    await ordersRepo.insertOrder(db, o);
    expect(await withdrawOrders(db, [
      { merchantUid: o.merchantUid, eventId: id, reason: 'redis_failed' },
      { merchantUid: `${id}.nope`, eventId: id, reason: 'redis_failed' },
    ])).toEqual([true, false]);
    expect(await withdrawOrders(db, [{ merchantUid: o.merchantUid, eventId: id, reason: 'redis_failed' }])).toEqual([false]);
    // An order of another event is not withdrawn through this one.
    const other = await event(4);
    const p = newOrder(other, 2);
    await ordersRepo.insertOrder(db, p);
    expect(await withdrawOrders(db, [{ merchantUid: p.merchantUid, eventId: id, reason: 'x' }])).toEqual([false]);
    expect(await ordersRepo.findOrder(db, p.merchantUid)).toBeDefined();
  });
});
