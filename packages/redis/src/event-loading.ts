/**
 * Event loading: an event's whole Redis state written from the record (a rebuild), marked as being
 * rebuilt, or removed.
 */
import type { EventSnapshot } from '@dropgate/domain';
import type { ScriptedRedis } from './scripts.ts';
import { eventKeys, eventKeyPattern } from './keys.ts';
import { deleteKeysMatching } from './connection.ts';
import { itemsCsv, type SeatState } from './types.ts';

/**
 * How long a claim of a counted order (claimOrder) may wait for its order before a rebuild calls it
 * lost (its API process died between the claim and the insert): longer than any order takes.
 */
export const ORDER_CLAIM_TTL_MS = 5 * 60_000;

/** Arguments a load sends in one pipeline at most (see LoadPipeline). */
export const LOAD_PIPELINE_ARGS = 40_000;

/**
 * A load's writes, sent as pipelines of about LOAD_PIPELINE_ARGS arguments each, every one awaited
 * before the next is built: one pipeline of a 200,000-seat event (or of a rebuild with 100,000 orders)
 * was built and encoded in one go, and held the process's event loop for 0.6-0.7 s (the API creating
 * the event, or the worker rebuilding it), stalling every other event's confirms in that process. The
 * meta hash that marks the state whole is still written last, after every part is in; a pipeline was
 * never atomic (other clients' commands run between its commands), so the parts change nothing for
 * them.
 */
class LoadPipeline {
  private pipe: ReturnType<ScriptedRedis['pipeline']>;
  private args = 0;
  private readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
    this.pipe = redis.pipeline();
  }

  /** Queues `write` (about `args` arguments); sends what is queued once it is LOAD_PIPELINE_ARGS or more. */
  async add(args: number, write: (pipe: ReturnType<ScriptedRedis['pipeline']>) => unknown): Promise<void> {
    write(this.pipe);
    this.args += args;
    if (this.args >= LOAD_PIPELINE_ARGS) await this.flush();
  }

  /** Sends what is queued; throws the first command's error. */
  async flush(): Promise<void> {
    if (this.pipe.length === 0) return;
    const pipe = this.pipe;
    this.pipe = this.redis.pipeline();
    this.args = 0;
    const res = await pipe.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }
}

export class EventLoader {
  readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
  }

  /**
   * Writes an event's whole state. The meta hash, which marks the state as whole, is deleted first and
   * written last, so confirms for the event answer NOT_READY until everything else is in place.
   * Several round trips (pipelined): the caller holds the event's rebuild lock.
   */
  /** `nowMs`: the time claims are aged by, the clock they were stamped with (the caller's, see RedisClock). */
  async loadEvent(s: EventSnapshot, epoch: string, nowMs: number = Date.now()): Promise<void> {
    const k = eventKeys(s.id);
    await this.redis.del(k.meta);
    await this.redis.del(k.seats, k.seatIndex('available'), k.seatIndex('held'), k.seatIndex('sold'), k.counts, k.buyers, k.buyerOrders, k.holds);

    const seatState = new Map<string, string>();
    for (const id of s.seats) seatState.set(id, '');
    const counts: Record<string, number> = { seats_total: s.seats.length, seats_held: 0, seats_sold: 0 };
    for (const p of s.pools) {
      counts[`p:${p.id}:cap`] = p.capacity;
      counts[`p:${p.id}:held`] = 0;
      counts[`p:${p.id}:sold`] = 0;
    }
    const buyers = new Map<string, number>();
    /** Orders per signed buyer: the record's orders whose buyer was verified (see claimOrder-3.lua). */
    const ordersOf = new Map<string, number>();
    // Orders counted by claimOrder but not yet in the record the snapshot read (their insert commits
    // after it) still count; claims of orders the record has are done, and old ones were lost.
    const inRecord = new Set(s.orders.map((o) => o.merchantUid));
    const stale: string[] = [];
    const now = nowMs;
    for (const [muid, claim] of Object.entries(await this.redis.hgetall(k.buyerClaims))) {
      const m = /^(.*)\|(\d+)$/.exec(claim);
      if (!m || inRecord.has(muid) || now - Number(m[2]) > ORDER_CLAIM_TTL_MS) stale.push(muid);
      else ordersOf.set(m[1]!, (ordersOf.get(m[1]!) ?? 0) + 1);
    }
    const out = new LoadPipeline(this.redis);
    const holds: (string | number)[] = [];
    for (const o of s.orders) {
      const tickets = o.seats.length + o.items.reduce((n, i) => n + i.quantity, 0);
      if (o.buyerVerified === true) ordersOf.set(o.buyerId, (ordersOf.get(o.buyerId) ?? 0) + 1);
      const fields: (string | number)[] = [
        'a', o.amount, 'b', o.buyerId, 's', o.seats.join(','), 'i', itemsCsv(o.items), 'q', tickets, 'st', o.status, 'seq', o.seq,
      ];
      // A V2 order: placeHold takes no V1 confirm for it (see there).
      if (o.portoneApi === 'v2') fields.push('api', 'v2');
      if (o.status === 'held' || o.status === 'paid') {
        const mark = o.status === 'held' ? `h:${o.merchantUid}` : `s:${o.merchantUid}`;
        const bucket = o.status === 'held' ? 'held' : 'sold';
        for (const seat of o.seats) seatState.set(seat, mark);
        counts[`seats_${bucket}`]! += o.seats.length;
        for (const i of o.items) counts[`p:${i.pool}:${bucket}`] = (counts[`p:${i.pool}:${bucket}`] ?? 0) + i.quantity;
        buyers.set(o.buyerId, (buyers.get(o.buyerId) ?? 0) + tickets);
        if (o.status === 'held' && o.holdExpiresAt !== null) {
          fields.push('exp', o.holdExpiresAt, 'imp', o.impUid ?? '', 'imps', o.impUid ?? '');
          holds.push(o.holdExpiresAt, o.merchantUid);
        }
      }
      // Every order is in Postgres before it is in Redis, so rewriting each one replaces all there is.
      await out.add(fields.length + 2, (p) => p.del(k.order(o.merchantUid)).hset(k.order(o.merchantUid), ...fields));
    }
    const entries = [...seatState.entries()];
    for (let i = 0; i < entries.length; i += 5000) await out.add(10_000, (p) => p.hset(k.seats, ...entries.slice(i, i + 5000).flat()));
    // The status indexes (see moveLines): every seat in exactly one, score 0.
    const byStatus: Record<SeatState, (string | number)[]> = { available: [], held: [], sold: [] };
    for (const [seat, mark] of entries) byStatus[mark === '' ? 'available' : mark.startsWith('h:') ? 'held' : 'sold'].push(0, seat);
    for (const status of ['available', 'held', 'sold'] as const) {
      const members = byStatus[status];
      for (let i = 0; i < members.length; i += 10_000) await out.add(10_000, (p) => p.zadd(k.seatIndex(status), ...members.slice(i, i + 10_000)));
    }
    await out.add(1, (p) => p.hset(k.counts, counts));
    const buyerCounts = [...buyers.entries()];
    for (let i = 0; i < buyerCounts.length; i += 5000) await out.add(10_000, (p) => p.hset(k.buyers, ...buyerCounts.slice(i, i + 5000).flat()));
    for (let i = 0; i < stale.length; i += 5000) await out.add(5000, (p) => p.hdel(k.buyerClaims, ...stale.slice(i, i + 5000)));
    const orderCounts = [...ordersOf.entries()];
    for (let i = 0; i < orderCounts.length; i += 5000) await out.add(10_000, (p) => p.hset(k.buyerOrders, ...orderCounts.slice(i, i + 5000).flat()));
    for (let i = 0; i < holds.length; i += 10_000) await out.add(10_000, (p) => p.zadd(k.holds, ...holds.slice(i, i + 10_000)));
    await out.flush();
    // The meta hash, and with it the primary's replication id (finishLoad-1.lua): after a failover the
    // new primary's id differs, and the guard rebuilds what may have lost writes (checkStamp).
    await this.redis.finishLoad(k.meta,
      'state', 'ready',
      'opens', s.opensAt,
      'closes', s.closesAt ?? '',
      'ttl', s.holdTtlMs,
      'max', s.maxPerBuyer ?? 0,
      'epoch', epoch,
      // The seat status indexes are whole (seatPage pages by status only then).
      'seat_index', '1');
  }

  /**
   * Whether the event's state is known to be whole on the primary serving it: 'whole' (loaded, stamped
   * by this primary's replication history), 'missing', 'loading', or 'unstamped' (loaded, but by another
   * history: a failover happened since, and writes acknowledged before it may be lost).
   */
  stampState(eventId: string): Promise<'whole' | 'missing' | 'loading' | 'unstamped'> {
    return this.keyStampState(eventKeys(eventId).meta);
  }

  /** The same stamp on any hash `key` stamped by stampKey (the job queues', in their hash slot). */
  async keyStampState(key: string): Promise<'whole' | 'missing' | 'loading' | 'unstamped'> {
    const code = Number(await this.redis.checkStamp(key));
    return code === 1 ? 'whole' : code === 2 ? 'loading' : code === 3 ? 'unstamped' : 'missing';
  }

  /** Stamps hash `key` with the replication history of the primary serving it (see keyStampState). */
  async stampKey(key: string): Promise<void> {
    await this.redis.finishLoad(key, 'state', 'ready', 'at', String(Date.now()));
  }

  /**
   * Which load the event's state comes from: its epoch while the state is ready, null while it is
   * missing or being loaded. The same reading before and after a write to the record means no load
   * read the record in between (a load marks the state loading before it reads, and writes a new epoch
   * when it is done).
   */
  async loadMark(eventId: string): Promise<string | null> {
    const [state, epoch] = await this.redis.hmget(eventKeys(eventId).meta, 'state', 'epoch');
    return state === 'ready' ? (epoch ?? '') : null;
  }

  /** Marks an event's state as being rebuilt: confirms and orders for it answer NOT_READY meanwhile. */
  async markLoading(eventId: string): Promise<void> {
    await this.redis.hset(eventKeys(eventId).meta, 'state', 'loading');
  }

  /**
   * Whether the event's Redis state has nothing in flight: no live hold and no hand-off the workers
   * have not turned into jobs yet (a season that ended may be archived then).
   */
  async quiescent(eventId: string): Promise<boolean> {
    const k = eventKeys(eventId);
    const [holds, handoffs] = await Promise.all([this.redis.zcard(k.holds), this.redis.xlen(k.handoff)]);
    return holds === 0 && handoffs === 0;
  }

  /** Removes every key of an event (tests and admin clean-up). */
  async deleteEvent(eventId: string): Promise<void> {
    await this.deleteByPattern(eventKeyPattern(eventId));
  }

  /** Every key of the pattern, on every primary (the event's keys live on one shard, found by scanning each). */
  private async deleteByPattern(pattern: string): Promise<void> {
    await deleteKeysMatching(this.redis, pattern);
  }
}
