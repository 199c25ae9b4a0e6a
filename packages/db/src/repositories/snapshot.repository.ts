/**
 * An event's whole state as Postgres records it (`EventSnapshot`): the record Redis is (re)built from.
 *
 * Every place is loaded with at most one claim. Postgres refuses two sales of one seat and a pool sold
 * past its capacity (by constraint), but holds are claims Redis alone arbitrates: after a Redis fault
 * (a failover promoted a replica lacking a hold its primary acknowledged and the worker recorded; a hold
 * recorded just after a rebuild read the record) Redis may have given the same place to another order,
 * and the record then has both. Loading both would count the place twice. Sales win, then live holds
 * in the order they were recorded; a hold whose places are taken is displaced (see EventSnapshot).
 *
 * Everything is read as of ONE moment of the record (one read-only repeatable-read transaction).
 * Read statement by statement on several connections, the reads saw different moments while the drop
 * went on, and a hold recorded after the orders were read and before the holds were (issue 12: the
 * rebuild after a failover, under CPU load) was loaded as an order still pending but numbered with
 * that hold (seq). The worker that recorded it, run again because the event was loaded meanwhile,
 * found Redis pending at the hold's own number, took the hold for undone and skipped it; at its expiry
 * only the hold row ended ("ended in Redis (pending)"), and the order stayed held in the record for
 * good with its places free in Redis (invariants 3 and 4; a paid one was refunded as seats_gone). As of
 * one moment, a hold recorded after it is not in the snapshot at all: Redis numbers the order below
 * the hold, and the worker ends the hold in the record at once (persist-hold.processor.ts).
 */
import type { Db } from '../database.ts';
import type { EventSnapshot, OrderStatus } from '@dropgate/domain';

export type SnapshotRecord = EventSnapshot;

export async function loadSnapshot(db: Db, eventId: string): Promise<SnapshotRecord | null> {
  const record = await readRecord(db, eventId);
  if (!record) return null;
  const { event, pools, seats, orders, orderSeats, orderItems, holds } = record;
  const seatsOf = new Map<string, string[]>();
  for (const s of orderSeats) {
    const list = seatsOf.get(s.merchant_uid) ?? [];
    list.push(s.seat_id);
    seatsOf.set(s.merchant_uid, list);
  }
  const itemsOf = new Map<string, { pool: string; quantity: number }[]>();
  for (const i of orderItems) {
    const list = itemsOf.get(i.merchant_uid) ?? [];
    list.push({ pool: i.pool_id, quantity: i.quantity });
    itemsOf.set(i.merchant_uid, list);
  }
  const maxSeq = new Map<string, number>();
  const liveHold = new Map<string, { expiresAt: number; seq: number; impUid: string; recordedAt: number }>();
  for (const h of holds) {
    maxSeq.set(h.merchant_uid, Math.max(maxSeq.get(h.merchant_uid) ?? 0, h.seq));
    if (h.status === 'live') {
      const prev = liveHold.get(h.merchant_uid);
      if (!prev || prev.seq < h.seq) liveHold.set(h.merchant_uid, { expiresAt: h.expires_at.getTime(), seq: h.seq, impUid: h.imp_uid, recordedAt: h.created_at.getTime() });
    }
  }
  const displaced = displacedHolds(
    pools,
    orders.map((o) => ({ merchantUid: o.merchant_uid, status: o.status, live: liveHold.get(o.merchant_uid) ?? null })),
    seatsOf,
    itemsOf,
  );
  return {
    id: event.id,
    opensAt: event.sale_opens_at.getTime(),
    closesAt: event.sale_closes_at ? event.sale_closes_at.getTime() : null,
    holdTtlMs: event.hold_ttl_seconds * 1000,
    maxPerBuyer: event.max_per_buyer,
    pools: pools.map((p) => ({ id: p.id, capacity: p.capacity })),
    seats: seats.map((s) => s.id),
    orders: orders.map((o) => {
      const live = liveHold.get(o.merchant_uid);
      // An order recorded as held without a live hold row cannot keep its seats: treat it as expired
      // so the sweep settles it (and a late payment takes the seats again if it can). One whose places
      // another claim has is loaded released: the rebuild ends its hold in the record too.
      const status: OrderStatus = o.status === 'held' && !live ? 'expired' : displaced.has(o.merchant_uid) ? 'released' : o.status;
      return {
        merchantUid: o.merchant_uid,
        amount: o.amount,
        buyerId: o.buyer_id,
        seats: seatsOf.get(o.merchant_uid) ?? [],
        items: itemsOf.get(o.merchant_uid) ?? [],
        status,
        holdExpiresAt: status === 'held' && live ? live.expiresAt : null,
        seq: maxSeq.get(o.merchant_uid) ?? 0,
        impUid: status === 'held' && live ? live.impUid : null,
        buyerVerified: o.buyer_verified,
        portoneApi: o.portone_api,
      };
    }),
    displaced: [...displaced],
  };
}

/**
 * The event's rows, all as of one moment: one read-only transaction at repeatable read (its snapshot is
 * taken by its first statement), the statements one after the other on its connection.
 */
function readRecord(db: Db, eventId: string) {
  return db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(async (trx) => {
    const event = await trx.selectFrom('events').selectAll().where('id', '=', eventId).executeTakeFirst();
    if (!event) return null;
    const pools = await trx.selectFrom('pools').select(['id', 'capacity']).where('event_id', '=', eventId).execute();
    const seats = await trx.selectFrom('seats').select('id').where('event_id', '=', eventId).execute();
    const orders = await trx.selectFrom('orders').select(['merchant_uid', 'buyer_id', 'amount', 'status', 'buyer_verified', 'portone_api']).where('event_id', '=', eventId).execute();
    const orderSeats = await trx.selectFrom('order_seats').select(['merchant_uid', 'seat_id']).where('event_id', '=', eventId).execute();
    const orderItems = await trx.selectFrom('order_items').select(['merchant_uid', 'pool_id', 'quantity']).where('event_id', '=', eventId).execute();
    const holds = await trx.selectFrom('holds').select(['merchant_uid', 'seq', 'status', 'expires_at', 'imp_uid', 'created_at']).where('event_id', '=', eventId).execute();
    return { event, pools, seats, orders, orderSeats, orderItems, holds };
  });
}

interface Claimant {
  merchantUid: string;
  status: OrderStatus;
  live: { recordedAt: number } | null;
}

/**
 * The held orders whose places another claim has: every sale first (the record's constraints keep
 * sales apart), then the live holds in the order they were recorded (ties by merchant_uid); a hold is
 * kept only if all its seats are unclaimed and every pool has room for its quantity.
 */
export function displacedHolds(
  pools: readonly { id: string; capacity: number }[],
  orders: readonly Claimant[],
  seatsOf: ReadonlyMap<string, readonly string[]>,
  itemsOf: ReadonlyMap<string, readonly { pool: string; quantity: number }[]>,
): Set<string> {
  const seatTaken = new Set<string>();
  const room = new Map(pools.map((p) => [p.id, p.capacity]));
  const take = (muid: string) => {
    for (const seat of seatsOf.get(muid) ?? []) seatTaken.add(seat);
    for (const i of itemsOf.get(muid) ?? []) room.set(i.pool, (room.get(i.pool) ?? 0) - i.quantity);
  };
  for (const o of orders) if (o.status === 'paid') take(o.merchantUid);
  const holds = orders
    .filter((o) => o.status === 'held' && o.live !== null)
    .sort((a, b) => a.live!.recordedAt - b.live!.recordedAt || (a.merchantUid < b.merchantUid ? -1 : a.merchantUid > b.merchantUid ? 1 : 0));
  const displaced = new Set<string>();
  for (const o of holds) {
    const need = new Map<string, number>();
    for (const i of itemsOf.get(o.merchantUid) ?? []) need.set(i.pool, (need.get(i.pool) ?? 0) + i.quantity);
    const free = (seatsOf.get(o.merchantUid) ?? []).every((seat) => !seatTaken.has(seat))
      && [...need].every(([pool, quantity]) => (room.get(pool) ?? 0) >= quantity);
    if (free) take(o.merchantUid);
    else displaced.add(o.merchantUid);
  }
  return displaced;
}
