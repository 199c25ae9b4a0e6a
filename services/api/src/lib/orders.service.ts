/**
 * Creating an order: price it from the event's definition, check the sale window and the buyer's
 * limit, record it in Postgres, then make it visible to the confirm script in Redis. Holds nothing.
 *
 * Redis is asked first (the preflight; the API's client fails at once while Redis is down, answered
 * 503 NOT_READY), so an outage writes nothing. If Redis fails after the insert, the order, which the
 * buyer never received, is withdrawn again: nothing half-made stays behind.
 */
import { DomainError, newMerchantUid, ticketCount, type PoolItem } from '@dropgate/domain';
import { orders as ordersRepo, type Db } from '@dropgate/db';
import type { HoldStore } from '@dropgate/redis';
import type { EventDef } from './catalog.ts';
import { newOrderToken } from './secrets.ts';
import type { Static } from 'typebox';
import type { CreateOrderBody } from '../schemas.ts';

/** The storefront's order, as the request schema (CreateOrderBody) defines it. */
export type CreateOrderInput = Static<typeof CreateOrderBody>;

export interface CreatedOrder {
  merchant_uid: string;
  event_id: string;
  amount: number;
  currency: string;
  status: 'pending';
  /** The buyer's key to read the order (GET /orders/:merchant_uid); only its hash is stored. */
  order_token: string;
}

/** Best effort: when Postgres fails too, the pending order stays (harmless: nobody knows its uid). */
async function withdraw(db: Db, eventId: string, merchantUid: string, reason: string): Promise<void> {
  await ordersRepo.withdrawOrder(db, merchantUid, eventId, reason).catch(() => false);
}

export async function createOrder(
  db: Db, store: HoldStore, event: EventDef, input: CreateOrderInput, now: Date, defaultApi: 'v1' | 'v2' = 'v1',
): Promise<CreatedOrder> {
  const seatIds = input.seats ?? [];
  const rawItems = input.items ?? [];
  if (seatIds.length === 0 && rawItems.length === 0) {
    throw new DomainError('VALIDATION_FAILED', 'an order needs seats or items');
  }
  if (new Set(seatIds).size !== seatIds.length) throw new DomainError('DUPLICATE_SEAT', 'a seat appears twice in the order');
  const poolIds = rawItems.map((i) => i.pool);
  if (new Set(poolIds).size !== poolIds.length) throw new DomainError('VALIDATION_FAILED', 'a pool appears twice in items');

  let amount = 0;
  const seats: { id: string; price: number }[] = [];
  for (const id of seatIds) {
    const seat = event.seatById.get(id);
    if (!seat) throw new DomainError('SEAT_NOT_FOUND', `seat ${id} does not exist in event ${event.id}`);
    seats.push({ id, price: seat.price });
    amount += seat.price;
  }
  const items: (PoolItem & { unitPrice: number })[] = [];
  for (const i of rawItems) {
    const pool = event.poolById.get(i.pool);
    if (!pool) throw new DomainError('POOL_NOT_FOUND', `pool ${i.pool} does not exist in event ${event.id}`);
    if (i.quantity > pool.capacity) throw new DomainError('VALIDATION_FAILED', `pool ${i.pool} has only ${pool.capacity} places`);
    items.push({ pool: i.pool, quantity: i.quantity, unitPrice: pool.price });
    amount += pool.price * i.quantity;
  }
  if (now < event.saleOpensAt) throw new DomainError('SALE_NOT_OPEN', `sale opens at ${event.saleOpensAt.toISOString()}`);
  if (event.saleClosesAt && now >= event.saleClosesAt) throw new DomainError('SALE_CLOSED', 'sale is closed');

  const tickets = ticketCount(seatIds, items);
  const preflight = await store.orderPreflight(event.id, input.buyer_id);
  if (event.maxPerBuyer !== null && preflight.buyerTickets + tickets > event.maxPerBuyer) {
    throw new DomainError('BUYER_LIMIT', `at most ${event.maxPerBuyer} tickets per buyer`, {
      max_per_buyer: event.maxPerBuyer,
      held_or_bought: preflight.buyerTickets,
    });
  }
  if (preflight.state !== 'ready') throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');

  const merchantUid = newMerchantUid(event.id);
  const orderToken = newOrderToken();
  await ordersRepo.insertOrder(db, {
    merchantUid, eventId: event.id, buyerId: input.buyer_id, amount, currency: event.currency, orderTokenHash: orderToken.hash, seats, items,
    portoneApi: input.portone_api ?? defaultApi,
  });
  let visible: Awaited<ReturnType<HoldStore['createOrder']>>;
  try {
    visible = await store.createOrder(event.id, {
      merchantUid, amount, buyerId: input.buyer_id, seats: seatIds, items, tickets,
    });
  } catch (error) {
    await withdraw(db, event.id, merchantUid, 'redis_failed');
    throw error;
  }
  if (visible === 'not_ready') {
    // A rebuild began after the preflight. The buyer never gets this merchant_uid, so even if the
    // rebuild loaded it into Redis nobody can pay for it: take it back and let the buyer retry.
    await withdraw(db, event.id, merchantUid, 'event_not_ready');
    throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');
  }
  return { merchant_uid: merchantUid, event_id: event.id, amount, currency: event.currency, status: 'pending', order_token: orderToken.token };
}
