/**
 * Group commit for new orders (issue 10). At a drop every buyer creates an order first, and an order
 * is answered 201 only once it is in Postgres (it must survive Redis losing its data). One transaction
 * per order (four statements and a commit, each a round trip) made Postgres the front door's limit.
 *
 * Instead, concurrent creations share a commit (group-commit.ts), up to ORDER_BATCH_MAX orders in ONE
 * statement (data-modifying CTEs: orders, their seats, their items and the `created` log entries;
 * foreign keys are checked at the end of the statement, so children may sit beside their parents).
 * A batch refused by a constraint (integrity violation, SQLSTATE class 23) is retried one order per
 * statement, so one bad order fails alone with its own error.
 *
 * Withdrawals (an order refused after its insert: its places were taken at selection, or Redis
 * failed) are batched the same way: at a drop's sell-out they come as fast as the orders.
 */
import { sql } from 'kysely';
import type { Db } from '../database.ts';
import { GroupCommit, isIntegrityViolation, perHandle } from './group-commit.ts';

export interface NewOrderInput {
  merchantUid: string;
  eventId: string;
  buyerId: string;
  amount: number;
  currency: string;
  /** SHA-256 of the order token handed to the buyer (never the token); absent: only the admin reads it. */
  orderTokenHash?: Buffer;
  /** The PortOne API the order's payments go through (default `v1`). */
  portoneApi?: 'v1' | 'v2';
  /** The buyer was verified (a signed buyer token): the order counts against ORDERS_PER_BUYER_MAX. */
  buyerVerified?: boolean;
  /** A waiting-list offer dropgate made for the list's buyer: it cannot be extended. */
  waitlistOffer?: boolean;
  /** With buyerVerified: ORDERS_PER_BUYER_MAX (0: none), which Postgres enforces again (migration 0009). */
  maxOrdersPerBuyer?: number;
  seats: { id: string; price: number }[];
  items: { pool: string; quantity: number; unitPrice: number }[];
}

/** Orders per statement at most: bounds the statement's parameters and one commit's work. */
export const ORDER_BATCH_MAX = 256;

/** Inserts `orders` with their seats, items and `created` log entries in one statement. */
export async function insertOrders(db: Db, orders: readonly NewOrderInput[]): Promise<void> {
  if (orders.length === 0) return;
  const seats = orders.flatMap((o) => o.seats.map((s) => ({ o, s })));
  const items = orders.flatMap((o) => o.items.map((i) => ({ o, i })));
  const verified = orders.filter((o) => o.buyerVerified === true);
  await sql`/* prepared: insert_orders */
    with new_orders as (
      insert into orders (merchant_uid, event_id, buyer_id, amount, currency, status, order_token_hash, portone_api, buyer_verified, waitlist_offer)
      select m, e, b, a, c, 'pending', h, api, v, w
      from unnest(${orders.map((o) => o.merchantUid)}::text[], ${orders.map((o) => o.eventId)}::text[],
                  ${orders.map((o) => o.buyerId)}::text[], ${orders.map((o) => o.amount)}::bigint[],
                  ${orders.map((o) => o.currency)}::text[], ${orders.map((o) => o.orderTokenHash ?? null)}::bytea[],
                  ${orders.map((o) => o.portoneApi ?? 'v1')}::text[], ${orders.map((o) => o.buyerVerified === true)}::boolean[],
                  ${orders.map((o) => o.waitlistOffer === true)}::boolean[]) as t(m, e, b, a, c, h, api, v, w)
    ), counted as (
      insert into buyer_order_counts (event_id, buyer_id, orders, max_orders)
      select e, b, count(*), max(mx)
      from unnest(${verified.map((o) => o.eventId)}::text[], ${verified.map((o) => o.buyerId)}::text[],
                  ${verified.map((o) => o.maxOrdersPerBuyer ?? 0)}::int[]) as t(e, b, mx)
      group by e, b
      on conflict (event_id, buyer_id) do update
        set orders = buyer_order_counts.orders + excluded.orders, max_orders = excluded.max_orders
    ), new_seats as (
      insert into order_seats (merchant_uid, event_id, seat_id, price)
      select m, e, s, p
      from unnest(${seats.map((x) => x.o.merchantUid)}::text[], ${seats.map((x) => x.o.eventId)}::text[],
                  ${seats.map((x) => x.s.id)}::text[], ${seats.map((x) => x.s.price)}::bigint[]) as t(m, e, s, p)
    ), new_items as (
      insert into order_items (merchant_uid, event_id, pool_id, quantity, unit_price)
      select m, e, p, q, u
      from unnest(${items.map((x) => x.o.merchantUid)}::text[], ${items.map((x) => x.o.eventId)}::text[],
                  ${items.map((x) => x.i.pool)}::text[], ${items.map((x) => x.i.quantity)}::int[],
                  ${items.map((x) => x.i.unitPrice)}::bigint[]) as t(m, e, p, q, u)
    )
    insert into order_events (merchant_uid, event_id, type, data)
    select m, e, 'created', d::jsonb
    from unnest(${orders.map((o) => o.merchantUid)}::text[], ${orders.map((o) => o.eventId)}::text[],
                ${orders.map((o) => JSON.stringify({ amount: o.amount, buyer_id: o.buyerId }))}::text[]) as t(m, e, d)
  `.execute(db);
}

/** Batches the orders of one database handle (see the file comment). */
export class OrderWriter {
  readonly #commit: GroupCommit<NewOrderInput, void>;

  constructor(db: Db, maxBatch = ORDER_BATCH_MAX) {
    this.#commit = new GroupCommit<NewOrderInput, void>(async (orders) => {
      await insertOrders(db, orders);
      return orders.map(() => undefined);
    }, { maxBatch, splitOn: isIntegrityViolation });
  }

  /** Statements written and orders in them, for tests and metrics. */
  get stats(): { statements: number; orders: number; largestBatch: number } {
    const { statements, items, largestBatch } = this.#commit.stats;
    return { statements, orders: items, largestBatch };
  }

  /** Resolves once `order` is committed. */
  insert(order: NewOrderInput): Promise<void> {
    return this.#commit.submit(order);
  }
}

/** The group-commit writer of a database handle (one per handle, made on first use). */
export const orderWriter = perHandle((db: Db) => new OrderWriter(db));

export interface Withdrawal {
  merchantUid: string;
  eventId: string;
  reason: string;
}

/**
 * Takes back orders that were never handed to their buyers, in one statement: deletes each order with
 * its seats and items if it is still pending, and appends `withdrawn` (with the reason) to the
 * append-only log. @returns per withdrawal, true when that order was withdrawn.
 */
export async function withdrawOrders(db: Db, ws: readonly Withdrawal[]): Promise<boolean[]> {
  if (ws.length === 0) return [];
  const { rows } = await sql<{ merchant_uid: string }>`/* prepared: withdraw_orders */
    with gone as (
      delete from orders o
      using unnest(${ws.map((w) => w.merchantUid)}::text[], ${ws.map((w) => w.eventId)}::text[], ${ws.map((w) => w.reason)}::text[]) as t(m, e, r)
      where o.merchant_uid = t.m and o.event_id = t.e and o.status = 'pending'
      returning o.merchant_uid, o.event_id, o.buyer_id, o.buyer_verified, t.r
    ), uncounted as (
      -- The bound is checked when an order is counted, never when one is given back (a bound lowered
      -- since must not fail a withdrawal): max_orders is set again by the buyer's next order.
      update buyer_order_counts c set orders = c.orders - g.n, max_orders = 0
      from (select event_id, buyer_id, count(*)::int as n from gone where buyer_verified group by event_id, buyer_id) g
      where c.event_id = g.event_id and c.buyer_id = g.buyer_id
    ), logged as (
      insert into order_events (merchant_uid, event_id, type, data)
      select merchant_uid, event_id, 'withdrawn', jsonb_build_object('reason', r) from gone
    )
    select merchant_uid from gone
  `.execute(db);
  const gone = new Set(rows.map((r) => r.merchant_uid));
  return ws.map((w) => gone.has(w.merchantUid));
}

/** The group-commit withdrawer of a database handle. */
export const orderWithdrawer = perHandle((db: Db) => new GroupCommit<Withdrawal, boolean>((ws) => withdrawOrders(db, ws), { maxBatch: ORDER_BATCH_MAX }));
