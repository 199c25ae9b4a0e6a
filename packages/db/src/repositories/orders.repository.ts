/** Orders with their seats and pool items, and the order event log. */
import { orderWithdrawer, orderWriter, type NewOrderInput } from './order-writer.ts';
import type { Db } from '../database.ts';
import { sql, type Transaction } from 'kysely';
import { BACKGROUND_LINGER_MS, GroupCommit, perHandle } from './group-commit.ts';
import type { Database, OrderRow } from '../schema.ts';

type Executor = Db | Transaction<Database>;

export type { NewOrderInput } from './order-writer.ts';

/**
 * Inserts an order, its seats and items, and the `created` log entry, atomically; resolves once
 * committed. Concurrent calls on the same handle share one statement and commit (order-writer.ts).
 */
export function insertOrder(db: Db, o: NewOrderInput): Promise<void> {
  return orderWriter(db).insert(o);
}

/**
 * Takes back an order that was never handed to its buyer (creation failed after the insert: its places
 * were taken at selection, or Redis went away before the order was made visible to the confirm
 * script): deletes it with its seats and items, if it is still pending, and appends `withdrawn` to the
 * append-only log after `created`. Concurrent withdrawals on the same handle share one statement.
 * @returns true when the order was withdrawn.
 */
export function withdrawOrder(db: Db, merchantUid: string, eventId: string, reason: string): Promise<boolean> {
  return orderWithdrawer(db).submit({ merchantUid, eventId, reason });
}

/**
 * Pending orders of an event created between `from` and `to` (the worker's orphan check: orders whose
 * withdrawal failed; see withdrawOrphans), oldest first, at most `limit`.
 */
export async function pendingOrdersCreated(db: Db, eventId: string, from: Date, to: Date, limit: number): Promise<string[]> {
  const rows = await db.selectFrom('orders').select('merchant_uid')
    .where('event_id', '=', eventId).where('status', '=', 'pending')
    .where('created_at', '>=', from).where('created_at', '<', to)
    .orderBy('created_at').limit(limit).execute();
  return rows.map((r) => r.merchant_uid);
}

/** The orders of an event the record has in any state but `held` (what a loss of queued jobs reconciles). */
export async function ordersNotHeld(db: Db, eventId: string): Promise<string[]> {
  const rows = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', eventId).where('status', '<>', 'held').execute();
  return rows.map((r) => r.merchant_uid);
}

/**
 * What the record knows of payments PortOne listed (the ledger sweep): the event of each named order
 * that exists, and each of the payment keys the record has, with its status and the amount cancelled.
 * Two statements, whatever the number asked.
 */
export async function ledgerKnown(
  db: Db, merchantUids: readonly string[], impUids: readonly string[],
): Promise<{ orders: Map<string, string>; recorded: Map<string, { status: string; cancelAmount: number }> }> {
  if (merchantUids.length === 0) return { orders: new Map(), recorded: new Map() };
  const [orders, payments] = await Promise.all([
    db.selectFrom('orders').select(['merchant_uid', 'event_id']).where('merchant_uid', 'in', [...new Set(merchantUids)]).execute(),
    impUids.length === 0 ? Promise.resolve([]) : db.selectFrom('payments').select(['imp_uid', 'status', 'cancel_amount'])
      .where('imp_uid', 'in', [...new Set(impUids)]).execute(),
  ]);
  return {
    orders: new Map(orders.map((o) => [o.merchant_uid, o.event_id])),
    recorded: new Map(payments.map((p) => [p.imp_uid, { status: p.status, cancelAmount: Number(p.cancel_amount) }])),
  };
}

/**
 * Whether a verified buyer has fewer than `most` orders for the event in the record (the count
 * Postgres enforces, migration 0009): asked when Redis's count refuses, since Redis's count can run
 * ahead of the record (a claim whose give-back was lost with a connection or a process).
 */
export async function buyerOrdersBelow(db: Executor, eventId: string, buyerId: string, most: number): Promise<boolean> {
  const row = await db.selectFrom('buyer_order_counts').select('orders').where('event_id', '=', eventId).where('buyer_id', '=', buyerId).executeTakeFirst();
  return (row?.orders ?? 0) < most;
}

export function findOrder(db: Executor, merchantUid: string): Promise<OrderRow | undefined> {
  return db.selectFrom('orders').selectAll().where('merchant_uid', '=', merchantUid).executeTakeFirst();
}

/** What a verification compares a payment with: the order's event and amount. */
export type OrderAmount = Pick<OrderRow, 'merchant_uid' | 'event_id' | 'amount' | 'currency'>;

/**
 * Orders read together: what concurrent callers of `orderReader` share. Only the columns a
 * verification compares: the whole row (three timestamps to parse, the token hash) cost the worker
 * more to parse than the read itself.
 */
async function findOrders(db: Db, merchantUids: readonly string[]): Promise<(OrderAmount | undefined)[]> {
  // A named prepared statement (its text is fixed: the batch is one array): Postgres parsed and planned
  // it afresh for every batch, about as long as it took to run.
  const { rows } = await sql<OrderAmount>`/* prepared: order_amounts */
    select merchant_uid, event_id, amount, currency from orders where merchant_uid = any(${[...merchantUids]}::text[])`.execute(db);
  const byUid = new Map(rows.map((r) => [r.merchant_uid, r]));
  return merchantUids.map((uid) => byUid.get(uid));
}

/**
 * `findOrder` for many concurrent callers on one handle (the worker verifying every approved confirm):
 * callers that arrive while a read is in flight, or within BACKGROUND_LINGER_MS of a read that would
 * go alone, share it, one statement for up to 128 orders (group-commit.ts), instead of a round trip each.
 */
export const orderReader = perHandle((db: Db) => {
  const reads = new GroupCommit<string, OrderAmount | undefined>((uids) => findOrders(db, uids), { maxBatch: 128, lingerMs: BACKGROUND_LINGER_MS });
  return { findOrder: (merchantUid: string) => reads.submit(merchantUid), stats: reads.stats };
});

/** Locks the order row for the rest of the transaction. */
export function lockOrder(trx: Transaction<Database>, merchantUid: string): Promise<OrderRow | undefined> {
  return trx.selectFrom('orders').selectAll().where('merchant_uid', '=', merchantUid).forUpdate().executeTakeFirst();
}

export interface OrderLines {
  seats: { seat_id: string; price: number }[];
  items: { pool_id: string; quantity: number; unit_price: number }[];
}

export async function findOrderLines(db: Executor, merchantUid: string): Promise<OrderLines> {
  const [seats, items] = await Promise.all([
    db.selectFrom('order_seats').select(['seat_id', 'price']).where('merchant_uid', '=', merchantUid).orderBy('seat_id').execute(),
    db.selectFrom('order_items').select(['pool_id', 'quantity', 'unit_price']).where('merchant_uid', '=', merchantUid).orderBy('pool_id').execute(),
  ]);
  return { seats, items };
}

/**
 * Full detail for `GET /orders/:merchant_uid`, or undefined when the order does not exist or
 * `allowed` refuses the caller (checked on the order row before anything else is read).
 */
export async function findOrderDetail(db: Db, merchantUid: string, allowed: (order: OrderRow) => boolean = () => true) {
  const reads = detailReads(db);
  const row = await reads.row(merchantUid);
  if (!row || !allowed(row)) return undefined;
  const { state, ...rest } = await reads.rest(merchantUid);
  // The status is the one read with the tickets and payments (one statement, one snapshot): taken
  // from the row read before them, a settlement committing between the two showed an order still
  // held with its tickets issued (186 of 141,366 reads during a drop's settlement).
  return { order: state === null ? row : { ...row, ...state }, ...rest };
}

/**
 * Reads of one order in flight on a handle, shared: a buyer polling their order (or a client flooding
 * one) costs one read at a time, not one each, and no answer is older than the read in flight when it
 * was asked. Each caller's token is checked on the shared row.
 */
const detailReads = perHandle((db: Db) => {
  const inFlight = <T>(read: (merchantUid: string) => Promise<T>) => {
    const running = new Map<string, Promise<T>>();
    return (merchantUid: string): Promise<T> => {
      let p = running.get(merchantUid);
      if (p === undefined) {
        p = read(merchantUid).finally(() => running.delete(merchantUid));
        running.set(merchantUid, p);
      }
      return p;
    };
  };
  return { row: inFlight((m) => findOrder(db, m)), rest: inFlight((m) => orderDetailRest(db, m)) };
});

/**
 * An order's status, lines, tickets and payments (after its row), for `findOrderDetail`; `state` is null
 * when the order is gone (never: orders are not deleted, but the type says what the statement can give).
 */
async function orderDetailRest(db: Db, merchantUid: string) {
  // The rest in one prepared statement (JSON arrays): one connection and one round trip, where four
  // statements at once took four of the pool's connections from the order inserts for every read of
  // an order (buyers poll their order after paying). Measured (6,000 reads, 20 at once): Postgres
  // 523-567 -> 313-363 µs a read, the client 472-501 -> 321-343. Kysely's jsonArrayFrom, not
  // prepared, cost Postgres 1,000 µs: planning the statement each time.
  const { rows } = await sql<{
    state: { status: OrderRow['status']; status_reason: string | null; hold_expires_at: string | null; paid_imp_uid: string | null } | null;
    seats: OrderLines['seats']; items: OrderLines['items'];
    tickets: { id: number; seat_id: string | null; pool_id: string | null; serial: number | null; imp_uid: string; issued_at: string }[];
    payments: { imp_uid: string; amount: number; cancel_amount: number; status: string; fail_reason: string | null; paid_at: string | null }[];
  }>`/* prepared: order_detail */
    select
      (select json_build_object('status', status, 'status_reason', status_reason, 'hold_expires_at', hold_expires_at, 'paid_imp_uid', paid_imp_uid) from orders where merchant_uid = ${merchantUid}) as state,
      coalesce((select json_agg(json_build_object('seat_id', seat_id, 'price', price) order by seat_id) from order_seats where merchant_uid = ${merchantUid}), '[]') as seats,
      coalesce((select json_agg(json_build_object('pool_id', pool_id, 'quantity', quantity, 'unit_price', unit_price) order by pool_id) from order_items where merchant_uid = ${merchantUid}), '[]') as items,
      coalesce((select json_agg(json_build_object('id', id, 'seat_id', seat_id, 'pool_id', pool_id, 'serial', serial, 'imp_uid', imp_uid, 'issued_at', issued_at) order by id) from tickets where merchant_uid = ${merchantUid}), '[]') as tickets,
      coalesce((select json_agg(json_build_object('imp_uid', imp_uid, 'amount', amount, 'cancel_amount', cancel_amount, 'status', status, 'fail_reason', fail_reason, 'paid_at', paid_at) order by created_at) from payments where merchant_uid = ${merchantUid}), '[]') as payments
  `.execute(db);
  const rest = rows[0]!;
  // Timestamps arrive as JSON text: made Dates again, as the columns read alone are.
  const at = (value: string) => new Date(value);
  const state = rest.state === null ? null : { ...rest.state, hold_expires_at: rest.state.hold_expires_at === null ? null : at(rest.state.hold_expires_at) };
  return {
    state,
    lines: { seats: rest.seats, items: rest.items } satisfies OrderLines,
    tickets: rest.tickets.map((t) => ({ ...t, issued_at: at(t.issued_at) })),
    payments: rest.payments.map((p) => ({ ...p, paid_at: p.paid_at === null ? null : at(p.paid_at) })),
  };
}

export async function appendOrderEvent(
  db: Executor,
  merchantUid: string,
  eventId: string,
  type: string,
  data: Record<string, unknown> = {},
): Promise<void> {
  await db.insertInto('order_events').values({ merchant_uid: merchantUid, event_id: eventId, type, data: JSON.stringify(data) }).execute();
}

/**
 * Orders per status of the given events (the metrics scrape passes the active ones): a scrape reads
 * the `(event_id, status)` index of those events, not every order of every season ever sold.
 */
export async function countOrdersByStatus(db: Db, eventIds: readonly string[]): Promise<{ event_id: string; status: string; n: number }[]> {
  if (eventIds.length === 0) return [];
  const rows = await db
    .selectFrom('orders')
    .select(['event_id', 'status', (eb) => eb.fn.countAll<string>().as('n')])
    .where('event_id', 'in', eventIds)
    .groupBy(['event_id', 'status'])
    .execute();
  return rows.map((r) => ({ event_id: r.event_id, status: r.status, n: Number(r.n) }));
}
