/** Order vocabulary shared by the API, the workers and the database. */
export const OrderStatuses = ['pending', 'held', 'paid', 'released', 'expired', 'refunded'] as const;
export type OrderStatus = (typeof OrderStatuses)[number];

export const HoldStatuses = ['live', 'committed', 'released', 'expired', 'undone'] as const;
export type HoldStatus = (typeof HoldStatuses)[number];

export interface PoolItem {
  readonly pool: string;
  readonly quantity: number;
}

/** Seats in a seat block are named `<section>-<row>-<number>`, rows and numbers from 1. */
export function blockSeatId(section: string, row: number, number: number): string {
  return `${section}-${row}-${number}`;
}

/**
 * The most one payment can carry (₩10,000,000,000), as the confirm bodies allow: an order costing more,
 * or nothing at all (PortOne takes no payment of 0), could only ever hold its places.
 */
export const PAYMENT_AMOUNT_MAX = 10_000_000_000;

/** Number of tickets an order would issue: one per seat plus every pool quantity. */
export function ticketCount(seats: readonly string[], items: readonly PoolItem[]): number {
  return seats.length + items.reduce((n, i) => n + i.quantity, 0);
}

/**
 * An event's whole state as Postgres records it: what the Redis state is (re)built from. Produced by
 * the database package, consumed by the Redis package.
 */
export interface EventSnapshot {
  id: string;
  opensAt: number;
  closesAt: number | null;
  holdTtlMs: number;
  maxPerBuyer: number | null;
  pools: { id: string; capacity: number }[];
  seats: string[];
  orders: SnapshotOrder[];
  /**
   * Orders the record has as held whose places another claim of the record already has (a sale, or an
   * earlier hold): loaded without places (`released`), and their holds are to be ended in the record
   * too. Only after a Redis fault (a failover's lost hold, a hold recorded after a rebuild read the
   * record) can the record hold two claims on one place; see loadSnapshot.
   */
  displaced?: string[];
}

export interface SnapshotOrder {
  merchantUid: string;
  /** The buyer was verified (signed buyer token): the order counts against ORDERS_PER_BUYER_MAX. Absent: false. */
  buyerVerified?: boolean;
  /** The PortOne API the order's payments go through. Absent: v1. */
  portoneApi?: 'v1' | 'v2';
  amount: number;
  buyerId: string;
  seats: string[];
  items: PoolItem[];
  status: OrderStatus;
  /** For held orders: the live hold's expiry, seq and imp_uid. */
  holdExpiresAt: number | null;
  seq: number;
  impUid: string | null;
}

/**
 * Where dropgate's decisions read the time: the confirm's hold expiry and sale window, the sweep's
 * "overdue", the expiry's grace. Services take one from their context (the system clock in
 * production); tests pass a clock they can move forward instead of waiting out real TTLs.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = Object.freeze({ now: () => Date.now() });
