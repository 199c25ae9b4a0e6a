/**
 * Creating an event: validate what a schema cannot (duplicates, windows, totals), write it to Postgres,
 * then load its inventory into Redis.
 */
import { randomBytes } from 'node:crypto';
import { DomainError, blockSeatId } from '@dropgate/domain';
import { events as eventsRepo, loadSnapshot, type Db } from '@dropgate/db';
import type { HoldStore } from '@dropgate/redis';
import type { EventCatalog } from './catalog.ts';
import type { Static } from 'typebox';
import type { CreateEventBody } from '../schemas.ts';

/** The admin's event, as the request schema (CreateEventBody) defines it. */
export type CreateEventInput = Static<typeof CreateEventBody>;

/** Upper bound on seats per event: keeps one event's Redis hash and a rebuild within seconds. */
export const MAX_SEATS_PER_EVENT = 200_000;

/** Seats laid out or checked between two turns of the event loop (see createEvent). */
const SEATS_PER_TURN = 20_000;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Sale windows between these years: the format check lets through dates Postgres or a buyer cannot use. */
const FIRST_YEAR = 2000;
const LAST_YEAR = 9999;

/**
 * A `date-time` of the request as a Date, or a 400: the schema's format admits a leap second
 * (`23:59:60`), which JavaScript cannot represent (Postgres would refuse the invalid date with a
 * 500), and year 0000, which Postgres stores as 1 BC.
 */
function saleTime(value: string, field: string): Date {
  const at = new Date(value);
  const year = at.getUTCFullYear();
  if (Number.isNaN(at.getTime()) || year < FIRST_YEAR || year > LAST_YEAR) {
    throw new DomainError('VALIDATION_FAILED', `${field} must be a date-time between the years ${FIRST_YEAR} and ${LAST_YEAR} without a leap second (got ${JSON.stringify(value)})`);
  }
  return at;
}

export async function createEvent(db: Db, store: HoldStore, catalog: EventCatalog, input: CreateEventInput): Promise<void> {
  const opensAt = input.sale_opens_at ? saleTime(input.sale_opens_at, 'sale_opens_at') : new Date();
  const closesAt = input.sale_closes_at ? saleTime(input.sale_closes_at, 'sale_closes_at') : null;
  if (closesAt && closesAt.getTime() <= opensAt.getTime()) {
    throw new DomainError('VALIDATION_FAILED', 'sale_closes_at must be after sale_opens_at');
  }
  const pools = input.pools ?? [];
  const poolIds = new Set<string>();
  for (const p of pools) {
    if (poolIds.has(p.id)) throw new DomainError('VALIDATION_FAILED', `pool id ${p.id} appears twice`);
    poolIds.add(p.id);
  }
  let blockSeats = 0;
  for (const b of input.seat_blocks ?? []) blockSeats += b.rows * b.seats_per_row;
  const total = (input.seats?.length ?? 0) + blockSeats;
  if (total > MAX_SEATS_PER_EVENT) {
    throw new DomainError('VALIDATION_FAILED', `an event has at most ${MAX_SEATS_PER_EVENT} seats (got ${total})`);
  }
  const seats: CreateEventInput['seats'] & object = [...(input.seats ?? [])];
  // A venue of 200,000 seats takes a few hundred milliseconds to lay out and check: let the process's
  // other requests (other events' confirms) in every SEATS_PER_TURN seats.
  for (const b of input.seat_blocks ?? []) {
    for (let r = 1; r <= b.rows; r++) {
      for (let n = 1; n <= b.seats_per_row; n++) {
        seats.push({ id: blockSeatId(b.section, r, n), section: b.section, row: String(r), number: String(n), price: b.price });
      }
      if (seats.length % SEATS_PER_TURN < b.seats_per_row) await nextTurn();
    }
  }
  const seatIds = new Set<string>();
  for (const [i, s] of seats.entries()) {
    if (seatIds.has(s.id)) throw new DomainError('DUPLICATE_SEAT', `seat ${s.id} appears twice`);
    seatIds.add(s.id);
    if (i % SEATS_PER_TURN === SEATS_PER_TURN - 1) await nextTurn();
  }
  if (seats.length === 0 && pools.length === 0) {
    throw new DomainError('NO_INVENTORY', 'an event needs pools, seats or seat_blocks');
  }
  const holdAt = input.hold_at ?? 'confirm';
  if (holdAt === 'order' && input.reservation_ttl_seconds === undefined) {
    throw new DomainError('VALIDATION_FAILED', 'hold_at "order" needs reservation_ttl_seconds');
  }
  if (holdAt === 'confirm' && input.reservation_ttl_seconds !== undefined) {
    throw new DomainError('VALIDATION_FAILED', 'reservation_ttl_seconds applies only with hold_at "order"');
  }
  if (input.waitlist && holdAt !== 'order') {
    // An offer is a reservation: only an event that reserves at selection can make one.
    throw new DomainError('VALIDATION_FAILED', 'a waitlist needs hold_at "order"');
  }
  const inserted = await eventsRepo.insertEvent(db, {
    id: input.id,
    name: input.name,
    saleOpensAt: opensAt,
    saleClosesAt: closesAt,
    holdTtlSeconds: input.hold_ttl_seconds ?? 300,
    maxPerBuyer: input.max_per_buyer ?? null,
    currency: input.currency ?? 'KRW',
    holdAt,
    reservationTtlSeconds: input.reservation_ttl_seconds ?? null,
    waitingRoom: input.waiting_room ?? null,
    waitlistOfferTtlSeconds: input.waitlist?.offer_ttl_seconds ?? null,
    rushSecret: randomBytes(32),
    queueSeed: randomBytes(16).toString('hex'),
    pools,
    seats,
  });
  if (!inserted) throw new DomainError('EVENT_EXISTS', `event ${input.id} exists already`);
  catalog.markKnown(input.id);
  // Under the event's rebuild lock, as a rebuild: the worker's guard may find the event in Postgres
  // without Redis state and rebuild it meanwhile; loading our (older) snapshot over a rebuilt state
  // that has taken holds since would sell those places twice. If a rebuild got there first, its state
  // is the newer one: leave it.
  try {
    const token = await waitForRebuildLock(store, input.id);
    try {
      if ((await store.eventState(input.id)) === 'ready') return;
      const snapshot = await loadSnapshot(db, input.id);
      if (!snapshot) throw new Error(`event ${input.id} vanished after insert`);
      await store.loadEvent(snapshot, `${Date.now()}`);
    } finally {
      await store.unlockRebuild(input.id, token).catch(() => undefined);
    }
  } catch (error) {
    // Postgres has the event (the record); Redis did not take it (out of memory, unreachable, its
    // lock held). The worker's guard loads it as it loads any active event Redis lacks, within seconds
    // once Redis takes writes, and nobody can order or hold on it meanwhile (its state is not ready).
    throw new DomainError('NOT_READY', `event ${input.id} is saved, but Redis did not take its inventory (${(error as Error).message.slice(0, 200)}): `
      + 'the worker loads it as soon as Redis does, and GET /events/:id shows it then (creating it again answers 409 EVENT_EXISTS)');
  }
}

/** The event's rebuild lock, waiting (a rebuild takes seconds at most) up to 30 s. */
async function waitForRebuildLock(store: HoldStore, eventId: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const token = await store.lockRebuild(eventId, 60_000);
    if (token !== null) return token;
    if (Date.now() > deadline) throw new Error(`event ${eventId}: its rebuild lock stayed taken`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
