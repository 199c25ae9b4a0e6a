/**
 * Group commit for new orders (issue 10). At a drop every buyer creates an order first, and an order
 * is answered 201 only once it is in Postgres (it must survive Redis losing its data). One transaction
 * per order (four statements and a commit, each a round trip) made Postgres the front door's limit.
 *
 * Instead, concurrent creations share a commit: the first caller writes at once; callers that arrive
 * while a write is in flight wait for it and then go together, up to `maxBatch` orders, in ONE
 * statement (data-modifying CTEs: orders, their seats, their items and the `created` log entries;
 * foreign keys are checked at the end of the statement, so children may sit beside their parents).
 * A lone caller pays no extra latency; under load each commit carries many orders. Every caller's
 * promise resolves only after the statement holding its order has committed.
 *
 * A batch refused by a constraint (integrity violation, SQLSTATE class 23) is retried one order per
 * statement, so one bad order never fails the others and each caller gets its own order's error. Any
 * other failure (Postgres down, a lost connection) fails the whole batch at once.
 */
import { sql } from 'kysely';
import type { Db } from '../database.ts';

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
  seats: { id: string; price: number }[];
  items: { pool: string; quantity: number; unitPrice: number }[];
}

/** Orders per statement at most: bounds the statement's parameters and one commit's work. */
export const ORDER_BATCH_MAX = 256;

interface Pending {
  order: NewOrderInput;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Inserts `orders` with their seats, items and `created` log entries in one statement. */
export async function insertOrders(db: Db, orders: readonly NewOrderInput[]): Promise<void> {
  if (orders.length === 0) return;
  const seats = orders.flatMap((o) => o.seats.map((s) => ({ o, s })));
  const items = orders.flatMap((o) => o.items.map((i) => ({ o, i })));
  await sql`
    with new_orders as (
      insert into orders (merchant_uid, event_id, buyer_id, amount, currency, status, order_token_hash, portone_api)
      select m, e, b, a, c, 'pending', h, api
      from unnest(${orders.map((o) => o.merchantUid)}::text[], ${orders.map((o) => o.eventId)}::text[],
                  ${orders.map((o) => o.buyerId)}::text[], ${orders.map((o) => o.amount)}::bigint[],
                  ${orders.map((o) => o.currency)}::text[], ${orders.map((o) => o.orderTokenHash ?? null)}::bytea[],
                  ${orders.map((o) => o.portoneApi ?? 'v1')}::text[]) as t(m, e, b, a, c, h, api)
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

function isConstraintViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('23');
}

/** Batches the orders of one database handle (see the file comment). */
export class OrderWriter {
  readonly #db: Db;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #writing = false;
  /** Statements written and orders in them, for tests and metrics. */
  readonly stats = { statements: 0, orders: 0, largestBatch: 0 };

  constructor(db: Db, maxBatch = ORDER_BATCH_MAX) {
    this.#db = db;
    this.#maxBatch = maxBatch;
  }

  /** Resolves once `order` is committed. */
  insert(order: NewOrderInput): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ order, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        try {
          await this.#write(batch.map((p) => p.order));
          for (const p of batch) p.resolve();
        } catch (error) {
          if (batch.length === 1 || !isConstraintViolation(error)) {
            // Postgres down or the connection lost: every order of the batch failed the same way (and
            // retrying them one by one would make each caller wait out the outage again).
            for (const p of batch) p.reject(error);
            continue;
          }
          // One order at a time: the others commit, the bad one gets its own error.
          for (const p of batch) {
            try {
              await this.#write([p.order]);
              p.resolve();
            } catch (own) {
              p.reject(own);
            }
          }
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  async #write(orders: NewOrderInput[]): Promise<void> {
    await insertOrders(this.#db, orders);
    this.stats.statements++;
    this.stats.orders += orders.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, orders.length);
  }
}

const writers = new WeakMap<Db, OrderWriter>();

/** The group-commit writer of a database handle (one per handle, made on first use). */
export function orderWriter(db: Db): OrderWriter {
  let writer = writers.get(db);
  if (writer === undefined) {
    writer = new OrderWriter(db);
    writers.set(db, writer);
  }
  return writer;
}
