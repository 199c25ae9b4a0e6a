/**
 * The simulated venue: numbered seats laid out in sections of rows (as `seat_blocks`), and one
 * general-admission pool. Buyers pick adjacent seats in a row, the front rows more often (that is where
 * a drop's contention is), or places in the pool.
 */
import { randomInt, type Random } from './random.ts';

export const SEATS_PER_ROW = 50;
export const ROWS_PER_SECTION = 20;
export const SEAT_PRICE = 99_000;
export const POOL_PRICE = 55_000;
export const POOL_ID = 'floor';

export interface SeatBlock {
  section: string;
  rows: number;
  seats_per_row: number;
  price: number;
}

export interface Row {
  section: string;
  row: number;
  seats: number;
}

export interface Venue {
  seats: number;
  pool: number;
  capacity: number;
  blocks: SeatBlock[];
  /** Every row, front (section A, row 1) first. */
  rows: Row[];
}

function sectionName(i: number): string {
  let name = '';
  let n = i;
  do {
    name = String.fromCharCode(65 + (n % 26)) + name;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return name;
}

export function buildVenue(seats: number, pool: number): Venue {
  const blocks: SeatBlock[] = [];
  const rows: Row[] = [];
  const fullRows = Math.floor(seats / SEATS_PER_ROW);
  const rest = seats % SEATS_PER_ROW;
  let section = 0;
  for (let done = 0; done < fullRows; done += ROWS_PER_SECTION) {
    const n = Math.min(ROWS_PER_SECTION, fullRows - done);
    const name = sectionName(section++);
    blocks.push({ section: name, rows: n, seats_per_row: SEATS_PER_ROW, price: SEAT_PRICE });
    for (let r = 1; r <= n; r++) rows.push({ section: name, row: r, seats: SEATS_PER_ROW });
  }
  if (rest > 0) {
    const name = sectionName(section);
    blocks.push({ section: name, rows: 1, seats_per_row: rest, price: SEAT_PRICE });
    rows.push({ section: name, row: 1, seats: rest });
  }
  return { seats, pool, capacity: seats + pool, blocks, rows };
}

/** The `POST /admin/events` body of a drop. */
export interface RushSettings {
  waitingRoom: 'fixed' | 'dynamic' | null;
  admitPerSecond: number;
  maxActive: number;
  admissionTtl: number;
  holdAt: 'confirm' | 'order';
  reservationTtl: number;
  waitlist: boolean;
  waitlistOfferTtl: number;
}

export function eventBody(venue: Venue, opts: { id: string; holdTtl: number; maxPerBuyer: number; closesAt: Date; rush?: RushSettings }) {
  const r = opts.rush;
  return {
    ...(r?.holdAt === 'order' ? { hold_at: 'order', reservation_ttl_seconds: r.reservationTtl } : {}),
    ...(r?.waitingRoom
      ? { waiting_room: { mode: r.waitingRoom, admit_per_second: r.admitPerSecond, max_active: r.maxActive, admission_ttl_seconds: r.admissionTtl } }
      : {}),
    ...(r?.waitlist ? { waitlist: { offer_ttl_seconds: r.waitlistOfferTtl } } : {}),
    id: opts.id,
    name: `Simulated drop ${opts.id}`,
    sale_closes_at: opts.closesAt.toISOString(),
    hold_ttl_seconds: opts.holdTtl,
    max_per_buyer: opts.maxPerBuyer,
    currency: 'KRW',
    ...(venue.pool > 0 ? { pools: [{ id: POOL_ID, name: 'Floor (standing)', capacity: venue.pool, price: POOL_PRICE }] } : {}),
    ...(venue.blocks.length > 0 ? { seat_blocks: venue.blocks } : {}),
  };
}

export type OrderChoice = { seats: string[] } | { items: { pool: string; quantity: number }[] };

/** What one buyer wants: n adjacent seats in a row (front rows favoured), or n places in the pool. */
export function chooseOrder(venue: Venue, random: Random, maxPerOrder: number): OrderChoice {
  const n = randomInt(random, 1, maxPerOrder);
  const wantsPool = venue.pool > 0 && (venue.seats === 0 || random() < venue.pool / venue.capacity);
  if (wantsPool) return { items: [{ pool: POOL_ID, quantity: Math.min(n, venue.pool) }] };
  // random()^2 skews towards 0: the front rows are wanted more than the back.
  const row = venue.rows[Math.min(venue.rows.length - 1, Math.floor(random() ** 2 * venue.rows.length))]!;
  const count = Math.min(n, row.seats);
  const start = randomInt(random, 1, row.seats - count + 1);
  const seats: string[] = [];
  for (let i = 0; i < count; i++) seats.push(`${row.section}-${row.row}-${start + i}`);
  return { seats };
}

/** What a refreshed seat map shows free: the pool's available places and a page of available seats. */
export interface FreePlaces {
  poolAvailable: number;
  seatsAvailable: number;
  /** A page of available seat ids, in id order. */
  seatIds: readonly string[];
}

/**
 * What a buyer picks from the refreshed map after a refusal: n places among those shown free (the
 * pool, or seats of the page, next to each other in id order from a random one), or null when the map
 * shows nothing free.
 */
export function chooseFromFree(free: FreePlaces, random: Random, maxPerOrder: number): OrderChoice | null {
  const seats = Math.min(free.seatsAvailable, free.seatIds.length);
  if (free.poolAvailable + seats <= 0) return null;
  const n = randomInt(random, 1, maxPerOrder);
  if (free.poolAvailable > 0 && (seats === 0 || random() < free.poolAvailable / (free.poolAvailable + free.seatsAvailable))) {
    return { items: [{ pool: POOL_ID, quantity: Math.min(n, free.poolAvailable) }] };
  }
  const count = Math.min(n, free.seatIds.length);
  const start = randomInt(random, 0, free.seatIds.length - count);
  return { seats: free.seatIds.slice(start, start + count) };
}
