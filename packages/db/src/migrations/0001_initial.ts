/**
 * Frozen. The initial schema. Postgres refuses an oversell by itself: a sold seat is unique per event
 * (tickets__event_id_seat_id_uq) and a pool ticket's serial is unique per pool and lies within the
 * pool's capacity (tickets__event_id_pool_id_serial_uq + tickets__serial_within_capacity_ck, with the
 * capacity pinned to the pool's by a foreign key), so a pool can never have more tickets than seats.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table events (
      id text constraint events__pk primary key,
      name text not null,
      sale_opens_at timestamptz not null,
      sale_closes_at timestamptz,
      hold_ttl_seconds integer not null constraint events__hold_ttl_ck check (hold_ttl_seconds between 5 and 3600),
      max_per_buyer integer constraint events__max_per_buyer_ck check (max_per_buyer is null or max_per_buyer >= 1),
      currency text not null,
      created_at timestamptz not null default now(),
      constraint events__sale_window_ck check (sale_closes_at is null or sale_closes_at > sale_opens_at)
    );

    create table pools (
      event_id text not null constraint pools__event_fk references events (id) on delete cascade,
      id text not null,
      name text not null,
      capacity integer not null constraint pools__capacity_ck check (capacity > 0),
      price bigint not null constraint pools__price_ck check (price >= 0),
      constraint pools__pk primary key (event_id, id),
      constraint pools__event_id_id_capacity_uq unique (event_id, id, capacity)
    );

    create table seats (
      event_id text not null constraint seats__event_fk references events (id) on delete cascade,
      id text not null,
      section text not null,
      row text not null,
      number text not null,
      price bigint not null constraint seats__price_ck check (price >= 0),
      constraint seats__pk primary key (event_id, id)
    );

    create table orders (
      merchant_uid text constraint orders__pk primary key,
      event_id text not null constraint orders__event_fk references events (id) on delete cascade,
      buyer_id text not null,
      amount bigint not null constraint orders__amount_ck check (amount >= 0),
      currency text not null,
      status text not null default 'pending'
        constraint orders__status_ck check (status in ('pending', 'held', 'paid', 'released', 'expired', 'refunded')),
      status_reason text,
      hold_expires_at timestamptz,
      paid_imp_uid text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create index orders__event_id_status_ix on orders (event_id, status);
    create index orders__event_id_buyer_id_ix on orders (event_id, buyer_id);

    create table order_seats (
      merchant_uid text not null constraint order_seats__order_fk references orders (merchant_uid) on delete cascade,
      event_id text not null,
      seat_id text not null,
      price bigint not null,
      constraint order_seats__pk primary key (merchant_uid, seat_id),
      constraint order_seats__seat_fk foreign key (event_id, seat_id) references seats (event_id, id) on delete cascade
    );

    create table order_items (
      merchant_uid text not null constraint order_items__order_fk references orders (merchant_uid) on delete cascade,
      event_id text not null,
      pool_id text not null,
      quantity integer not null constraint order_items__quantity_ck check (quantity > 0),
      unit_price bigint not null,
      constraint order_items__pk primary key (merchant_uid, pool_id),
      constraint order_items__pool_fk foreign key (event_id, pool_id) references pools (event_id, id) on delete cascade
    );

    create table holds (
      hold_id text constraint holds__pk primary key,
      merchant_uid text not null constraint holds__order_fk references orders (merchant_uid) on delete cascade,
      event_id text not null,
      imp_uid text not null,
      seq integer not null,
      status text not null constraint holds__status_ck check (status in ('live', 'committed', 'released', 'expired', 'undone')),
      expires_at timestamptz not null,
      created_at timestamptz not null default now(),
      ended_at timestamptz,
      end_reason text
    );
    create index holds__live_expires_at_ix on holds (expires_at) where status = 'live';
    create index holds__merchant_uid_ix on holds (merchant_uid);

    create table payments (
      imp_uid text constraint payments__pk primary key,
      merchant_uid text not null constraint payments__order_fk references orders (merchant_uid) on delete cascade,
      event_id text not null,
      amount bigint not null,
      cancel_amount bigint not null default 0,
      status text not null,
      fail_reason text,
      paid_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create index payments__merchant_uid_ix on payments (merchant_uid);

    create table tickets (
      id bigserial constraint tickets__pk primary key,
      event_id text not null,
      merchant_uid text not null constraint tickets__order_fk references orders (merchant_uid) on delete cascade,
      imp_uid text not null,
      seat_id text,
      pool_id text,
      pool_capacity integer,
      serial integer,
      issued_at timestamptz not null default now(),
      constraint tickets__seat_fk foreign key (event_id, seat_id) references seats (event_id, id) on delete cascade,
      constraint tickets__pool_fk foreign key (event_id, pool_id, pool_capacity) references pools (event_id, id, capacity) on delete cascade,
      constraint tickets__event_id_seat_id_uq unique (event_id, seat_id),
      constraint tickets__event_id_pool_id_serial_uq unique (event_id, pool_id, serial),
      constraint tickets__seat_or_pool_ck check (
        (seat_id is not null and pool_id is null and pool_capacity is null and serial is null)
        or (seat_id is null and pool_id is not null and pool_capacity is not null and serial is not null)
      ),
      constraint tickets__serial_within_capacity_ck check (serial is null or serial between 1 and pool_capacity)
    );
    create index tickets__merchant_uid_ix on tickets (merchant_uid);

    create table refunds (
      imp_uid text constraint refunds__pk primary key,
      merchant_uid text not null,
      event_id text not null,
      amount bigint not null,
      reason text not null,
      status text not null constraint refunds__status_ck check (status in ('requested', 'done')),
      created_at timestamptz not null default now(),
      done_at timestamptz
    );

    create table order_events (
      id bigserial constraint order_events__pk primary key,
      merchant_uid text not null,
      event_id text not null,
      type text not null,
      data jsonb not null default '{}',
      at timestamptz not null default now()
    );
    create index order_events__merchant_uid_ix on order_events (merchant_uid);

    create function order_events__append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'order_events is append-only' using errcode = 'restrict_violation';
    end $$;
    create trigger order_events__append_only_tg before update or delete on order_events
      for each row execute function order_events__append_only();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop table if exists order_events, refunds, tickets, payments, holds, order_items, order_seats, orders, seats, pools, events cascade;
    drop function if exists order_events__append_only();
  `.execute(db);
}
