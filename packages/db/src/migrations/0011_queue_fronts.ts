/**
 * Frozen. How far each waiting room has admitted, and when: the place (the queue token's place, as the
 * room orders buyers) of the last buyer admitted, recorded by the worker about once a second while the
 * room admits, one row each time it moved. Admissions go in place order, so every buyer whose place is
 * at or before a row's place had been admitted by the row's time. Redis keeps who was admitted; when
 * Redis loses the room, a buyer put back by their token at or before the front is admitted again at
 * once (until their admission would have ended) instead of queueing for a second admission.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table queue_fronts (
      event_id text not null constraint queue_fronts__event_fk references events (id) on delete cascade,
      at timestamptz not null,
      place double precision not null,
      constraint queue_fronts__pk primary key (event_id, at)
    )
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table queue_fronts`.execute(db);
}
