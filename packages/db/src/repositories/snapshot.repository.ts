/**
 * An event's whole state as Postgres records it (`EventSnapshot`): the record Redis is (re)built from.
 */
import type { Db } from '../database.ts';
import type { EventSnapshot, OrderStatus } from '@dropgate/domain';

export type SnapshotRecord = EventSnapshot;

export async function loadSnapshot(db: Db, eventId: string): Promise<SnapshotRecord | null> {
  const event = await db.selectFrom('events').selectAll().where('id', '=', eventId).executeTakeFirst();
  if (!event) return null;
  const [pools, seats, orders, orderSeats, orderItems, holds] = await Promise.all([
    db.selectFrom('pools').select(['id', 'capacity']).where('event_id', '=', eventId).execute(),
    db.selectFrom('seats').select('id').where('event_id', '=', eventId).execute(),
    db.selectFrom('orders').select(['merchant_uid', 'buyer_id', 'amount', 'status']).where('event_id', '=', eventId).execute(),
    db.selectFrom('order_seats').select(['merchant_uid', 'seat_id']).where('event_id', '=', eventId).execute(),
    db.selectFrom('order_items').select(['merchant_uid', 'pool_id', 'quantity']).where('event_id', '=', eventId).execute(),
    db.selectFrom('holds').select(['merchant_uid', 'seq', 'status', 'expires_at', 'imp_uid']).where('event_id', '=', eventId).execute(),
  ]);
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
  const liveHold = new Map<string, { expiresAt: number; seq: number; impUid: string }>();
  for (const h of holds) {
    maxSeq.set(h.merchant_uid, Math.max(maxSeq.get(h.merchant_uid) ?? 0, h.seq));
    if (h.status === 'live') {
      const prev = liveHold.get(h.merchant_uid);
      if (!prev || prev.seq < h.seq) liveHold.set(h.merchant_uid, { expiresAt: h.expires_at.getTime(), seq: h.seq, impUid: h.imp_uid });
    }
  }
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
      // so the sweep settles it (and a late payment takes the seats again if it can).
      const status: OrderStatus = o.status === 'held' && !live ? 'expired' : o.status;
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
      };
    }),
  };
}
