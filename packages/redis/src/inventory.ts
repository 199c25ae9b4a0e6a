/**
 * Inventory reads: what an event's Redis state says about availability, seats, orders and holds. The
 * only place (with the scripts) that knows the key and field names; everything else reads through it.
 */
import type { ChainableCommander } from 'ioredis';
import type { ScriptedRedis } from './scripts.ts';
import { isCluster } from './connection.ts';
import { eventKeys } from './keys.ts';
import type { OrderStatus } from '@dropgate/domain';
import type { Availability, InventoryCounts, OrderState, SeatState } from './types.ts';

/** What order creation asks Redis before it writes anything (one round trip). */
export interface OrderPreflight {
  state: 'ready' | 'loading' | null;
  buyerTickets: number;
}

/** The preflight of an order that takes its places at once (hold_at "order"): the counters too. */
export interface OrderPreflightWithCounts extends OrderPreflight {
  /** Could an order of these seats and pool items still be served, as the counters say right now? */
  available: (seats: readonly string[], items: readonly { pool: string; quantity: number }[]) => boolean;
}

/** Who holds or bought a seat, as the seat hash says. */
export interface SeatOwner {
  state: SeatState;
  merchantUid: string | null;
}

/** An event's counters as Redis holds them, parsed: seats (when the venue has any) and each pool. */
export interface EventCounts {
  seats: InventoryCounts | null;
  pools: Map<string, InventoryCounts>;
}

/** One event's inventory and holds at a glance (metrics, rehearsals, settle checks). */
export interface EventInventory extends EventCounts {
  state: 'ready' | 'loading' | null;
  liveHolds: number;
  /** Holds whose expiry is at or before the `overdueBefore` asked for. */
  overdueHolds: number;
}

/** Parses the counters hash (`seats_total|held|sold`, `p:<pool>:cap|held|sold`). */
export function parseCounts(counts: Record<string, string>): EventCounts {
  const n = (f: string) => Number(counts[f] ?? 0);
  const of = (cap: number, held: number, sold: number): InventoryCounts => ({ capacity: cap, held, sold, available: cap - held - sold });
  const seats = n('seats_total') > 0 ? of(n('seats_total'), n('seats_held'), n('seats_sold')) : null;
  const pools = new Map<string, InventoryCounts>();
  for (const field of Object.keys(counts)) {
    const match = /^p:(.+):cap$/.exec(field);
    if (match) pools.set(match[1]!, of(n(field), n(`p:${match[1]}:held`), n(`p:${match[1]}:sold`)));
  }
  return { seats, pools };
}

export class InventoryReader {
  readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
  }

  /**
   * Runs `add`'s commands for each event and returns every reply in order. A single Redis takes them
   * in one pipeline; on a cluster the events live on different shards and one pipeline may only
   * address one, so each event gets its own pipeline (its keys share one slot), all sent at once.
   */
  private async perEvent(eventIds: readonly string[], add: (pipe: ChainableCommander, id: string) => void): Promise<[Error | null, unknown][]> {
    if (!isCluster(this.redis)) {
      const pipe = this.redis.pipeline();
      for (const id of eventIds) add(pipe, id);
      return (await pipe.exec()) ?? [];
    }
    const parts = await Promise.all(eventIds.map(async (id) => {
      const pipe = this.redis.pipeline();
      add(pipe, id);
      return (await pipe.exec()) ?? [];
    }));
    return parts.flat();
  }

  /** 'ready', 'loading', or null when Redis has no state for the event. */
  async eventState(eventId: string): Promise<'ready' | 'loading' | null> {
    const state = await this.redis.hget(eventKeys(eventId).meta, 'state');
    return state === 'ready' || state === 'loading' ? state : null;
  }

  /**
   * The event's readiness and a buyer's held + bought tickets, in one round trip: commands issued
   * together, which the client's auto-pipelining sends in one write with every other request's
   * commands of the same moment (an explicit pipeline would be a socket write of its own per order).
   */
  async orderPreflight(eventId: string, buyerId: string): Promise<OrderPreflight> {
    const k = eventKeys(eventId);
    const [state, held] = await Promise.all([this.redis.hget(k.meta, 'state'), this.redis.hget(k.buyers, buyerId)]);
    return { state: state === 'ready' || state === 'loading' ? state : null, buyerTickets: Number(held ?? 0) };
  }

  /**
   * A buyer's held and bought tickets, as the preflight reads them: for an order of an event with a
   * buyer limit whose state this process has no reason to doubt (orders.service.ts).
   */
  async ticketsOfBuyer(eventId: string, buyerId: string): Promise<number> {
    return Number((await this.redis.hget(eventKeys(eventId).buyers, buyerId)) ?? 0);
  }

  /**
   * The preflight with the event's counters, in the same round trip: an order that takes its places
   * at once (hold_at "order") is refused cheaply when they are gone. An order at the confirm does not
   * read them (one command less, and a reply of a dozen fields not parsed, for every order).
   */
  async orderPreflightWithCounts(eventId: string, buyerId: string): Promise<OrderPreflightWithCounts> {
    const [pre, rawCounts] = await Promise.all([this.orderPreflight(eventId, buyerId), this.redis.hgetall(eventKeys(eventId).counts)]);
    const counts = parseCounts(rawCounts);
    return {
      ...pre,
      // Counts only: whether these seats are free is the script's to say.
      available: (seats, items) => (seats.length === 0 || (counts.seats?.available ?? 0) >= seats.length)
        && items.every((i) => (counts.pools.get(i.pool)?.available ?? 0) >= i.quantity),
    };
  }

  async orderState(eventId: string, merchantUid: string): Promise<OrderState | null> {
    const [st, seq, exp, imp, imps] = await this.redis.hmget(eventKeys(eventId).order(merchantUid), 'st', 'seq', 'exp', 'imp', 'imps');
    if (!st) return null;
    return {
      status: st as OrderStatus,
      seq: Number(seq ?? 0),
      expiresAt: exp ? Number(exp) : null,
      impUid: imp || null,
      impUids: [...new Set((imps ?? '').split(',').filter(Boolean))],
    };
  }

  /**
   * The event's places by state, or null while its state is not whole: missing, or being loaded (a
   * load writes the counts before it declares the state ready, and orders are refused NOT_READY until
   * then: a read in between showed places no order could take). One round trip: both keys share the
   * event's slot.
   */
  async availability(eventId: string, pools: readonly { id: string }[]): Promise<Availability | null> {
    const k = eventKeys(eventId);
    const [counts, state] = await Promise.all([this.redis.hgetall(k.counts), this.redis.hget(k.meta, 'state')]);
    if (state !== 'ready' || !counts || Object.keys(counts).length === 0) return null;
    const n = (f: string) => Number(counts[f] ?? 0);
    const total = n('seats_total');
    const seats = { capacity: total, held: n('seats_held'), sold: n('seats_sold'), available: total - n('seats_held') - n('seats_sold') };
    return {
      seats,
      pools: pools.map((p) => {
        const cap = n(`p:${p.id}:cap`);
        const held = n(`p:${p.id}:held`);
        const sold = n(`p:${p.id}:sold`);
        return { id: p.id, capacity: cap, held, sold, available: cap - held - sold };
      }),
    };
  }

  /**
   * Up to `limit` seat ids in `status`, in seat id order, after `cursor` (null: from the first), and
   * whether more follow: one ZRANGEBYLEX on the status index, however large the venue.
   * 'not_ready' while the event's state is missing or being rebuilt; 'unindexed' for a state loaded
   * before the indexes existed (rebuilt by the next loadEvent), which the caller pages another way.
   */
  async seatPage(eventId: string, status: SeatState, cursor: string | null, limit: number): Promise<{ ids: string[]; more: boolean } | 'not_ready' | 'unindexed'> {
    const k = eventKeys(eventId);
    const [code, ...ids] = (await this.redis.seatPage(k.meta, k.seatIndex(status), cursor ?? '', limit + 1)) as [number, ...string[]];
    if (code === -15) return 'unindexed';
    if (code !== 1) return 'not_ready';
    return { ids: ids.slice(0, limit), more: ids.length > limit };
  }

  async seatStates(eventId: string, seatIds: readonly string[]): Promise<(SeatState | null)[]> {
    if (seatIds.length === 0) return [];
    const values = await this.redis.hmget(eventKeys(eventId).seats, ...seatIds);
    return values.map((v) => (v === null ? null : v === '' ? 'available' : v.startsWith('h:') ? 'held' : 'sold'));
  }

  /** merchant_uids whose hold expired at or before `nowMs`. */
  overdueHolds(eventId: string, nowMs: number, limit = 1000): Promise<string[]> {
    return this.redis.zrangebyscore(eventKeys(eventId).holds, '-inf', nowMs, 'LIMIT', 0, limit);
  }

  async liveHolds(eventId: string): Promise<Map<string, number>> {
    const flat = await this.redis.zrange(eventKeys(eventId).holds, 0, -1, 'WITHSCORES');
    const out = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
    return out;
  }

  /** Each event's state ('ready', 'loading', null: no state), in one pipelined round trip. */
  async eventStates(eventIds: readonly string[]): Promise<Map<string, 'ready' | 'loading' | null>> {
    const out = new Map<string, 'ready' | 'loading' | null>();
    if (eventIds.length === 0) return out;
    const res = await this.perEvent(eventIds, (pipe, id) => pipe.hget(eventKeys(id).meta, 'state'));
    eventIds.forEach((id, i) => {
      if (res[i]?.[0]) throw res[i]![0];
      const state = res[i]?.[1];
      out.set(id, state === 'ready' || state === 'loading' ? state : null);
    });
    return out;
  }

  /**
   * Counters, readiness and holds of several events in one pipelined round trip (null for an event
   * Redis has no counters for). `overdueBeforeMs`: count the holds expiring at or before it.
   */
  async inventories(eventIds: readonly string[], overdueBeforeMs = 0): Promise<Map<string, EventInventory | null>> {
    const out = new Map<string, EventInventory | null>();
    if (eventIds.length === 0) return out;
    const res = await this.perEvent(eventIds, (pipe, id) => {
      const k = eventKeys(id);
      pipe.hget(k.meta, 'state').hgetall(k.counts).zcard(k.holds).zcount(k.holds, '-inf', overdueBeforeMs);
    });
    eventIds.forEach((id, i) => {
      const [state, counts, live, overdue] = res.slice(i * 4, i * 4 + 4).map((r) => {
        if (r?.[0]) throw r[0];
        return r?.[1];
      });
      const c = (counts ?? {}) as Record<string, string>;
      if (Object.keys(c).length === 0) {
        out.set(id, null);
        return;
      }
      out.set(id, {
        ...parseCounts(c),
        state: state === 'ready' || state === 'loading' ? state : null,
        liveHolds: Number(live ?? 0),
        overdueHolds: Number(overdue ?? 0),
      });
    });
    return out;
  }

  /** Every seat of the event with its state and the order holding or owning it. */
  async seatOwners(eventId: string): Promise<Map<string, SeatOwner>> {
    const raw = await this.redis.hgetall(eventKeys(eventId).seats);
    const out = new Map<string, SeatOwner>();
    for (const [seat, v] of Object.entries(raw)) {
      out.set(seat, v === '' ? { state: 'available', merchantUid: null } : { state: v.startsWith('h:') ? 'held' : 'sold', merchantUid: v.slice(2) });
    }
    return out;
  }

  /** Tickets each buyer holds or bought, as the buyer limit counts them. */
  async buyerTickets(eventId: string): Promise<Map<string, number>> {
    const raw = await this.redis.hgetall(eventKeys(eventId).buyers);
    return new Map(Object.entries(raw).map(([b, n]) => [b, Number(n)]));
  }

  /** Each order's status in Redis (null: Redis does not know the order), pipelined in batches. */
  async orderStatuses(eventId: string, merchantUids: readonly string[]): Promise<Map<string, OrderStatus | null>> {
    const k = eventKeys(eventId);
    const out = new Map<string, OrderStatus | null>();
    for (let i = 0; i < merchantUids.length; i += 2_000) {
      const slice = merchantUids.slice(i, i + 2_000);
      const pipe = this.redis.pipeline();
      for (const m of slice) pipe.hget(k.order(m), 'st');
      const res = (await pipe.exec()) ?? [];
      slice.forEach((m, j) => out.set(m, ((res[j]?.[1] as string | null | undefined) ?? null) as OrderStatus | null));
    }
    return out;
  }
}
