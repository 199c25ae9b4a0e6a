/**
 * Event definitions, cached in memory. An event's definition (sale window, limits, pools, seats and
 * prices) never changes after creation, so each API process loads it from Postgres once. The set of
 * known event ids is refreshed in the background, so the confirm path can tell "unknown event" from
 * "event whose Redis state is missing" without touching Postgres.
 */
import { events as eventsRepo, type Db } from '@dropgate/db';
import type { HoldAt, WaitingRoomSettings } from '@dropgate/domain';

export interface PoolDef { id: string; name: string; capacity: number; price: number }
export interface SeatDef { id: string; section: string; row: string; number: string; price: number }

export interface EventDef {
  id: string;
  name: string;
  saleOpensAt: Date;
  saleClosesAt: Date | null;
  holdTtlSeconds: number;
  maxPerBuyer: number | null;
  currency: string;
  createdAt: Date;
  pools: PoolDef[];
  poolById: Map<string, PoolDef>;
  /** Seats in id order (JavaScript string order, the order paging uses). */
  seats: SeatDef[];
  seatById: Map<string, SeatDef>;
  /** Fair rush (issue 11). */
  holdAt: HoldAt;
  reservationTtlSeconds: number | null;
  waitingRoom: WaitingRoomSettings | null;
  waitlistOfferTtlSeconds: number | null;
  /** Signs the event's queue, admission and waiting-list tokens; never leaves the server. */
  rushSecret: Buffer | null;
  queueSeed: string | null;
}

/** How often requests naming an event this process does not know may refresh the known ids (at most). */
export const MISS_REFRESH_MS = 200;

export class EventCatalog {
  private readonly db: Db;
  private readonly known = new Set<string>();
  private readonly defs = new Map<string, Promise<EventDef | null>>();
  private readonly loaded = new Map<string, EventDef>();
  private timer: NodeJS.Timeout | undefined;
  private missRefresh: Promise<void> | null = null;
  private missRefreshAt = Number.NEGATIVE_INFINITY;

  constructor(db: Db) {
    this.db = db;
  }

  /** Loads the known event ids now, then every `intervalMs` in the background. */
  async start(intervalMs = 2_000): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    for (const id of await eventsRepo.listEventIds(this.db)) this.known.add(id);
  }

  /** Synchronous: is this event known to exist (as of the last refresh)? */
  isKnown(eventId: string): boolean {
    return this.known.has(eventId);
  }

  knownIds(): string[] {
    return [...this.known];
  }

  markKnown(eventId: string): void {
    this.known.add(eventId);
  }

  /** The event's definition if it is loaded already (no I/O), else undefined. */
  peek(eventId: string): EventDef | undefined {
    return this.loaded.get(eventId);
  }

  /**
   * The event's definition, or null when it does not exist. An id not among the known ones is looked
   * for by refreshing the known ids, at most once every MISS_REFRESH_MS and shared by every request
   * asking meanwhile: requests naming made-up events (anyone can send them, to every public route
   * and webhook) cost no Postgres query each. An event created by another API process is found at
   * the next such refresh (one made by this process is known at once).
   */
  async get(eventId: string): Promise<EventDef | null> {
    if (!this.known.has(eventId) && !this.defs.has(eventId)) {
      await this.refreshForMiss();
      if (!this.known.has(eventId)) return null;
    }
    let def = this.defs.get(eventId);
    if (!def) {
      def = this.load(eventId);
      this.defs.set(eventId, def);
      // Do not cache misses or failures: the event may be created a moment later.
      def.then((d) => { if (!d) this.defs.delete(eventId); else this.loaded.set(eventId, d); }, () => this.defs.delete(eventId));
    }
    return def;
  }

  /**
   * Whether the event exists, without loading its definition: known, or found by the shared refresh
   * `get` uses for an id not known (so a made-up id costs no query of its own).
   */
  async exists(eventId: string): Promise<boolean> {
    if (this.known.has(eventId)) return true;
    await this.refreshForMiss();
    return this.known.has(eventId);
  }

  /** A refresh of the known ids for an id not among them: the one in flight, or none so soon after the last. */
  private refreshForMiss(): Promise<void> {
    if (this.missRefresh) return this.missRefresh;
    const now = performance.now();
    if (now - this.missRefreshAt < MISS_REFRESH_MS) return Promise.resolve();
    this.missRefreshAt = now;
    this.missRefresh = this.refresh().finally(() => { this.missRefresh = null; });
    return this.missRefresh;
  }

  private async load(eventId: string): Promise<EventDef | null> {
    const row = await eventsRepo.findEvent(this.db, eventId);
    if (!row) return null;
    const [pools, seats] = await Promise.all([
      eventsRepo.listPools(this.db, eventId),
      eventsRepo.listSeats(this.db, eventId),
    ]);
    const seatDefs: SeatDef[] = seats
      .map((s) => ({ id: s.id, section: s.section, row: s.row, number: s.number, price: s.price }))
      // Already in this order from listSeats (a sorted array costs the sort one pass); kept as the
      // guarantee the seat pages rely on.
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const poolDefs: PoolDef[] = pools.map((p) => ({ id: p.id, name: p.name, capacity: p.capacity, price: p.price }));
    this.known.add(eventId);
    return {
      id: row.id,
      name: row.name,
      saleOpensAt: row.sale_opens_at,
      saleClosesAt: row.sale_closes_at,
      holdTtlSeconds: row.hold_ttl_seconds,
      maxPerBuyer: row.max_per_buyer,
      currency: row.currency,
      createdAt: row.created_at,
      pools: poolDefs,
      poolById: new Map(poolDefs.map((p) => [p.id, p])),
      seats: seatDefs,
      seatById: new Map(seatDefs.map((s) => [s.id, s])),
      holdAt: row.hold_at,
      reservationTtlSeconds: row.reservation_ttl_seconds,
      waitingRoom: row.waiting_room,
      waitlistOfferTtlSeconds: row.waitlist_offer_ttl_seconds,
      rushSecret: row.rush_secret,
      queueSeed: row.queue_seed,
    };
  }
}
