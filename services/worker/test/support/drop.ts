/**
 * A small drop for tests: orders created through the API and paid through the PortOne simulator, and
 * the invariants of design.md checked over Postgres, Redis and the simulator's ledger.
 */
import { expect } from 'vitest';
import { sql } from 'kysely';
import type { Simulator, PaymentOutcome, PaymentWindowResult } from '@dropgate/portone-sim';
import type { Db } from '@dropgate/db';
import type { HoldStore } from '@dropgate/redis';
import { http, waitFor } from '@dropgate/testkit';

export interface DropSpec {
  api: string;
  sim: Simulator;
  eventId: string;
  orders: number;
  seats: number;
  pool: number;
  shares: { failed: number; abandoned: number; late: number };
  concurrency?: number;
  /** Called after each payment window with its index, so a test can break things mid-drop. */
  onProgress?: (done: number) => Promise<void> | void;
}

export interface DropResult {
  payments: PaymentWindowResult[];
  confirmCodes: Record<string, number>;
}

let seed = 99;
const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);

export async function createDropEvent(api: string, id: string, seats: number, pool: number, ttl: number, adminToken: string): Promise<void> {
  const res = await http(api, 'POST', '/admin/events', {
    id, name: 'Test drop', hold_ttl_seconds: ttl,
    seat_blocks: [{ section: 'D', rows: 1, seats_per_row: seats, price: 10_000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: pool, price: 3_000 }],
  }, { headers: { authorization: `Bearer ${adminToken}` } });
  expect(res.status, res.text).toBe(201);
}

export async function runDrop(spec: DropSpec): Promise<DropResult> {
  const payments: PaymentWindowResult[] = [];
  const confirmCodes: Record<string, number> = {};
  let next = 0;
  let done = 0;
  await Promise.all(Array.from({ length: spec.concurrency ?? 16 }, async () => {
    while (next < spec.orders) {
      const i = next++;
      const body = i % 2
        ? { buyer_id: `buyer-${i}`, seats: Array.from(new Set([1 + Math.floor(random() * spec.seats), 1 + Math.floor(random() * spec.seats)])).map((n) => `D-1-${n}`) }
        : { buyer_id: `buyer-${i}`, items: [{ pool: 'ga', quantity: 1 + Math.floor(random() * 3) }] };
      const o = await http(spec.api, 'POST', `/events/${spec.eventId}/orders`, body);
      if (o.status !== 201) {
        confirmCodes[`order_${o.body?.code}`] = (confirmCodes[`order_${o.body?.code}`] ?? 0) + 1;
        continue;
      }
      const r = random();
      const outcome: PaymentOutcome = r < spec.shares.failed ? 'failed' : r < spec.shares.failed + spec.shares.abandoned ? 'abandoned' : 'paid';
      const late = outcome === 'paid' && random() < spec.shares.late;
      const paid = await spec.sim.pay({
        merchant_uid: o.body.merchant_uid, amount: o.body.amount,
        confirm_url: `${spec.api}/portone/v1/confirm`, notice_url: `${spec.api}/portone/v1/webhook`,
        outcome, ...(late ? { buyer_delay_ms: 6_500 } : {}),
      });
      payments.push(paid);
      const code = paid.confirm?.status === 200 ? 'APPROVED' : String((paid.confirm?.body as { code?: string } | null)?.code ?? paid.confirm?.status ?? 'none');
      confirmCodes[code] = (confirmCodes[code] ?? 0) + 1;
      done++;
      await spec.onProgress?.(done);
    }
  }));
  return { payments, confirmCodes };
}

/** Waits until no order of the event is held, in Postgres and in Redis. */
export async function waitSettled(db: Db, store: HoldStore, sim: Simulator, eventId: string, timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  await sim.settled();
  await waitFor(async () => {
    const held = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', eventId).where('status', '=', 'held').limit(1).execute();
    const live = await db.selectFrom('holds').select('hold_id').where('event_id', '=', eventId).where('status', '=', 'live').limit(1).execute();
    const redisHolds = await store.liveHolds(eventId).catch(() => new Map([['unknown', 0]]));
    return held.length === 0 && live.length === 0 && redisHolds.size === 0;
  }, timeoutMs, 'every hold to end');
  // Late webhooks and refunds may still be in flight: wait until the paid ledger is fully accounted.
  await waitFor(async () => (await invariantViolations(db, store, sim, eventId)).length === 0 || null, timeoutMs, 'the invariants to hold')
    .catch(async () => undefined);
  return Date.now() - started;
}

/** Every broken invariant, as readable sentences (empty when all hold). */
export async function invariantViolations(db: Db, store: HoldStore, sim: Simulator, eventId: string): Promise<string[]> {
  const problems: string[] = [];
  // 1. No oversell: no seat twice, no pool over capacity, Redis agrees with Postgres.
  const dupSeats = await sql<{ seat_id: string }>`select seat_id from tickets where event_id = ${eventId} and seat_id is not null group by seat_id having count(*) > 1`.execute(db);
  for (const r of dupSeats.rows) problems.push(`seat ${r.seat_id} ticketed twice`);
  const pools = await sql<{ id: string; capacity: number; n: number }>`
    select p.id, p.capacity, count(t.id)::int as n from pools p left join tickets t on t.event_id = p.event_id and t.pool_id = p.id
    where p.event_id = ${eventId} group by p.id, p.capacity`.execute(db);
  for (const p of pools.rows) if (p.n > p.capacity) problems.push(`pool ${p.id} has ${p.n} tickets for ${p.capacity} places`);
  const seatTickets = await sql<{ n: number }>`select count(*)::int as n from tickets where event_id = ${eventId} and seat_id is not null`.execute(db);
  const availability = await store.availability(eventId, pools.rows.map((p) => ({ id: p.id })));
  if (!availability) problems.push('event not loaded in Redis');
  else {
    if (availability.seats.sold !== seatTickets.rows[0]!.n) problems.push(`Redis says ${availability.seats.sold} seats sold, Postgres has ${seatTickets.rows[0]!.n} seat tickets`);
    for (const p of availability.pools) {
      const pgN = pools.rows.find((r) => r.id === p.id)?.n ?? 0;
      if (p.sold !== pgN) problems.push(`Redis says ${p.sold} sold in pool ${p.id}, Postgres has ${pgN}`);
      if (p.held !== 0) problems.push(`pool ${p.id} still has ${p.held} held`);
    }
    if (availability.seats.held !== 0) problems.push(`${availability.seats.held} seats still held`);
  }
  // 2. Money and tickets match.
  const ledger = sim.ledger();
  const orders = await db.selectFrom('orders').select(['merchant_uid', 'status', 'paid_imp_uid', 'amount']).where('event_id', '=', eventId).execute();
  const byUid = new Map(orders.map((o) => [o.merchant_uid, o]));
  const ticketsByOrder = new Map((await sql<{ merchant_uid: string; n: number }>`select merchant_uid, count(*)::int as n from tickets where event_id = ${eventId} group by merchant_uid`.execute(db)).rows.map((r) => [r.merchant_uid, r.n]));
  const expected = new Map((await sql<{ merchant_uid: string; n: number }>`
    select o.merchant_uid, (select count(*) from order_seats s where s.merchant_uid = o.merchant_uid)::int
      + coalesce((select sum(quantity) from order_items i where i.merchant_uid = o.merchant_uid), 0)::int as n
    from orders o where o.event_id = ${eventId}`.execute(db)).rows.map((r) => [r.merchant_uid, r.n]));
  const apiCancels = new Map<string, number>();
  for (const c of ledger.cancels) if (c.ok && c.source === 'api' && c.imp_uid) apiCancels.set(c.imp_uid, (apiCancels.get(c.imp_uid) ?? 0) + 1);
  for (const p of ledger.payments) {
    const order = byUid.get(p.merchant_uid);
    if (!order) continue;
    if (p.paid_at === 0) continue;
    const refunds = apiCancels.get(p.imp_uid) ?? 0;
    if (p.status === 'paid') {
      if (order.status !== 'paid' || order.paid_imp_uid !== p.imp_uid) problems.push(`paid ${p.imp_uid} has neither tickets nor a refund (order ${order.status})`);
      else if (ticketsByOrder.get(p.merchant_uid) !== expected.get(p.merchant_uid)) problems.push(`order ${p.merchant_uid} has ${ticketsByOrder.get(p.merchant_uid)} tickets, expected ${expected.get(p.merchant_uid)}`);
    } else if (p.status === 'cancelled') {
      if (refunds > 1) problems.push(`${p.imp_uid} refunded ${refunds} times`);
      if (order.paid_imp_uid === p.imp_uid && order.status === 'paid') problems.push(`${p.imp_uid} was cancelled but its order keeps tickets`);
    }
  }
  for (const [muid, n] of ticketsByOrder) {
    const order = byUid.get(muid)!;
    const pay = ledger.payments.find((p) => p.imp_uid === order.paid_imp_uid);
    if (!pay || pay.status !== 'paid') problems.push(`order ${muid} has ${n} tickets without a paid payment`);
  }
  // 3. Every hold ended.
  const live = await db.selectFrom('holds').select('hold_id').where('event_id', '=', eventId).where('status', '=', 'live').execute();
  if (live.length) problems.push(`${live.length} holds still live in Postgres`);
  const held = orders.filter((o) => o.status === 'held');
  if (held.length) problems.push(`${held.length} orders still held`);
  return problems;
}
