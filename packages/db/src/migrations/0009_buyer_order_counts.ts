/**
 * Frozen. Postgres enforces ORDERS_PER_BUYER_MAX again, as it enforces "no oversell" behind Redis: the
 * verified orders of a buyer for an event are counted here in the statement that inserts them, and a
 * count past the bound the inserting API gave (`max_orders`, 0: none) is refused by constraint. The
 * claim in Redis is the fast path that refuses without writing; this count is the record, which a
 * Redis that lost the event's keys (and the claims in flight) cannot lose. Withdrawn verified orders
 * give their count back in the statement that withdraws them.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table buyer_order_counts (
      event_id text not null,
      buyer_id text not null,
      orders integer not null,
      max_orders integer not null,
      constraint buyer_order_counts__pk primary key (event_id, buyer_id),
      constraint buyer_order_counts__within_max_ck check (max_orders = 0 or orders <= max_orders)
    )
  `.execute(db);
  // Orders made before this migration count as they are.
  await sql`
    insert into buyer_order_counts (event_id, buyer_id, orders, max_orders)
    select event_id, buyer_id, count(*), 0 from orders where buyer_verified group by event_id, buyer_id
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table buyer_order_counts`.execute(db);
}
