/**
 * Creating an order: price it from the event's definition, check the sale window and the buyer's
 * limit, record it in Postgres, then make it visible to the confirm script in Redis. With hold_at
 * "confirm" (the default) it holds nothing; with hold_at "order" the same Redis step reserves every
 * place of the order or nothing (reserveOrder), and a refused order is withdrawn from Postgres again.
 *
 * An order refused with a 4xx writes nothing, and an outage writes nothing: Redis is asked before
 * the insert what can refuse the order (the buyer's tickets when the event has a buyer limit; with
 * hold_at "order", the counters too), and a client that is not connected refuses at once (503
 * NOT_READY). Whether the event is loaded is asked by the Redis step after the insert, which already
 * answers it: a separate read before every insert cost the API about a tenth of its CPU an order
 * (measured 2026-12-01). When that step finds the event not loaded (a rebuild, an archived event),
 * the order, which the buyer never received, is withdrawn again, and this process asks Redis first
 * again for that event's orders (the preflight of state and buyer) until Redis says it is ready: a
 * rebuild at a rush costs Postgres one withdrawn order, not one for every buyer who tries meanwhile.
 * If Redis fails after the insert, the order is withdrawn too: nothing half-made stays behind.
 *
 * A verified buyer's order (a signed buyer token, BUYER_TOKEN_SECRET) is counted in Redis before it is
 * written anywhere (claimOrder-3.lua), and refused past ORDERS_PER_BUYER_MAX with 429 ORDER_LIMIT: a
 * refusal stores nothing, however many arrive at once. An order not made after all gives its count
 * back (the claim is kept under the order's merchant_uid meanwhile, so it is given back once, and a
 * rebuild counts it while it is on its way). Postgres is the record here too: it counts the order in
 * the statement that inserts it (`buyer_verified`, `buyer_order_counts`) and refuses one past the
 * bound by constraint, so a Redis that lost its counts cannot let a buyer past it; when Redis's count
 * runs ahead of the record (a give-back lost with a connection or a process), the record decides.
 * Orders made on a caller's word (unsigned, or before signing was switched on) and waiting-list
 * offers (dropgate's orders for the buyer) are not counted.
 */
import { DomainError, MAX_RESERVATION_EXTENSIONS, PAYMENT_AMOUNT_MAX, newMerchantUid, offerOrderToken, ticketCount, type PoolItem } from '@dropgate/domain';
import { isBuyerOrderLimitViolation, orders as ordersRepo, type Db } from '@dropgate/db';
import { offeredEntry, type HoldStore, type NewRedisOrder, type ReserveResult } from '@dropgate/redis';
import type { EventDef } from './catalog.ts';
import { newOrderToken, orderTokenHash } from './secrets.ts';
import { checkAdmission } from './queue.service.ts';
import type { Static } from 'typebox';
import type { CreateOrderBody } from '../schemas.ts';

const withHash = (token: string) => ({ token, hash: orderTokenHash(token) });

/** The storefront's order, as the request schema (CreateOrderBody) defines it. */
export type CreateOrderInput = Static<typeof CreateOrderBody>;

export interface CreatedOrder {
  merchant_uid: string;
  event_id: string;
  amount: number;
  currency: string;
  status: 'pending' | 'held';
  /** hold_at "order": until when the places are reserved. */
  hold_expires_at?: string;
  /** The buyer's key to read the order (GET /orders/:merchant_uid); only its hash is stored. */
  order_token: string;
}

/**
 * Per store (one per process), the events whose last order found them not loaded in Redis: their
 * orders take the preflight until it finds the event ready (see the header).
 */
const doubtedEvents = new WeakMap<HoldStore, Set<string>>();
function doubted(store: HoldStore): Set<string> {
  let set = doubtedEvents.get(store);
  if (!set) doubtedEvents.set(store, (set = new Set()));
  return set;
}

const orderLimit = () => new DomainError('ORDER_LIMIT', 'this buyer made as many orders for this event as one buyer may');

/** Best effort: when Postgres fails too, the pending order stays (harmless: nobody knows its uid). */
async function withdraw(db: Db, eventId: string, merchantUid: string, reason: string): Promise<void> {
  await ordersRepo.withdrawOrder(db, merchantUid, eventId, reason).catch(() => false);
}

export interface CreateOrderOptions {
  /**
   * A waiting-list offer: the order is made for the buyer by dropgate (no admission needed; the offer
   * is the buyer's turn) and reserved for the list's offer TTL instead of the reservation TTL.
   */
  offerTtlSeconds?: number;
  /** The PortOne API of an order whose request names none (PORTONE_DEFAULT_API). */
  defaultApi?: 'v1' | 'v2';
  /** The request carried a buyer token the storefront signed for its buyer (see lib/buyers.ts). */
  buyerVerified?: boolean;
}

/**
 * The seats and pool items of a selection with their prices, and what they cost together; refuses a
 * seat or pool the event does not have, or more of a pool than it holds (an order, a waiting-list entry).
 */
export function priceLines(
  event: EventDef, seatIds: readonly string[], rawItems: readonly PoolItem[],
): { seats: { id: string; price: number }[]; items: (PoolItem & { unitPrice: number })[]; amount: number } {
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
  return { seats, items, amount };
}

export async function createOrder(
  db: Db, store: HoldStore, event: EventDef, input: CreateOrderInput, now: Date, opts: CreateOrderOptions = {},
): Promise<CreatedOrder> {
  // Before anything else: without a good admission nothing is looked up or written.
  if (opts.offerTtlSeconds === undefined) checkAdmission(event, input.buyer_id, input.admission_token, now.getTime());
  const seatIds = input.seats ?? [];
  const rawItems = input.items ?? [];
  if (seatIds.length === 0 && rawItems.length === 0) {
    throw new DomainError('VALIDATION_FAILED', 'an order needs seats or items');
  }
  if (new Set(seatIds).size !== seatIds.length) throw new DomainError('DUPLICATE_SEAT', 'a seat appears twice in the order');
  const poolIds = rawItems.map((i) => i.pool);
  if (new Set(poolIds).size !== poolIds.length) throw new DomainError('VALIDATION_FAILED', 'a pool appears twice in items');

  const { seats, items, amount } = priceLines(event, seatIds, rawItems);
  // An order nobody can pay through PortOne would only hold its places.
  if (amount < 1) throw new DomainError('VALIDATION_FAILED', 'the order costs nothing, and PortOne takes no payment of 0: give free places outside dropgate');
  if (amount > PAYMENT_AMOUNT_MAX) throw new DomainError('VALIDATION_FAILED', `the order costs ${amount}, more than one payment can carry (${PAYMENT_AMOUNT_MAX})`);
  // Counted against ORDERS_PER_BUYER_MAX: a verified buyer's own order (see the header).
  const counted = opts.buyerVerified === true && opts.offerTtlSeconds === undefined;
  if (now < event.saleOpensAt) throw new DomainError('SALE_NOT_OPEN', `sale opens at ${event.saleOpensAt.toISOString()}`);
  if (event.saleClosesAt && now >= event.saleClosesAt) throw new DomainError('SALE_CLOSED', 'sale is closed');

  const tickets = ticketCount(seatIds, items);
  // What Redis is asked before the insert (see the header). The counters only where the order takes
  // its places at once (they answer a cheap SOLD_OUT below).
  const withCounts = event.holdAt === 'order' ? await store.orderPreflightWithCounts(event.id, input.buyer_id) : null;
  let preflight: { state: 'ready' | 'loading' | null; buyerTickets: number };
  if (withCounts) preflight = withCounts;
  else if (!store.connected) throw new DomainError('NOT_READY', 'the inventory store is unreachable; try again shortly');
  else if (doubted(store).has(event.id)) {
    preflight = await store.orderPreflight(event.id, input.buyer_id);
    if (preflight.state === 'ready') doubted(store).delete(event.id);
  } else {
    // Loaded, as far as this process knows: the Redis step after the insert says if it is not.
    preflight = { state: 'ready', buyerTickets: event.maxPerBuyer === null ? 0 : await store.ticketsOfBuyer(event.id, input.buyer_id) };
  }
  if (event.maxPerBuyer !== null && preflight.buyerTickets + tickets > event.maxPerBuyer) {
    throw new DomainError('BUYER_LIMIT', `at most ${event.maxPerBuyer} tickets per buyer`, {
      max_per_buyer: event.maxPerBuyer,
      held_or_bought: preflight.buyerTickets,
    });
  }
  if (preflight.state !== 'ready') throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');

  if (withCounts && !withCounts.available(seatIds, items)) {
    // Cheap refusal before anything is written; the reservation below decides for good.
    if (event.waitingRoom && opts.offerTtlSeconds === undefined) await store.queues.useAdmission(event.id, input.buyer_id).catch(() => false);
    throw new DomainError('SOLD_OUT', 'the places of this order are taken');
  }

  const merchantUid = newMerchantUid(event.id);
  if (!counted) return write(db, store, event, input, merchantUid, { amount, seats, items, tickets }, now, opts, false);
  // Counted before anything is written; given back if the order is not made after all. A claim whose
  // answer was lost (Redis stalled past the client's timeout) is given back too: on the same
  // connection the give-back runs after the claim, and giving back a claim that never ran is nothing.
  const giveBack = () => store.unclaimOrder(event.id, merchantUid).catch(() => false);
  let claimed = true;
  try {
    await claim(store, event.id, input.buyer_id, merchantUid, now.getTime());
  } catch (error) {
    // Redis's count can run ahead of the record (a give-back lost with a connection or a process):
    // when the record says the buyer is under the bound, the order goes on, and Postgres, which
    // counts it again in the insert, has the last word.
    if (error instanceof DomainError && error.code === 'ORDER_LIMIT' && await ordersRepo.buyerOrdersBelow(db, event.id, input.buyer_id, store.maxOrdersPerBuyer)) {
      claimed = false;
    } else {
      if (!(error instanceof DomainError)) await giveBack();
      throw error;
    }
  }
  let created: CreatedOrder;
  try {
    created = await write(db, store, event, input, merchantUid, { amount, seats, items, tickets }, now, opts, true);
  } catch (error) {
    if (claimed) await giveBack();
    if (isBuyerOrderLimitViolation(error)) throw orderLimit();
    throw error;
  }
  // Made: the count stays, the claim goes (a claim left behind is dropped by the next rebuild).
  if (claimed) await store.settleClaim(event.id, merchantUid).catch(() => undefined);
  return created;
}

/** Counts a verified buyer's order, or refuses it (ORDER_LIMIT, NOT_READY) before anything is written. */
async function claim(store: HoldStore, eventId: string, buyerId: string, merchantUid: string, nowMs: number): Promise<void> {
  const r = await store.claimOrder(eventId, buyerId, merchantUid, nowMs);
  if (r === 'ORDER_LIMIT') throw orderLimit();
  if (r === 'not_ready') {
    doubted(store).add(eventId);
    throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');
  }
}

/**
 * The order, priced and checked: written to Postgres, then made visible (or reserved) in Redis.
 * `counted`: a verified buyer's own order, which Postgres counts against ORDERS_PER_BUYER_MAX.
 */
async function write(
  db: Db, store: HoldStore, event: EventDef, input: CreateOrderInput, merchantUid: string,
  priced: { amount: number; seats: { id: string; price: number }[]; items: (PoolItem & { unitPrice: number })[]; tickets: number },
  now: Date, opts: CreateOrderOptions, counted: boolean,
): Promise<CreatedOrder> {
  const { amount, seats, items, tickets } = priced;
  const seatIds = seats.map((s) => s.id);
  // A waiting-list offer's token is derived from the event's secret, so a list Redis lost shows it
  // again (see offerOrderToken); every other order's is random.
  const orderToken = opts.offerTtlSeconds !== undefined && event.rushSecret
    ? withHash(offerOrderToken(event.rushSecret, event.id, merchantUid))
    : newOrderToken();
  const api = input.portone_api ?? opts.defaultApi ?? 'v1';
  await ordersRepo.insertOrder(db, {
    merchantUid, eventId: event.id, buyerId: input.buyer_id, amount, currency: event.currency, orderTokenHash: orderToken.hash, seats, items,
    portoneApi: api,
    buyerVerified: counted,
    waitlistOffer: opts.offerTtlSeconds !== undefined,
    maxOrdersPerBuyer: store.maxOrdersPerBuyer,
  });
  if (event.holdAt === 'order') {
    const ttlSeconds = opts.offerTtlSeconds ?? event.reservationTtlSeconds ?? 0;
    // A waiting-list offer is made only while the buyer's entry waits, and marks it offered (see reserve).
    const offer = opts.offerTtlSeconds !== undefined ? offeredEntry(seatIds, items, merchantUid, orderToken.token) : '';
    return reserve(db, store, event, { merchantUid, amount, buyerId: input.buyer_id, seats: seatIds, items, tickets, api }, orderToken.token, now, ttlSeconds, offer);
  }
  let visible: Awaited<ReturnType<HoldStore['createOrder']>>;
  try {
    visible = await store.createOrder(event.id, {
      merchantUid, amount, buyerId: input.buyer_id, seats: seatIds, items, tickets, api,
    });
  } catch (error) {
    doubted(store).add(event.id);
    await withdraw(db, event.id, merchantUid, 'redis_failed');
    throw error;
  }
  if (visible === 'withdrawn') {
    // This step came late (the process stalled between the insert and here) and the worker has
    // withdrawn the order as an orphan already: the buyer never gets this merchant_uid.
    throw new DomainError('NOT_READY', 'the order could not be made in time; try again');
  }
  if (visible === 'not_ready') {
    // The event is not loaded (being rebuilt, or archived). The buyer never gets this merchant_uid,
    // so even if a rebuild loaded it into Redis nobody can pay for it: take it back and let the buyer
    // retry. This process asks Redis first for the event's next orders.
    doubted(store).add(event.id);
    await withdraw(db, event.id, merchantUid, 'event_not_ready');
    throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');
  }
  return { merchant_uid: merchantUid, event_id: event.id, amount, currency: event.currency, status: 'pending', order_token: orderToken.token };
}

const RESERVE_REFUSALS = {
  SALE_NOT_OPEN: 'sale is not open yet',
  SALE_CLOSED: 'sale is closed',
  BUYER_LIMIT: 'over the buyer limit',
  SOLD_OUT: 'the places of this order are taken',
} as const;

/** `offer`: a waiting-list offer's entry as offered ('' for a buyer's own order, which used an admission). */
async function reserve(
  db: Db, store: HoldStore, event: EventDef, order: NewRedisOrder, token: string, now: Date, ttlSeconds: number, offer: string,
): Promise<CreatedOrder> {
  const admitted = offer === '';
  let r: ReserveResult;
  try {
    r = await store.reserveOrder(event.id, order, now.getTime(), ttlSeconds * 1000, offer);
  } catch (error) {
    await withdraw(db, event.id, order.merchantUid, 'redis_failed');
    throw error;
  }
  if (r.result === 'reserved') {
    // The order holds its places now: the buyer's admission stops counting against the waiting
    // room's bounds (best effort: it lapses at its expiry anyway). With hold_at "confirm" it keeps
    // counting until it expires, since the order holds nothing until its payment's confirm.
    if (event.waitingRoom && admitted) await store.queues.useAdmission(event.id, order.buyerId).catch(() => false);
    return {
      merchant_uid: order.merchantUid, event_id: event.id, amount: order.amount, currency: event.currency,
      status: 'held', hold_expires_at: new Date(r.expiresAt).toISOString(), order_token: token,
    };
  }
  // Nothing was reserved: the buyer never gets this merchant_uid.
  await withdraw(db, event.id, order.merchantUid, r.result === 'SOLD_OUT' ? 'sold_out' : r.result);
  // Refused at selection: the buyer had their turn, so their slot goes to the next buyer in the
  // queue (their token still works until it expires, for other places).
  if (r.result === 'SOLD_OUT' && event.waitingRoom && admitted) await store.queues.useAdmission(event.id, order.buyerId).catch(() => false);
  if (r.result === 'SOLD_OUT' || r.result === 'SALE_NOT_OPEN' || r.result === 'SALE_CLOSED' || r.result === 'BUYER_LIMIT') {
    throw new DomainError(r.result, RESERVE_REFUSALS[r.result]);
  }
  // A waiting-list offer for an entry another step offered meanwhile (a step past the list's lock):
  // that offer stands, and this one is taken back. For the step, as places taken between its look
  // and its reservation: the entry is left as it is.
  if (r.result === 'not_waiting') throw new DomainError('SOLD_OUT', 'the waiting-list entry is no longer waiting: another step offered it');
  // 'exists' cannot happen for a fresh merchant_uid; treat it, a missing or a reloading state alike.
  throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');
}

/**
 * POST /orders/:merchant_uid/extend: renews the order's live reservation for the event's
 * reservation TTL from now, at most MAX_RESERVATION_EXTENSIONS times.
 */
export async function extendReservation(
  store: HoldStore, event: EventDef, merchantUid: string, now: number,
): Promise<{ merchant_uid: string; status: 'held'; hold_expires_at: string; extensions_left: number }> {
  if (event.holdAt !== 'order' || event.reservationTtlSeconds === null) {
    throw new DomainError('NOT_EXTENDABLE', 'this event takes holds at the confirm: there is no reservation to extend');
  }
  // A closed sale lengthens no reservation (a payment on a live one still goes through).
  if (event.saleClosesAt !== null && now >= event.saleClosesAt.getTime()) throw new DomainError('SALE_CLOSED', 'the sale has closed: a reservation is not extended after it');
  const r = await store.extendReservation(event.id, merchantUid, now, event.reservationTtlSeconds * 1000, MAX_RESERVATION_EXTENSIONS);
  switch (r.result) {
    case 'extended':
      return { merchant_uid: merchantUid, status: 'held', hold_expires_at: new Date(r.expiresAt).toISOString(), extensions_left: r.extensionsLeft };
    case 'order_missing':
      throw new DomainError('ORDER_NOT_FOUND', 'no order matches this merchant_uid and token');
    case 'not_ready':
      throw new DomainError('NOT_READY', 'the event is being loaded; try again shortly');
    case 'limit':
      throw new DomainError('NOT_EXTENDABLE', `a reservation can be extended at most ${MAX_RESERVATION_EXTENSIONS} times`);
    case 'not_extendable':
      throw new DomainError('NOT_EXTENDABLE', 'the order has no live reservation to extend (lapsed, ended, or a payment is under way)');
  }
}
