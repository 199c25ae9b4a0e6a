/**
 * Settlement in batches (issue 10): concurrent paid outcomes share one transaction, and each one
 * stays whole and idempotent. Real Postgres, a database of this file's own.
 */
import { describe, expect, it } from 'vitest';
import { events as eventsRepo, insertOrders, isOversellViolation, lifecycle, orders as ordersRepo, settlement, type Db } from '@dropgate/db';
import { sql } from 'kysely';
import { rand, waitFor } from '@dropgate/testkit';
import type { NewOrderInput } from '../src/repositories/orders.repository.ts';
import { useTestDatabase } from './support/database.ts';

let db: Db;
useTestDatabase('settlebatch', 10, (opened) => { db = opened; });

async function event(seats: number, poolCapacity: number): Promise<string> {
  const id = `sb-${rand(6)}`;
  await eventsRepo.insertEvent(db, {
    id, name: id, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'ga', name: 'GA', capacity: poolCapacity, price: 500 }],
    seats: Array.from({ length: seats }, (_, i) => ({ id: `S-1-${i + 1}`, section: 'S', row: '1', number: String(i + 1), price: 1000 })),
  });
  return id;
}

/** Order `i`: seat `S-1-<seat>` when given, else `quantity` places of the pool. */
function newOrder(eventId: string, i: number, line: { seat: number } | { quantity: number }): NewOrderInput {
  const seat = 'seat' in line;
  return {
    merchantUid: `${eventId}.o${String(i).padStart(10, '0')}`, eventId, buyerId: `b${i}`, currency: 'KRW',
    amount: seat ? 1000 : 500 * line.quantity,
    seats: seat ? [{ id: `S-1-${line.seat}`, price: 1000 }] : [],
    items: seat ? [] : [{ pool: 'ga', quantity: line.quantity, unitPrice: 500 }],
  };
}

/** Orders made and held, their payments recorded as paid, as the worker finds them before committing. */
async function heldAndPaid(orders: NewOrderInput[]): Promise<void> {
  await insertOrders(db, orders);
  for (const [i, o] of orders.entries()) {
    await lifecycle.recordHold(db, { holdId: `${o.merchantUid}-1`, merchantUid: o.merchantUid, eventId: o.eventId, impUid: `imp_${o.merchantUid}`, seq: 1, expiresAt: new Date(Date.now() + 60_000) }, 'live');
    await lifecycle.upsertPayment(db, {
      impUid: `imp_${o.merchantUid}`, merchantUid: o.merchantUid, eventId: o.eventId, amount: o.amount, cancelAmount: 0, status: 'paid', failReason: null, paidAt: new Date(1_700_000_000_000 + i),
    });
  }
}

const commit = (o: NewOrderInput) => ({ merchantUid: o.merchantUid, eventId: o.eventId, impUid: `imp_${o.merchantUid}`, amount: o.amount, via: 'committed' });

async function ticketsOf(eventId: string) {
  return db.selectFrom('tickets').select(['merchant_uid', 'seat_id', 'pool_id', 'serial', 'imp_uid']).where('event_id', '=', eventId).execute();
}

async function logOf(merchantUid: string) {
  return db.selectFrom('order_events').select(['type', 'data']).where('merchant_uid', '=', merchantUid).orderBy('id').execute();
}

describe('settlement in batches', () => {
  it('commits many concurrent paid outcomes in far fewer transactions, each order whole', async () => {
    const id = await event(40, 1_000);
    const orders = Array.from({ length: 80 }, (_, i) => newOrder(id, i, i % 2 === 0 ? { seat: i / 2 + 1 } : { quantity: 1 + (i % 3) }));
    await heldAndPaid(orders);
    const writer = settlement.settlementWriter(db);
    const before = { ...writer.stats.commit };
    const results = await Promise.all(orders.map((o) => writer.commitPaid(commit(o))));
    expect(results.every((r) => r.result === 'paid')).toBe(true);
    expect(writer.stats.commit.items - before.items).toBe(80);
    expect(writer.stats.commit.statements - before.statements).toBeLessThan(80);
    expect(writer.stats.commit.largestBatch).toBeGreaterThan(1);

    const tickets = await ticketsOf(id);
    const serials = tickets.filter((t) => t.pool_id === 'ga').map((t) => t.serial!).sort((a, b) => a - b);
    const places = orders.reduce((n, o) => n + (o.items[0]?.quantity ?? 0), 0);
    // Every place its own serial, from 1 up without a gap, whichever batch issued it.
    expect(serials).toEqual(Array.from({ length: places }, (_, i) => i + 1));
    for (const o of orders) {
      const mine = tickets.filter((t) => t.merchant_uid === o.merchantUid);
      expect(mine).toHaveLength(o.seats.length + (o.items[0]?.quantity ?? 0));
      expect(mine.every((t) => t.imp_uid === `imp_${o.merchantUid}`)).toBe(true);
      if (o.seats[0]) expect(mine[0]!.seat_id).toBe(o.seats[0].id);
    }
    const rows = await db.selectFrom('orders').select(['merchant_uid', 'status', 'status_cause', 'paid_imp_uid', 'hold_expires_at']).where('event_id', '=', id).execute();
    for (const r of rows) expect(r).toMatchObject({ status: 'paid', status_cause: 'paid', paid_imp_uid: `imp_${r.merchant_uid}`, hold_expires_at: null });
    const holds = await db.selectFrom('holds').select(['status', 'end_reason']).where('event_id', '=', id).execute();
    expect(holds.every((h) => h.status === 'committed' && h.end_reason === 'paid')).toBe(true);
    // The state machine's trigger logged the change, then the paid entry follows it.
    const log = await logOf(orders[1]!.merchantUid);
    expect(log.map((e) => e.type).sort()).toEqual(['created', 'hold_recorded', 'paid', 'status', 'status']);
    expect(log.slice(-2).map((e) => e.type)).toEqual(['status', 'paid']);
    expect(log.at(-2)!.data).toMatchObject({ from: 'held', to: 'paid', cause: 'paid' });
    expect(log.at(-1)!.data).toEqual({ imp_uid: `imp_${orders[1]!.merchantUid}`, amount: orders[1]!.amount, via: 'committed' });
  });

  it('the same outcome submitted many times at once changes the order once', async () => {
    const id = await event(4, 100);
    const orders = [newOrder(id, 0, { quantity: 2 }), newOrder(id, 1, { seat: 1 }), newOrder(id, 2, { quantity: 3 })];
    await heldAndPaid(orders);
    const writer = settlement.settlementWriter(db);
    const results = await Promise.all([...Array.from({ length: 10 }, () => orders[0]!), ...orders, ...Array.from({ length: 10 }, () => orders[1]!)]
      .map((o) => writer.commitPaid(commit(o)).then((r) => ({ muid: o.merchantUid, r: r.result }))));
    for (const o of orders) {
      const mine = results.filter((x) => x.muid === o.merchantUid).map((x) => x.r);
      expect(mine.filter((r) => r === 'paid')).toHaveLength(1);
      expect(mine.filter((r) => r !== 'paid').every((r) => r === 'already-paid')).toBe(true);
    }
    const tickets = await ticketsOf(id);
    expect(tickets).toHaveLength(6);
    expect(tickets.filter((t) => t.pool_id === 'ga').map((t) => t.serial).sort()).toEqual([1, 2, 3, 4, 5]);
    for (const o of orders) expect((await logOf(o.merchantUid)).filter((e) => e.type === 'paid')).toHaveLength(1);
    // Once more, later: still nothing changes.
    expect((await writer.commitPaid(commit(orders[0]!))).result).toBe('already-paid');
    expect(await ticketsOf(id)).toHaveLength(6);
  });

  it('a batch where one outcome oversells commits the others; that one gets its own error and changes nothing', async () => {
    const id = await event(40, 100);
    // Order 0 has seat 1 sold already (Redis wrongly let order 1 take it too).
    const first = newOrder(id, 0, { seat: 1 });
    await heldAndPaid([first]);
    expect((await settlement.commitPaidOne(db, commit(first))).result).toBe('paid');
    const twice = newOrder(id, 1, { seat: 1 });
    const others = Array.from({ length: 30 }, (_, i) => newOrder(id, i + 2, i % 2 === 0 ? { seat: i + 2 } : { quantity: 2 }));
    await heldAndPaid([twice, ...others]);
    const writer = settlement.settlementWriter(db);
    const aloneBefore = writer.stats.commit.splitBatches;
    const all = [...others.slice(0, 15), twice, ...others.slice(15)];
    const settled = await Promise.allSettled(all.map((o) => writer.commitPaid(commit(o))));
    const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [{ muid: all[i]!.merchantUid, error: s.reason }] : []));
    expect(failed.map((f) => f.muid)).toEqual([twice.merchantUid]);
    expect(isOversellViolation(failed[0]!.error)).toBe(true);
    // The refused batch was written again one order at a time.
    expect(writer.stats.commit.splitBatches).toBeGreaterThan(aloneBefore);
    for (const s of settled) if (s.status === 'fulfilled') expect(s.value.result).toBe('paid');
    const tickets = await ticketsOf(id);
    expect(tickets.filter((t) => t.merchant_uid === twice.merchantUid)).toEqual([]);
    expect(tickets.filter((t) => t.seat_id === 'S-1-1').map((t) => t.merchant_uid)).toEqual([first.merchantUid]);
    expect(tickets.filter((t) => t.pool_id === 'ga').map((t) => t.serial).sort((a, b) => a! - b!)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const twiceRow = await db.selectFrom('orders').select(['status']).where('merchant_uid', '=', twice.merchantUid).executeTakeFirstOrThrow();
    expect(twiceRow.status).toBe('held');
    expect((await logOf(twice.merchantUid)).filter((e) => e.type === 'paid')).toEqual([]);
  });

  it('an order the state machine does not let become paid is refused alone, unchanged', async () => {
    const id = await event(2, 10);
    const [a, b] = [newOrder(id, 0, { seat: 1 }), newOrder(id, 1, { seat: 2 })];
    await heldAndPaid([a, b]);
    expect(await lifecycle.transition(db, a.merchantUid, 'refund_seats_gone', 'seats gone')).toBe(true);
    const [ra, rb] = await Promise.all([settlement.settlementWriter(db).commitPaid(commit(a)), settlement.settlementWriter(db).commitPaid(commit(b))]);
    expect(ra).toEqual({ result: 'refused', status: 'refunded' });
    expect(rb.result).toBe('paid');
    expect((await ticketsOf(id)).map((t) => t.merchant_uid)).toEqual([b.merchantUid]);
  });

  it('a refund claimed again before it is done takes the new amount (what is left); once done, nothing changes it', async () => {
    const id = await event(2, 10);
    const [o] = [newOrder(id, 0, { seat: 1 })];
    await insertOrders(db, [o!]);
    const claim = (amount: number) => lifecycle.claimRefund(db, { impUid: 'imp_again', merchantUid: o!.merchantUid, eventId: id, amount, reason: 'seats_gone' });
    expect(await claim(1000)).toBe(true);
    expect(await claim(600)).toBe(true);
    expect(await lifecycle.findRefund(db, 'imp_again')).toEqual({ status: 'requested', reason: 'seats_gone', amount: 600 });
    await lifecycle.markRefundDone(db, 'imp_again');
    expect(await claim(100)).toBe(false);
    expect(await lifecycle.findRefund(db, 'imp_again')).toEqual({ status: 'done', reason: 'seats_gone', amount: 600 });
  });

  it('records many payments and reads their orders and refunds in one statement; a reading older than the record never wins', async () => {
    const id = await event(4, 10);
    const orders = [newOrder(id, 0, { seat: 1 }), newOrder(id, 1, { seat: 2 })];
    await insertOrders(db, orders);
    await lifecycle.claimRefund(db, { impUid: 'imp_r1', merchantUid: orders[1]!.merchantUid, eventId: id, amount: 1000, reason: 'seats_gone' });
    await lifecycle.upsertPayment(db, { impUid: 'imp_r1', merchantUid: orders[1]!.merchantUid, eventId: id, amount: 1000, cancelAmount: 1000, status: 'cancelled', failReason: null, paidAt: null });
    const rec = (impUid: string, merchantUid: string, eventId: string, status: string, cancelAmount = 0) =>
      ({ impUid, merchantUid, eventId, amount: 1000, cancelAmount, status, failReason: null, paidAt: status === 'paid' ? new Date(1_700_000_000_000) : null });
    const writer = settlement.settlementWriter(db);
    const [r0, r1, unknown, otherEvent] = await Promise.all([
      writer.recordPayment(rec('imp_p0', orders[0]!.merchantUid, id, 'paid')),
      // A stale reading (paid, before our refund): the record keeps the cancelled one.
      writer.recordPayment(rec('imp_r1', orders[1]!.merchantUid, id, 'paid')),
      writer.recordPayment(rec('imp_x', `${id}.nope`, id, 'paid')),
      writer.recordPayment(rec('imp_y', orders[0]!.merchantUid, 'sb-other', 'paid')),
    ]);
    expect(r0.order).toMatchObject({ merchant_uid: orders[0]!.merchantUid, event_id: id, status: 'pending', amount: 1000 });
    expect(r0.refund).toBeUndefined();
    expect(r1.refund).toEqual({ status: 'requested', reason: 'seats_gone', amount: 1000 });
    expect(unknown.order).toBeUndefined();
    expect(otherEvent.order?.event_id).toBe(id);
    const payments = await db.selectFrom('payments').select(['imp_uid', 'status', 'cancel_amount', 'paid_at']).where('event_id', 'in', [id, 'sb-other']).orderBy('imp_uid').execute();
    expect(payments.map((p) => [p.imp_uid, p.status, Number(p.cancel_amount)])).toEqual([['imp_p0', 'paid', 0], ['imp_r1', 'cancelled', 1000]]);
    expect(payments[0]!.paid_at?.getTime()).toBe(1_700_000_000_000);
  });
});

describe('a paid commit holding its pools does not hold up new orders of them', () => {
  /**
   * Holds `commitPaid` of order `paid` with its pool locked: another transaction (the test's) has locked
   * the order's hold row, so the commit waits for it after locking the pool, where it ends the hold.
   * Meanwhile a new order of that pool is made (its item's foreign key reads the pool row); then the
   * test's transaction is rolled back.
   */
  async function orderWhilePoolLocked(commitPaid: (c: ReturnType<typeof commit>) => Promise<settlement.PaidCommitResult>) {
    const id = await event(0, 10);
    const paid = newOrder(id, 0, { quantity: 1 });
    const fresh = newOrder(id, 2, { quantity: 2 });
    await heldAndPaid([paid]);
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    let blocking!: () => void;
    const blocked = new Promise<void>((resolve) => { blocking = resolve; });
    const holder = db.transaction().execute(async (trx) => {
      await trx.selectFrom('holds').select('hold_id').where('merchant_uid', '=', paid.merchantUid).forUpdate().execute();
      blocking();
      await released;
      throw new Error('rolled back');
    }).catch((error: Error) => error.message);
    await blocked;
    let committing: Promise<settlement.PaidCommitResult> | undefined;
    let made: string;
    try {
      committing = commitPaid(commit(paid));
      // The commit waits for the test's transaction, with the pool locked.
      await waitFor(async () => {
        const { rows } = await sql<{ n: string }>`
          select count(*) as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()
        `.execute(db);
        return Number(rows[0]!.n) > 0;
      }, 10_000, 'the commit to wait with its pool locked');
      made = await Promise.race([
        insertOrders(db, [fresh]).then(() => 'made'),
        new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), 3_000)),
      ]);
    } finally {
      // Whatever happened above, the test's transaction ends (else this file's database stays in use).
      release();
    }
    expect(await holder).toBe('rolled back');
    expect((await committing!).result).toBe('paid');
    expect(made).toBe('made');
    expect(await db.selectFrom('orders').select('status').where('merchant_uid', '=', fresh.merchantUid).executeTakeFirst()).toEqual({ status: 'pending' });
    expect((await ticketsOf(id)).map((t) => [t.merchant_uid, t.serial])).toEqual([[paid.merchantUid, 1]]);
  }

  it('in a batch', async () => {
    await orderWhilePoolLocked((c) => settlement.settlementWriter(db).commitPaid(c));
  });

  it('alone (the batch\'s fallback)', async () => {
    await orderWhilePoolLocked((c) => settlement.commitPaidOne(db, c));
  });
});

describe('orders read together (the worker verifying every approved confirm)', () => {
  it('concurrent reads share statements, and each caller gets its own order or undefined', async () => {
    const id = await event(0, 1_000);
    const orders = Array.from({ length: 300 }, (_, i) => newOrder(id, i, { quantity: 1 + (i % 3) }));
    await insertOrders(db, orders);
    const reader = ordersRepo.orderReader(db);
    const before = { ...reader.stats };
    const asked = [...orders.map((o) => o.merchantUid), `${id}.missing0001`, `${id}.missing0002`];
    const found = await Promise.all(asked.map((uid) => reader.findOrder(uid)));
    expect(found.slice(0, 300).map((o) => [o?.merchant_uid, Number(o?.amount)])).toEqual(orders.map((o) => [o.merchantUid, o.amount]));
    expect(found.slice(300)).toEqual([undefined, undefined]);
    expect(reader.stats.items - before.items).toBe(302);
    expect(reader.stats.statements - before.statements).toBeLessThan(302);
    expect(reader.stats.largestBatch).toBeGreaterThan(1);
    // The same order asked twice at once: both callers get it.
    const [a, b] = await Promise.all([reader.findOrder(orders[0]!.merchantUid), reader.findOrder(orders[0]!.merchantUid)]);
    expect(a?.merchant_uid).toBe(orders[0]!.merchantUid);
    expect(b?.merchant_uid).toBe(orders[0]!.merchantUid);
  });
});
