/**
 * dropgate's invariants, checked (checks 1-4) across the four places that must agree: the API
 * (`GET /events/:id`), Postgres (the record), Redis (the fast copy) and the simulator's ledger (what
 * PortOne saw: payments, confirms, cancels). The CLI and the tests run this same code.
 *
 * 1. No oversell: no seat ticketed twice, a pool's tickets within its capacity, Redis sold counts equal
 *    Postgres ticket counts.
 * 2. Money and tickets match: every paid payment has exactly its order's tickets and the order is paid
 *    with that imp_uid, or it was refunded exactly once through the cancel API (closing its order,
 *    unless another payment pays it or the refunded one was of another amount); no tickets without a
 *    paid payment.
 * 3. Every hold ended: no live hold in Postgres or Redis.
 * 4. Redis and Postgres agree: availability, each seat's state, each order's paid state, buyer counts.
 */
import { cancelCounts, couldPayOrder, type LedgerPayment } from './ledger.ts';
import { push, ticketsPerOrder, type State, type TicketRow } from './state.ts';
import { Findings, result, type InvariantResult } from './types.ts';

export function checkNoOversell(s: State): InvariantResult {
  const f = new Findings();
  const bySeat = new Map<string, string[]>();
  const byPool = new Map<string, TicketRow[]>();
  for (const t of s.tickets) {
    if (t.seat_id !== null) push(bySeat, t.seat_id, t.merchant_uid);
    if (t.pool_id !== null) push(byPool, t.pool_id, t);
  }
  for (const [seat, owners] of bySeat) if (owners.length > 1) f.add(`seat ${seat} is ticketed ${owners.length} times (orders ${owners.join(', ')})`);
  let poolTickets = 0;
  for (const pool of s.pools) {
    const tickets = byPool.get(pool.id) ?? [];
    poolTickets += tickets.length;
    if (tickets.length > pool.capacity) f.add(`pool ${pool.id} has ${tickets.length} tickets for a capacity of ${pool.capacity}`);
    const serials = new Map<number, number>();
    for (const t of tickets) serials.set(t.serial ?? -1, (serials.get(t.serial ?? -1) ?? 0) + 1);
    for (const [serial, n] of serials) {
      if (n > 1) f.add(`pool ${pool.id} serial ${serial} is issued ${n} times`);
      if (serial < 1 || serial > pool.capacity) f.add(`pool ${pool.id} serial ${serial} lies outside 1..${pool.capacity}`);
    }
    const redisSold = s.redisCounts?.pools.get(pool.id)?.sold ?? 0;
    const redisHeld = s.redisCounts?.pools.get(pool.id)?.held ?? 0;
    if (redisSold !== tickets.length) f.add(`pool ${pool.id}: Redis counts ${redisSold} sold, Postgres has ${tickets.length} tickets`);
    if (redisSold + redisHeld > pool.capacity) f.add(`pool ${pool.id}: Redis has ${redisHeld} held + ${redisSold} sold for a capacity of ${pool.capacity}`);
  }
  for (const poolId of byPool.keys()) if (!s.pools.some((p) => p.id === poolId)) f.add(`tickets for unknown pool ${poolId}`);
  const seatTickets = [...bySeat.values()].reduce((n, o) => n + o.length, 0);
  const redisSeatsSold = s.redisCounts?.seats?.sold ?? 0;
  const redisSeatsHeld = s.redisCounts?.seats?.held ?? 0;
  if (redisSeatsSold !== seatTickets) f.add(`seats: Redis counts ${redisSeatsSold} sold, Postgres has ${seatTickets} seat tickets`);
  if (redisSeatsSold + redisSeatsHeld > s.seatCount) f.add(`seats: Redis has ${redisSeatsHeld} held + ${redisSeatsSold} sold for ${s.seatCount} seats`);
  const capacity = s.seatCount + s.pools.reduce((n, p) => n + p.capacity, 0);
  return result(1, f, `${s.tickets.length} tickets (${seatTickets} seats, ${poolTickets} pool places) for a capacity of ${capacity}; no seat twice, pools within capacity, Redis sold counts = Postgres tickets`);
}

export function checkMoneyAndTickets(s: State): InvariantResult {
  const f = new Findings();
  const ticketsByImp = new Map<string, TicketRow[]>();
  for (const t of s.tickets) push(ticketsByImp, t.imp_uid, t);
  const { api: apiCancels, console: consoleCancels, consoleAmount } = cancelCounts(s.ledger);
  const paymentByImp = new Map<string, LedgerPayment>(s.ledger.payments.map((p) => [p.imp_uid, p]));
  let ticketed = 0;
  let refunded = 0;
  let cancelledAtPortOne = 0;
  let paidAmount = 0;

  for (const p of s.ledger.payments) {
    const order = s.orderByUid.get(p.merchant_uid);
    const mine = ticketsByImp.get(p.imp_uid) ?? [];
    const api = apiCancels.get(p.imp_uid) ?? 0;
    const atConsole = consoleCancels.get(p.imp_uid) ?? 0;
    if (p.paid_at === 0) {
      // Money never moved: nothing may be ticketed or refunded for it.
      if (mine.length > 0) f.add(`payment ${p.imp_uid} (${p.status}, never paid) has ${mine.length} tickets`);
      if (api > 0) f.add(`payment ${p.imp_uid} (${p.status}, never paid) was refunded ${api} times`);
      continue;
    }
    if (!order) {
      f.add(`paid payment ${p.imp_uid} is for order ${p.merchant_uid}, which Postgres does not know`);
      continue;
    }
    if (p.status === 'paid' && p.cancel_amount === 0) {
      paidAmount += p.amount;
      if (order.status !== 'paid' || order.paid_imp_uid !== p.imp_uid) {
        f.add(`payment ${p.imp_uid} is paid (₩${p.amount}) but order ${p.merchant_uid} is ${order.status}${order.paid_imp_uid ? ` with ${order.paid_imp_uid}` : ''} and it was never refunded`);
        continue;
      }
      const wanted = ticketsPerOrder(s, p.merchant_uid);
      const seats = new Set(s.seatsOf.get(p.merchant_uid) ?? []);
      const gotSeats = mine.filter((t) => t.seat_id !== null).map((t) => t.seat_id!);
      const sameSeats = gotSeats.length === seats.size && gotSeats.every((x) => seats.has(x));
      const items = s.itemsOf.get(p.merchant_uid) ?? new Map<string, number>();
      const gotItems = new Map<string, number>();
      for (const t of mine) if (t.pool_id !== null) gotItems.set(t.pool_id, (gotItems.get(t.pool_id) ?? 0) + 1);
      const sameItems = gotItems.size === items.size && [...items].every(([pool, q]) => gotItems.get(pool) === q);
      if (!sameSeats || !sameItems || mine.length !== wanted) {
        f.add(`payment ${p.imp_uid} of order ${p.merchant_uid} has ${mine.length} tickets, the order has ${wanted}${sameSeats ? '' : ' (other seats)'}${sameItems ? '' : ' (other pool places)'}`);
      } else ticketed++;
      if (api > 0 || atConsole > 0) f.add(`payment ${p.imp_uid} is paid and ticketed but a cancel went through (${api} API, ${atConsole} console)`);
      if (p.currency !== undefined && p.currency !== order.currency) f.add(`payment ${p.imp_uid} in ${p.currency} is ticketed for order ${p.merchant_uid}, priced in ${order.currency}`);
      continue;
    }
    if (p.cancel_amount !== p.amount) {
      f.add(`payment ${p.imp_uid} is partially cancelled (${p.cancel_amount} of ${p.amount}): dropgate never refunds part of a payment`);
      continue;
    }
    // Fully cancelled: by dropgate through the cancel API, or on PortOne's side (console).
    if (mine.length > 0) f.add(`payment ${p.imp_uid} was cancelled (refunded) but still has ${mine.length} tickets`);
    if (order.status === 'paid' && order.paid_imp_uid === p.imp_uid) f.add(`payment ${p.imp_uid} was cancelled but order ${p.merchant_uid} is still paid with it`);
    // Cancelled in part at PortOne (the console, the PG): dropgate refunds the rest, once.
    const partlyAtConsole = atConsole > 0 && (consoleAmount.get(p.imp_uid) ?? 0) < p.amount;
    if (atConsole > 0 && !partlyAtConsole) {
      cancelledAtPortOne++;
      if (api > 0) f.add(`payment ${p.imp_uid} was cancelled at PortOne and also refunded ${api} times through the API`);
      continue;
    }
    refunded++;
    if (api !== 1) f.add(`payment ${p.imp_uid} was refunded ${api} times through the cancel API (exactly once expected)`);
    const duplicate = order.status === 'paid' && order.paid_imp_uid !== null && order.paid_imp_uid !== p.imp_uid;
    // A payment of another amount could never pay the order (anyone may make one under its
    // merchant_uid): its refund is its own, and the order keeps whatever state its real payment gives it.
    const foreignAmount = !couldPayOrder(p, order, consoleAmount);
    if (order.status !== 'refunded' && !duplicate && !foreignAmount) f.add(`payment ${p.imp_uid} was refunded but order ${p.merchant_uid} is ${order.status}, not refunded`);
  }

  // No tickets without a paid payment, and every paid order points at one.
  for (const [imp, tickets] of ticketsByImp) {
    const p = paymentByImp.get(imp);
    if (!p) f.add(`${tickets.length} tickets of order ${tickets[0]!.merchant_uid} carry imp_uid ${imp}, which PortOne never saw`);
    else if (p.status !== 'paid' || p.cancel_amount > 0) f.add(`${tickets.length} tickets carry imp_uid ${imp}, whose payment is ${p.status} (cancelled ₩${p.cancel_amount})`);
    else if (p.merchant_uid !== tickets[0]!.merchant_uid) f.add(`tickets of order ${tickets[0]!.merchant_uid} carry imp_uid ${imp} of order ${p.merchant_uid}`);
    for (const t of tickets) {
      const order = s.orderByUid.get(t.merchant_uid);
      if (order?.status !== 'paid' || order.paid_imp_uid !== imp) {
        f.add(`a ticket (${t.seat_id ?? `${t.pool_id}#${t.serial}`}) of order ${t.merchant_uid} is for ${imp} but the order is ${order?.status ?? 'missing'}${order?.paid_imp_uid ? ` with ${order.paid_imp_uid}` : ''}`);
        break;
      }
    }
  }
  for (const o of s.orders) {
    if (o.status !== 'paid') continue;
    const p = o.paid_imp_uid ? paymentByImp.get(o.paid_imp_uid) : undefined;
    if (!p || p.status !== 'paid' || p.cancel_amount > 0 || p.merchant_uid !== o.merchant_uid) {
      f.add(`order ${o.merchant_uid} is paid with ${o.paid_imp_uid ?? 'no imp_uid'}, which is not a paid payment of it at PortOne`);
    }
  }
  for (const r of s.refunds) if (r.status !== 'done') f.add(`refund of ${r.imp_uid} (${r.reason}) is still ${r.status}`);

  return result(2, f, `${ticketed} paid payments (₩${paidAmount.toLocaleString('en-US')}) have exactly their order's tickets; ${refunded} refunded once through the cancel API; ${cancelledAtPortOne} cancelled at PortOne; no tickets without a paid payment`);
}

export function checkHoldsEnded(s: State): InvariantResult {
  const f = new Findings();
  if (s.liveHolds.length > 0) f.add(`Postgres has ${s.liveHolds.length} live holds (e.g. ${s.liveHolds.slice(0, 3).map((h) => h.hold_id).join(', ')})`);
  const held = s.orders.filter((o) => o.status === 'held');
  if (held.length > 0) f.add(`Postgres has ${held.length} orders held (e.g. ${held.slice(0, 3).map((o) => o.merchant_uid).join(', ')})`);
  if (s.redisHolds > 0) f.add(`Redis has ${s.redisHolds} live holds in its holds set`);
  const heldSeats = [...s.redisSeats].filter(([, v]) => v.state === 'held');
  if (heldSeats.length > 0) f.add(`Redis has ${heldSeats.length} seats held (e.g. ${heldSeats.slice(0, 3).map(([seat]) => seat).join(', ')})`);
  const heldCount = (s.redisCounts?.seats?.held ?? 0) + s.pools.reduce((n, p) => n + (s.redisCounts?.pools.get(p.id)?.held ?? 0), 0);
  if (heldCount > 0) f.add(`Redis counts ${heldCount} places held`);
  const heldInRedis = [...s.redisOrderStatus].filter(([, st]) => st === 'held');
  if (heldInRedis.length > 0) f.add(`Redis has ${heldInRedis.length} orders held (e.g. ${heldInRedis.slice(0, 3).map(([m]) => m).join(', ')})`);
  return result(3, f, 'no live hold in Postgres (holds, orders) or Redis (holds set, seats, counts, orders)');
}

export function checkAgreement(s: State): InvariantResult {
  const f = new Findings();
  // What Postgres says each place is.
  const seatOwner = new Map<string, string>();
  const poolSold = new Map<string, number>();
  for (const t of s.tickets) {
    if (t.seat_id !== null) seatOwner.set(t.seat_id, t.merchant_uid);
    if (t.pool_id !== null) poolSold.set(t.pool_id, (poolSold.get(t.pool_id) ?? 0) + 1);
  }
  const seatHolder = new Map<string, string>();
  const poolHeld = new Map<string, number>();
  for (const o of s.orders) {
    if (o.status !== 'held') continue;
    for (const seat of s.seatsOf.get(o.merchant_uid) ?? []) seatHolder.set(seat, o.merchant_uid);
    for (const [pool, q] of s.itemsOf.get(o.merchant_uid) ?? []) poolHeld.set(pool, (poolHeld.get(pool) ?? 0) + q);
  }

  if (s.availability === null) f.add(s.availabilityError ?? 'no availability');
  else {
    const a = s.availability.seats;
    const sold = seatOwner.size;
    const held = seatHolder.size;
    if (a.total !== s.seatCount) f.add(`API: ${a.total} seats in total, Postgres has ${s.seatCount}`);
    if (a.sold !== sold) f.add(`API: ${a.sold} seats sold, Postgres has ${sold} seat tickets`);
    if (a.held !== held) f.add(`API: ${a.held} seats held, Postgres has ${held} seats in held orders`);
    if (a.available !== s.seatCount - sold - held) f.add(`API: ${a.available} seats available, Postgres says ${s.seatCount - sold - held}`);
    for (const pool of s.pools) {
      const ap = s.availability.pools.find((p) => p.id === pool.id);
      if (!ap) {
        f.add(`API: pool ${pool.id} is missing from availability`);
        continue;
      }
      const sold = poolSold.get(pool.id) ?? 0;
      const held = poolHeld.get(pool.id) ?? 0;
      if (ap.capacity !== pool.capacity) f.add(`API: pool ${pool.id} capacity ${ap.capacity}, Postgres ${pool.capacity}`);
      if (ap.sold !== sold) f.add(`API: pool ${pool.id} ${ap.sold} sold, Postgres has ${sold} tickets`);
      if (ap.held !== held) f.add(`API: pool ${pool.id} ${ap.held} held, Postgres has ${held} places in held orders`);
      if (ap.available !== pool.capacity - sold - held) f.add(`API: pool ${pool.id} ${ap.available} available, Postgres says ${pool.capacity - sold - held}`);
    }
  }

  // Seat by seat.
  if (s.redisSeats.size !== s.seatCount) f.add(`Redis knows ${s.redisSeats.size} seats, Postgres ${s.seatCount}`);
  const says = (state: string, muid: string | null | undefined) => (state === 'available' ? 'free' : `${state} by ${muid}`);
  for (const [seat, r] of s.redisSeats) {
    const owner = seatOwner.get(seat);
    const holder = seatHolder.get(seat);
    const expected = owner ? { state: 'sold', muid: owner } : holder ? { state: 'held', muid: holder } : { state: 'available', muid: null };
    if (r.state !== expected.state || r.merchantUid !== expected.muid) {
      f.add(`seat ${seat}: Redis says ${says(r.state, r.merchantUid)}, Postgres says ${says(expected.state, expected.muid)}`);
    }
  }
  for (const seat of seatOwner.keys()) if (!s.redisSeats.has(seat)) f.add(`seat ${seat} is ticketed in Postgres but unknown to Redis`);

  // Order by order: paid in one iff paid in the other.
  for (const o of s.orders) {
    const st = s.redisOrderStatus.get(o.merchant_uid) ?? null;
    if (st === null) f.add(`order ${o.merchant_uid} (${o.status} in Postgres) is missing from Redis`);
    else if ((st === 'paid') !== (o.status === 'paid')) f.add(`order ${o.merchant_uid} is ${st} in Redis but ${o.status} in Postgres`);
  }

  // Buyer counts (held + bought tickets), which the buyer limit relies on.
  const buyerTickets = new Map<string, number>();
  for (const o of s.orders) {
    if (o.status !== 'paid' && o.status !== 'held') continue;
    buyerTickets.set(o.buyer_id, (buyerTickets.get(o.buyer_id) ?? 0) + ticketsPerOrder(s, o.merchant_uid));
  }
  const buyers = new Set([...buyerTickets.keys(), ...s.redisBuyers.keys()]);
  for (const b of buyers) {
    const r = s.redisBuyers.get(b) ?? 0;
    const p = buyerTickets.get(b) ?? 0;
    if (r !== p) f.add(`buyer ${b}: Redis counts ${r} tickets held or bought, Postgres ${p}`);
  }
  return result(4, f, `availability (GET /events/:id), ${s.seatCount} seats, ${s.orders.length} orders and ${buyers.size} buyers: Redis = Postgres`);
}
