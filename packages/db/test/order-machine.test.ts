/**
 * The order state machine at the record: Postgres holds the same table as @dropgate/domain, refuses
 * every change it does not allow (including a concurrent race to two ends), and logs each change with
 * its cause.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { ORDER_MACHINE, OrderCauses, OrderStatuses, transitionRows, nextStatus, type OrderStatus } from '@dropgate/domain';
import { lifecycle, orders as ordersRepo, events as eventsRepo, isTransitionViolation, type Db } from '@dropgate/db';
import { useTestDatabase } from './support/database.ts';

let db: Db;
const EVENT = 'machine';
let n = 0;
useTestDatabase('machine', 10, (opened) => { db = opened; });
beforeAll(async () => {
  await eventsRepo.insertEvent(db, {
    id: EVENT, name: EVENT, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'p', name: 'P', capacity: 10, price: 1 }], seats: [],
  });
});

/** A new order, walked to `status` along allowed causes. */
async function orderIn(status: OrderStatus): Promise<string> {
  const uid = `${EVENT}.o${String(n++).padStart(10, '0')}`;
  await ordersRepo.insertOrder(db, { merchantUid: uid, eventId: EVENT, buyerId: 'b', amount: 1, currency: 'KRW', seats: [], items: [] });
  const path: Record<OrderStatus, (typeof OrderCauses)[number][]> = {
    pending: [], held: ['hold_taken'], paid: ['paid'], released: ['hold_taken', 'payment_failed'],
    expired: ['hold_taken', 'hold_expired'], refunded: ['paid', 'cancelled_at_portone'],
  };
  for (const cause of path[status]) expect(await lifecycle.transition(db, uid, cause, null)).toBe(true);
  return uid;
}

describe('order state machine', () => {
  it('Postgres holds exactly the machine of @dropgate/domain', async () => {
    const rows = await db.selectFrom('order_transitions').selectAll().execute();
    const key = (r: { cause: string; from: string; to: string }) => `${r.cause}:${r.from}->${r.to}`;
    expect(rows.map((r) => key({ cause: r.cause, from: r.from_status, to: r.to_status })).sort()).toEqual(transitionRows().map(key).sort());
  });

  it('refuses every change the machine does not allow, from every status, by trigger', async () => {
    for (const from of OrderStatuses) {
      for (const cause of OrderCauses) {
        const uid = await orderIn(from);
        const to = ORDER_MACHINE[cause].to;
        const current = (await db.selectFrom('orders').select('status_cause').where('merchant_uid', '=', uid).executeTakeFirstOrThrow()).status_cause;
        const attempt = sql`update orders set status = ${to}, status_cause = ${cause} where merchant_uid = ${uid}`.execute(db);
        // Allowed: a change the machine has, or no change at all (same status, same cause). A cause
        // rewritten without a status change is refused too: the log would not show it.
        if (from === to ? current === cause : nextStatus(from, cause) !== null) {
          await attempt;
        } else {
          const error = await attempt.then(() => null, (e: unknown) => e);
          expect(isTransitionViolation(error), `${cause} from ${from}`).toBe(true);
        }
      }
    }
    // A status change without a cause, and an order created anything but pending, are refused too.
    const uid = await orderIn('held');
    expect(isTransitionViolation(await sql`update orders set status = 'paid' where merchant_uid = ${uid}`.execute(db).then(() => null, (e) => e))).toBe(true);
    const insert = sql`insert into orders (merchant_uid, event_id, buyer_id, amount, currency, status) values (${`${EVENT}.x0000000000`}, ${EVENT}, 'b', 1, 'KRW', 'paid')`;
    expect(isTransitionViolation(await insert.execute(db).then(() => null, (e) => e))).toBe(true);
  });

  it('refunded is final and paid only refunds: the repository turns a late outcome into a no-op', async () => {
    const refunded = await orderIn('refunded');
    for (const cause of OrderCauses) expect(await lifecycle.transition(db, refunded, cause, 'late')).toBe(false);
    const paid = await orderIn('paid');
    for (const cause of OrderCauses.filter((c) => c !== 'cancelled_at_portone')) expect(await lifecycle.transition(db, paid, cause, 'late')).toBe(false);
    expect((await ordersRepo.findOrder(db, refunded))?.status).toBe('refunded');
    expect((await ordersRepo.findOrder(db, paid))?.status).toBe('paid');
  });

  it('logs every change with its cause and reason; two racing ends leave exactly one', async () => {
    const uid = await orderIn('held');
    const results = await Promise.all([
      lifecycle.transition(db, uid, 'hold_expired', 'ran out'),
      lifecycle.transition(db, uid, 'payment_cancelled', 'cancelled'),
      lifecycle.transition(db, uid, 'payment_failed', 'declined'),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const log = await db.selectFrom('order_events').select('data').where('merchant_uid', '=', uid).where('type', '=', 'status').orderBy('id').execute();
    expect(log.map((l) => (l.data as { to: string }).to)).toEqual(['held', (await ordersRepo.findOrder(db, uid))!.status]);
    expect(log[0]!.data).toMatchObject({ from: 'pending', to: 'held', cause: 'hold_taken' });
  });
});
