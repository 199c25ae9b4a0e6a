/**
 * The batched statements of the hot paths run as named prepared statements (database.ts): each
 * connection parses and plans a marked text once, whatever the batch size, and an unmarked text runs
 * as before.
 */
import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { OrderWriter, PREPARED_MARK, preparedStatementName, withdrawOrders, events as eventsRepo, type Db } from '@dropgate/db';
import { rand } from '@dropgate/testkit';
import type { NewOrderInput } from '../src/repositories/orders.repository.ts';
import { useTestDatabase } from './support/database.ts';

/** One connection: what the test reads of pg_prepared_statements is the connection the writes used. */
let db: Db;
useTestDatabase('prepared', 1, (opened) => { db = opened; });

describe('statement names', () => {
  it('names marked texts only, by label and text, the same text always the same name', () => {
    expect(preparedStatementName('select 1')).toBeNull();
    expect(preparedStatementName(' /* prepared: x */ select 1')).toBeNull();
    const a = preparedStatementName(`${PREPARED_MARK}pick_one */ select 1`);
    const b = preparedStatementName(`${PREPARED_MARK}pick_one */ select 2`);
    expect(a).toMatch(/^dg_pick_one_[0-9a-f]{16}$/);
    expect(b).toMatch(/^dg_pick_one_[0-9a-f]{16}$/);
    expect(a).not.toBe(b);
    expect(preparedStatementName(`${PREPARED_MARK}pick_one */ select 1`)).toBe(a);
    // A label is an identifier's part: anything else in it is left out.
    expect(preparedStatementName(`${PREPARED_MARK}a'b; drop */ select 3`)).toMatch(/^dg_abdrop_[0-9a-f]{16}$/);
  });
});

describe('the batched writes on one connection', () => {
  it('parse the order insert and the withdrawal once for batches of any size, and write what they always wrote', async () => {
    const id = `pr-${rand(6)}`;
    await eventsRepo.insertEvent(db, {
      id, name: id, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
      pools: [{ id: 'ga', name: 'GA', capacity: 1_000, price: 500 }], seats: [],
    });
    const order = (i: number): NewOrderInput => ({
      merchantUid: `${id}.o${String(i).padStart(10, '0')}`, eventId: id, buyerId: `b${i}`, currency: 'KRW', amount: 500 * (1 + (i % 3)),
      seats: [], items: [{ pool: 'ga', quantity: 1 + (i % 3), unitPrice: 500 }],
    });
    const statements = async () => (await sql<{ name: string; generic_plans: number; custom_plans: number }>`
      select name, generic_plans::int, custom_plans::int from pg_prepared_statements where name like 'dg\\_%' order by name
    `.execute(db)).rows;
    expect(await statements()).toEqual([]);

    // Batches of 1, 7 and 40 orders (one writer, each batch committed before the next is submitted).
    const writer = new OrderWriter(db);
    let n = 0;
    for (const size of [1, 7, 40]) {
      const batch = Array.from({ length: size }, () => order(n++));
      await Promise.all(batch.map((o) => writer.insert(o)));
    }
    const inserts = (await statements()).filter((s) => s.name.startsWith('dg_insert_orders_'));
    expect(inserts).toHaveLength(1);
    expect(inserts[0]!.generic_plans + inserts[0]!.custom_plans).toBe(writer.stats.statements);

    const rows = await db.selectFrom('orders').select(['merchant_uid', 'amount', 'status']).where('event_id', '=', id).orderBy('merchant_uid').execute();
    expect(rows.map((r) => [r.merchant_uid, Number(r.amount), r.status])).toEqual(Array.from({ length: 48 }, (_, i) => [order(i).merchantUid, order(i).amount, 'pending']));
    const items = await db.selectFrom('order_items').select((eb) => eb.fn.sum<string>('quantity').as('q')).where('event_id', '=', id).executeTakeFirstOrThrow();
    expect(Number(items.q)).toBe(Array.from({ length: 48 }, (_, i) => 1 + (i % 3)).reduce((a, b) => a + b, 0));

    // Withdrawals, twice: the second finds nothing pending and withdraws nothing.
    const back = [order(0), order(5), order(47)].map((o) => ({ merchantUid: o.merchantUid, eventId: id, reason: 'test' }));
    expect(await withdrawOrders(db, back)).toEqual([true, true, true]);
    expect(await withdrawOrders(db, back)).toEqual([false, false, false]);
    const withdrawals = (await statements()).filter((s) => s.name.startsWith('dg_withdraw_orders_'));
    expect(withdrawals).toHaveLength(1);
    expect(withdrawals[0]!.generic_plans + withdrawals[0]!.custom_plans).toBe(2);
    expect(await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute()).toHaveLength(45);

    // Unmarked statements are not prepared.
    await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute();
    expect((await statements()).map((s) => s.name.replace(/_[0-9a-f]{16}$/, ''))).toEqual(['dg_insert_orders', 'dg_withdraw_orders']);
  });
});
