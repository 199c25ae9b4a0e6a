/**
 * Frozen. How far each waiting room has admitted: the place (the queue token's place, as the room
 * orders buyers) of the last buyer admitted, recorded by the worker about once a second while the
 * room admits. Admissions go in place order, so every buyer whose place is at or before it was
 * admitted. Redis keeps who was admitted; when Redis loses the room, a buyer put back by their token
 * at or before this place is admitted again at once instead of queueing for a second admission.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table queue_fronts (
      event_id text constraint queue_fronts__pk primary key
        constraint queue_fronts__event_fk references events (id) on delete cascade,
      place double precision not null,
      updated_at timestamptz not null default now()
    )
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table queue_fronts`.execute(db);
}
