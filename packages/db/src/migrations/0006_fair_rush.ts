/**
 * Frozen. A fair rush (issue 11): per event, where the hold is taken (`hold_at`: at the confirm, as
 * before, or at order creation for `reservation_ttl_seconds`), an optional waiting room (its settings
 * as JSON: mode, admit_per_second, max_active, admission_ttl_seconds) and an optional waiting list
 * (`waitlist_offer_ttl_seconds`). `rush_secret` signs the event's queue and admission tokens: kept in
 * the record, so every API process signs and checks with the same key and a Redis restart does not
 * invalidate tokens already handed out; `queue_seed` orders the buyers who joined before the opening
 * (published once the sale opens, so the shuffle can be audited). Both are made by the API from the
 * OS's random source when the event is created.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table events
      add column hold_at text not null default 'confirm'
        constraint events__hold_at_ck check (hold_at in ('confirm', 'order')),
      add column reservation_ttl_seconds integer
        constraint events__reservation_ttl_ck check (reservation_ttl_seconds is null or reservation_ttl_seconds between 5 and 3600),
      add column waiting_room jsonb,
      add column waitlist_offer_ttl_seconds integer
        constraint events__waitlist_offer_ttl_ck check (waitlist_offer_ttl_seconds is null or waitlist_offer_ttl_seconds between 5 and 3600),
      -- Written by the API at creation (random bytes from the OS); events made before have none and
      -- have no waiting room either.
      add column rush_secret bytea
        constraint events__rush_secret_ck check (rush_secret is null or octet_length(rush_secret) = 32),
      add column queue_seed text,
      add constraint events__reservation_ttl_needed_ck check (hold_at = 'confirm' or reservation_ttl_seconds is not null);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table events
      drop constraint if exists events__reservation_ttl_needed_ck,
      drop column if exists hold_at,
      drop column if exists reservation_ttl_seconds,
      drop column if exists waiting_room,
      drop column if exists waitlist_offer_ttl_seconds,
      drop column if exists rush_secret,
      drop column if exists queue_seed;
  `.execute(db);
}
