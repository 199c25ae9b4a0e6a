/** Events, their pools and seats. */
import { sql } from 'kysely';
import type { Db } from '../database.ts';
import type { EventRow, PoolRow, SeatRow } from '../schema.ts';
import type { HoldAt, WaitingRoomSettings } from '@dropgate/domain';

export interface NewEvent {
  id: string;
  name: string;
  saleOpensAt: Date;
  saleClosesAt: Date | null;
  holdTtlSeconds: number;
  maxPerBuyer: number | null;
  currency: string;
  /** Fair rush settings (migration 0006); absent: hold at the confirm, no waiting room or list. */
  holdAt?: HoldAt;
  reservationTtlSeconds?: number | null;
  waitingRoom?: WaitingRoomSettings | null;
  waitlistOfferTtlSeconds?: number | null;
  rushSecret?: Buffer;
  queueSeed?: string;
  pools: { id: string; name: string; capacity: number; price: number }[];
  seats: { id: string; section: string; row: string; number: string; price: number }[];
}

/**
 * Inserts an event with its pools and seats in one transaction. Seats go in as column arrays through
 * `unnest`, so a 50,000-seat venue is one statement per 10,000 seats rather than 50,000 round trips.
 * @returns false when an event with that id exists already (nothing is written).
 */
export async function insertEvent(db: Db, e: NewEvent): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('events')
      .values({
        id: e.id,
        name: e.name,
        sale_opens_at: e.saleOpensAt,
        sale_closes_at: e.saleClosesAt,
        hold_ttl_seconds: e.holdTtlSeconds,
        max_per_buyer: e.maxPerBuyer,
        currency: e.currency,
        hold_at: e.holdAt ?? 'confirm',
        reservation_ttl_seconds: e.reservationTtlSeconds ?? null,
        waiting_room: e.waitingRoom ? JSON.stringify(e.waitingRoom) : null,
        waitlist_offer_ttl_seconds: e.waitlistOfferTtlSeconds ?? null,
        rush_secret: e.rushSecret ?? null,
        queue_seed: e.queueSeed ?? null,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return false;
    if (e.pools.length > 0) {
      await trx.insertInto('pools').values(e.pools.map((p) => ({ event_id: e.id, ...p }))).execute();
    }
    const chunk = 10_000;
    for (let i = 0; i < e.seats.length; i += chunk) {
      const part = e.seats.slice(i, i + chunk);
      await sql`
        insert into seats (event_id, id, section, row, number, price)
        select ${e.id}, * from unnest(
          ${part.map((s) => s.id)}::text[], ${part.map((s) => s.section)}::text[],
          ${part.map((s) => s.row)}::text[], ${part.map((s) => s.number)}::text[],
          ${part.map((s) => s.price)}::bigint[])
      `.execute(trx);
    }
    return true;
  });
}

export function findEvent(db: Db, id: string): Promise<EventRow | undefined> {
  return db.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
}

export function listEventIds(db: Db): Promise<string[]> {
  return db.selectFrom('events').select('id').execute().then((rows) => rows.map((r) => r.id));
}

/**
 * Events whose waiting room may still admit (on sale, or closed less than a day ago), each with how
 * far its room has admitted as last recorded (queue_fronts; null: nothing recorded yet).
 */
export async function listRoomFronts(db: Db, now: Date): Promise<{ id: string; place: number | null; waitingRoom: WaitingRoomSettings | null }[]> {
  return db
    .selectFrom('events')
    .select((eb) => [
      'events.id as id',
      'events.waiting_room as waitingRoom',
      // The latest record (the front only moves on): one step down the primary key's index.
      eb.selectFrom('queue_fronts').select('queue_fronts.place').whereRef('queue_fronts.event_id', '=', 'events.id').orderBy('queue_fronts.at', 'desc').limit(1).as('place'),
    ])
    .where('events.waiting_room', 'is not', null)
    .where((eb) => eb.or([eb('events.sale_closes_at', 'is', null), eb('events.sale_closes_at', '>', new Date(now.getTime() - 86_400_000))]))
    .execute();
}

/** Records that an event's waiting room had admitted up to `place` by `at`. */
export async function recordRoomFront(db: Db, eventId: string, place: number, at: Date): Promise<void> {
  await db.insertInto('queue_fronts').values({ event_id: eventId, place, at }).onConflict((oc) => oc.doNothing()).execute();
}

/**
 * Drops an event's records older than `before`, but the newest of them: a buyer whose place only such a
 * record covers was admitted before it, so before `before`, which is all a rebuild needs to know.
 */
export async function pruneRoomFronts(db: Db, eventId: string, before: Date): Promise<void> {
  await sql`
    delete from queue_fronts
    where event_id = ${eventId}
      and at < (select max(at) from queue_fronts where event_id = ${eventId} and at < ${before})
  `.execute(db);
}

/**
 * What a rebuild needs to put back an event's rush state Redis lost: whether it has a waiting room and
 * how far the room had admitted by when (every record, oldest first), whether it has a waiting list,
 * and the event's secret (the list's offers' order tokens derive from it).
 */
export async function findRushRecord(
  db: Db, eventId: string,
): Promise<{ hasRoom: boolean; fronts: { place: number; at: number }[]; hasWaitlist: boolean; rushSecret: Buffer | null } | undefined> {
  const row = await db
    .selectFrom('events')
    .select(['waiting_room', 'waitlist_offer_ttl_seconds', 'rush_secret'])
    .where('id', '=', eventId)
    .executeTakeFirst();
  if (!row) return undefined;
  const fronts = row.waiting_room === null
    ? []
    : await db.selectFrom('queue_fronts').select(['place', 'at']).where('event_id', '=', eventId).orderBy('at').execute();
  return {
    hasRoom: row.waiting_room !== null,
    fronts: fronts.map((f) => ({ place: f.place, at: f.at.getTime() })),
    hasWaitlist: row.waitlist_offer_ttl_seconds !== null,
    rushSecret: row.rush_secret,
  };
}

/**
 * Events whose state must be in Redis and watched by the workers: on sale, closed less than a day ago
 * (holds taken just before the close, hand-offs and late payments still settle), or with held orders.
 */
export async function listActiveEventIds(db: Db, now: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('events')
    .select('id')
    .where((eb) =>
      eb.or([
        eb('sale_closes_at', 'is', null),
        eb('sale_closes_at', '>', new Date(now.getTime() - 86_400_000)),
        eb.exists(
          eb.selectFrom('orders').select(sql`1`.as('one')).whereRef('orders.event_id', '=', 'events.id').where('orders.status', '=', 'held'),
        ),
      ]),
    )
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Events whose season is over: the sale closed more than a day ago and no order is held (the
 * complement of {@link listActiveEventIds}). Their Redis state may be archived (removed): Postgres
 * keeps everything, and the state is loaded again when something needs it.
 */
export async function listArchivableEventIds(db: Db, now: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('events')
    .select('id')
    .where('sale_closes_at', 'is not', null)
    .where('sale_closes_at', '<=', new Date(now.getTime() - 86_400_000))
    .where((eb) => eb.not(eb.exists(
      eb.selectFrom('orders').select(sql`1`.as('one')).whereRef('orders.event_id', '=', 'events.id').where('orders.status', '=', 'held'),
    )))
    .execute();
  return rows.map((r) => r.id);
}

export function listPools(db: Db, eventId: string): Promise<PoolRow[]> {
  return db.selectFrom('pools').selectAll().where('event_id', '=', eventId).orderBy('id').execute();
}

/**
 * All seats of an event, in byte order of their ids (collation "C", whatever the database's): the
 * order JavaScript's `<` gives the ids' characters (letters, digits, `_.:-`), so a caller that sorts
 * them again (the catalog) finds them sorted, at no cost to its event loop (200,000 seats sorted in
 * JavaScript held the API's for about 150 ms).
 */
export function listSeats(db: Db, eventId: string): Promise<SeatRow[]> {
  return db.selectFrom('seats').selectAll().where('event_id', '=', eventId).orderBy(sql`id collate "C"`).execute();
}
