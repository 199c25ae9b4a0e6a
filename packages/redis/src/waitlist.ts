/**
 * The waiting list of an event in Redis (issue 11): a sorted set of waiting buyers in arrival order,
 * one JSON entry per buyer, and the open offers by expiry, all under the event's hash tag. Offers are
 * made by one process at a time (the list's lock); see the API's waitlist service. An offer's
 * reservation marks its entry offered in the same script, and only while it still waits
 * (reserveOrder-10.lua), so a step that runs past the lock beside the next one never gives one entry
 * two offers. Each advance step
 * looks along the line in bounded stretches (scanWaitlist-5.lua), and the list keeps a bounded number
 * of entries (joinWaitlist-3.lua). Postgres keeps every entry too (the API writes it when the buyer joins),
 * and a rebuild puts the list back from there ({@link WaitlistStore.restore}).
 */
import type { PoolItem } from '@dropgate/domain';
import type { ScriptedRedis } from './scripts.ts';
import { ScriptError } from './codes.ts';
import { eventKeys } from './keys.ts';
import { acquireLock, releaseLock } from './locks.ts';

export interface WaitlistEntry {
  buyerId: string;
  seats: string[];
  items: PoolItem[];
  /** sold_out: a place it wants was sold (or its pool has too few places left unsold); it left the line. */
  state: 'waiting' | 'offered' | 'expired' | 'sold_out';
  merchantUid: string | null;
  orderToken: string | null;
  /** 0-based place among waiting buyers; null when not waiting. */
  rank: number | null;
}

interface StoredEntry { s: string[]; i: PoolItem[]; st: WaitlistEntry['state']; m?: string; t?: string }

/** An entry as the list keeps it (JSON): what its buyer asked for, its state, and its offer's order and token. */
function storedEntry(seats: readonly string[], items: readonly PoolItem[], st: WaitlistEntry['state'], offer: { m?: string; t?: string } = {}): string {
  return JSON.stringify({ s: [...seats], i: items.map((x) => ({ pool: x.pool, quantity: x.quantity })), st, ...offer } satisfies StoredEntry);
}

/**
 * A waiting-list entry as offered, naming its order and the order's token: what reserveOrder stores
 * for the buyer when it reserves the offer's places.
 */
export function offeredEntry(seats: readonly string[], items: readonly PoolItem[], merchantUid: string, orderToken: string): string {
  return storedEntry(seats, items, 'offered', { m: merchantUid, t: orderToken });
}

function parse(buyerId: string, raw: string, rank: number | null): WaitlistEntry {
  const e = JSON.parse(raw) as StoredEntry;
  return { buyerId, seats: e.s, items: e.i, state: e.st, merchantUid: e.m ?? null, orderToken: e.t ?? null, rank };
}

/** What one look along the line found (see {@link WaitlistStore.scan}). */
export type WaitlistScan =
  | { result: 'looked'; soldOut: number; picked: WaitlistEntry[] }
  | { result: 'not_loaded' | 'not_ready' };

export class WaitlistStore {
  readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
  }

  /**
   * Puts the buyer on the list (or finds them there). 'full': the list keeps `maxEntries` entries
   * already (every buyer who joined, waiting or done) and this buyer is not one of them; 'not_ready':
   * the event is not loaded (or is being rebuilt), and nothing was stored. `seq`: the entry's arrival
   * number while it waits (null once it no longer does), for the record.
   */
  async join(
    eventId: string, buyerId: string, seats: readonly string[], items: readonly PoolItem[], maxEntries: number,
  ): Promise<{ joined: boolean; rank: number; seq: number | null } | 'full' | 'not_ready'> {
    const k = eventKeys(eventId);
    const [code, rank, seq] = (await this.redis.joinWaitlist(k.waitlist, k.waitlistEntries, k.meta, buyerId, storedEntry(seats, items, 'waiting'), maxEntries)) as [number, number, number];
    if (code === ScriptError.ListFull) return 'full';
    if (code === ScriptError.NotReady) return 'not_ready';
    return { joined: code === 1, rank, seq: seq >= 0 ? seq : null };
  }

  /**
   * Takes a buyer who joined just now off the list again (their entry could not be recorded: the join
   * answered 503), so a buyer who never joins again does not stand ahead of everyone who comes after.
   */
  async leave(eventId: string, buyerId: string): Promise<void> {
    const k = eventKeys(eventId);
    await this.redis.multi().zrem(k.waitlist, buyerId).hdel(k.waitlistEntries, buyerId).exec();
  }

  /**
   * Puts back a list Redis lost, from the record: every entry in arrival order, waiting, or offered
   * (`offer`: the order dropgate made for it, and that order's token) and due for a look at the next
   * step, which keeps the offer open, closes it as bought, or as lapsed. What the record does not keep
   * comes back by itself: an entry told sold_out, or dropped as over the buyer limit, waits again
   * until the next step looks at it and tells it so again. For a rebuild, before the event is loaded:
   * until then no one joins and no step runs.
   */
  async restore(
    eventId: string,
    entries: readonly { buyerId: string; seq: number; seats: readonly string[]; items: readonly PoolItem[]; offer: { merchantUid: string; orderToken: string } | null }[],
  ): Promise<void> {
    const k = eventKeys(eventId);
    await this.redis.del(k.waitlist, k.waitlistEntries, k.waitlistOffers);
    let last = 0;
    for (let at = 0; at < entries.length; at += 1_000) {
      const m = this.redis.multi();
      for (const e of entries.slice(at, at + 1_000)) {
        if (e.offer) {
          m.hset(k.waitlistEntries, e.buyerId, storedEntry(e.seats, e.items, 'offered', { m: e.offer.merchantUid, t: e.offer.orderToken }));
          m.zadd(k.waitlistOffers, 0, e.buyerId);
        } else {
          m.hset(k.waitlistEntries, e.buyerId, storedEntry(e.seats, e.items, 'waiting'));
          m.zadd(k.waitlist, e.seq, e.buyerId);
        }
        last = Math.max(last, e.seq);
      }
      await m.exec();
    }
    if (entries.length > 0) await this.redis.hset(k.waitlistEntries, '#seq', last);
  }

  /**
   * One bounded look along the line (scanWaitlist-5.lua): the first `front` waiting entries, then
   * `window` more after a cursor that moves through the rest step by step, stopping at about `places`
   * wanted places (half of them at most for the front). Entries whose wanted places are sold leave the
   * line as sold_out; up to `most` entries that could be served now together, in the order looked at,
   * are picked for offers. Run it under the list's lock.
   */
  async scan(eventId: string, limits: { front: number; window: number; most: number; places: number }): Promise<WaitlistScan> {
    const k = eventKeys(eventId);
    const [code, soldOut, ...flat] = (await this.redis.scanWaitlist(
      k.meta, k.waitlist, k.waitlistEntries, k.seats, k.counts, limits.front, limits.window, limits.most, limits.places,
    )) as [number, number, ...string[]];
    if (code === ScriptError.EventNotLoaded) return { result: 'not_loaded' };
    if (code === ScriptError.NotReady) return { result: 'not_ready' };
    if (code !== 1) throw new Error(`scanWaitlist returned unknown code ${code}`);
    const picked: WaitlistEntry[] = [];
    for (let n = 0; n < flat.length; n += 2) picked.push(parse(flat[n]!, flat[n + 1]!, null));
    return { result: 'looked', soldOut, picked };
  }

  async entry(eventId: string, buyerId: string): Promise<WaitlistEntry | null> {
    const k = eventKeys(eventId);
    const res = await this.redis.pipeline().hget(k.waitlistEntries, buyerId).zrank(k.waitlist, buyerId).exec();
    if (!res) throw new Error('pipeline aborted');
    for (const [err] of res) if (err) throw err;
    const raw = res[0]![1] as string | null;
    if (raw === null) return null;
    const rank = res[1]![1] as number | null;
    return parse(buyerId, raw, rank);
  }

  /** Open offers whose reservation expiry (as offered) is at or before `nowMs`. */
  dueOffers(eventId: string, nowMs: number): Promise<string[]> {
    return this.redis.zrangebyscore(eventKeys(eventId).waitlistOffers, '-inf', nowMs, 'LIMIT', 0, 200);
  }

  /** An open offer is still live (its reservation was extended by a payment): look again at `expiresAt`. */
  async recheckOffer(eventId: string, buyerId: string, expiresAt: number): Promise<void> {
    await this.redis.zadd(eventKeys(eventId).waitlistOffers, expiresAt, buyerId);
  }

  /** The offer ended: bought (kept as offered, for the buyer's reading) or lapsed (expired). */
  async closeOffer(eventId: string, buyerId: string, lapsed: boolean): Promise<void> {
    const k = eventKeys(eventId);
    const m = this.redis.multi().zrem(k.waitlistOffers, buyerId);
    if (lapsed) {
      const raw = await this.redis.hget(k.waitlistEntries, buyerId);
      if (raw) {
        const e = JSON.parse(raw) as StoredEntry;
        // The order token of a lapsed offer is of no more use to anyone: dropped.
        m.hset(k.waitlistEntries, buyerId, storedEntry(e.s, e.i, 'expired', { m: e.m }));
      }
    }
    await m.exec();
  }

  /**
   * A waiting buyer who can never be served (e.g. over the buyer limit) leaves the line as expired;
   * an entry no longer waiting (offered meanwhile by another step) is left as it is. @returns true when dropped.
   */
  async drop(eventId: string, e: WaitlistEntry): Promise<boolean> {
    const k = eventKeys(eventId);
    return Number(await this.redis.dropWaitlist(k.waitlist, k.waitlistEntries, e.buyerId, storedEntry(e.seats, e.items, 'expired'))) === 1;
  }

  /** Runs `fn` holding the list's lock; null (and nothing run) when another process holds it. */
  async exclusively<T>(eventId: string, ttlMs: number, fn: () => Promise<T>): Promise<T | null> {
    const key = eventKeys(eventId).waitlistLock;
    const token = await acquireLock(this.redis, key, ttlMs);
    if (token === null) return null;
    try {
      return await fn();
    } finally {
      await releaseLock(this.redis, key, token).catch(() => false);
    }
  }

  async counts(eventId: string): Promise<{ waiting: number; offers: number }> {
    const k = eventKeys(eventId);
    const [waiting, offers] = await Promise.all([this.redis.zcard(k.waitlist), this.redis.zcard(k.waitlistOffers)]);
    return { waiting, offers };
  }
}
