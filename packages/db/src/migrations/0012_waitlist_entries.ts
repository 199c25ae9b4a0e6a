/**
 * Frozen. The waiting lists' entries, kept in Postgres as well as Redis: a buyer's entry (what they
 * asked for, and their arrival number on the list) is written when they join, before the 201, so a
 * list Redis lost is put back by the rebuild. An entry's later states are not kept here: an offer is
 * the order made for it (orders.waitlist_offer), and sold_out and dropped entries are told so again
 * by the list's next step. Never updated.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table waitlist_entries (
      event_id text not null constraint waitlist_entries__event_fk references events (id) on delete cascade,
      buyer_id text not null,
      seq bigint not null constraint waitlist_entries__seq_ck check (seq >= 1),
      seats text[] not null,
      items jsonb not null,
      created_at timestamptz not null default now(),
      constraint waitlist_entries__pk primary key (event_id, buyer_id)
    )
  `.execute(db);
  await sql`create index orders__waitlist_offer_ix on orders (event_id, buyer_id) where waitlist_offer`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index orders__waitlist_offer_ix`.execute(db);
  await sql`drop table waitlist_entries`.execute(db);
}
