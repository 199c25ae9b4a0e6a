/**
 * The Redis side of dropgate: an event's inventory, its orders and their holds, changed only through
 * the Lua scripts in `lua/`. Every method is one round trip unless it says otherwise.
 */
import type { Redis } from 'ioredis';
import type { EventSnapshot, OrderStatus, PoolItem, RefusalCode } from '@dropgate/domain';
import { eventKeys, eventKeyPattern } from './keys.ts';
import { withScripts, type ScriptedRedis } from './scripts.ts';

/** What placeHold decided. */
export type PlaceResult =
  | { approved: true; kind: 'new' | 'live' | 'renewed'; expiresAt: number; seq: number; replayed: boolean }
  | { approved: false; code: RefusalCode | 'EVENT_NOT_LOADED'; replayed: boolean };

const PLACE_CODES: Record<number, RefusalCode | 'EVENT_NOT_LOADED'> = {
  [-1]: 'EVENT_NOT_LOADED',
  [-2]: 'ORDER_NOT_FOUND',
  [-3]: 'AMOUNT_MISMATCH',
  [-4]: 'SALE_NOT_OPEN',
  [-5]: 'SALE_CLOSED',
  [-6]: 'BUYER_LIMIT',
  [-7]: 'SOLD_OUT',
  [-8]: 'ALREADY_PAID',
  [-9]: 'NOT_READY',
  [-10]: 'DEADLINE',
  [-13]: 'TOO_MANY_ATTEMPTS',
  [-14]: 'ORDER_CLOSED',
};
const APPROVED_KINDS = { 1: 'new', 2: 'live', 3: 'renewed' } as const;

export type ReleaseResult = 'released' | 'nothing_held' | 'order_missing' | 'not_ready' | 'superseded' | 'not_overdue';
const RELEASE_CODES: Record<number, ReleaseResult> = {
  1: 'released', 0: 'nothing_held', [-2]: 'order_missing', [-9]: 'not_ready', [-11]: 'superseded', [-12]: 'not_overdue',
};
export type SettleResult = 'committed' | 'retaken' | 'already_paid' | 'order_missing' | 'sold_out' | 'not_ready' | 'closed';
const SETTLE_CODES: Record<number, SettleResult> = {
  1: 'committed', 2: 'retaken', 0: 'already_paid', [-2]: 'order_missing', [-7]: 'sold_out', [-9]: 'not_ready', [-14]: 'closed',
};
export type VoidResult = 'voided' | 'not_paid' | 'order_missing' | 'not_ready';
const VOID_CODES: Record<number, VoidResult> = { 1: 'voided', 0: 'not_paid', [-2]: 'order_missing', [-9]: 'not_ready' };

function mapCode<T>(table: Record<number, T>, code: unknown, script: string): T {
  const mapped = table[Number(code)];
  if (mapped === undefined) throw new Error(`${script} returned unknown code ${String(code)}`);
  return mapped;
}

export interface InventoryCounts {
  capacity: number;
  available: number;
  held: number;
  sold: number;
}
export interface Availability {
  seats: InventoryCounts;
  pools: (InventoryCounts & { id: string })[];
}
export type SeatState = 'available' | 'held' | 'sold';

export type { EventSnapshot, SnapshotOrder } from '@dropgate/domain';

/** A new hold, as placeHold handed it to the workers. */
export interface Handoff {
  /** stream entry id */
  id: string;
  eventId: string;
  merchantUid: string;
  impUid: string;
  seq: number;
  expiresAt: number;
  heldAt: number;
  /** true: a payment approved on a hold that already existed (only its verification is new). */
  ride: boolean;
}

export interface NewRedisOrder {
  merchantUid: string;
  amount: number;
  buyerId: string;
  seats: readonly string[];
  items: readonly PoolItem[];
  tickets: number;
}

export interface OrderState {
  status: OrderStatus;
  seq: number;
  expiresAt: number | null;
  impUid: string | null;
  /** Every imp_uid approved on the live hold (the taker first). */
  impUids: string[];
}

function itemsCsv(items: readonly PoolItem[]): string {
  return items.map((i) => `${i.pool},${i.quantity}`).join(',');
}

export interface HoldStoreOptions {
  /** How long the answer given to an imp_uid is remembered (s). Default one day. */
  decisionTtlSeconds?: number;
  /** Most payments (imp_uids) one order may see: answers remembered, payments riding one hold. Default 8. */
  maxPaymentsPerOrder?: number;
  /** Most holds one order may take in its life. Default 8. */
  maxHoldsPerOrder?: number;
}

export type DropPaymentResult = 'released' | 'dropped' | 'order_missing' | 'not_ready';
const DROP_CODES: Record<number, DropPaymentResult> = { 1: 'released', 0: 'dropped', [-2]: 'order_missing', [-9]: 'not_ready' };

export class HoldStore {
  readonly redis: ScriptedRedis;
  readonly decisionTtlSeconds: number;
  readonly maxPaymentsPerOrder: number;
  readonly maxHoldsPerOrder: number;

  constructor(redis: Redis, opts: HoldStoreOptions = {}) {
    this.redis = withScripts(redis);
    this.decisionTtlSeconds = opts.decisionTtlSeconds ?? 86_400;
    this.maxPaymentsPerOrder = opts.maxPaymentsPerOrder ?? 8;
    this.maxHoldsPerOrder = opts.maxHoldsPerOrder ?? 8;
  }

  /** The confirm decision: hold every seat and pool quantity of the order for this imp_uid, or nothing. */
  async placeHold(eventId: string, merchantUid: string, impUid: string, amount: number | null, nowMs: number): Promise<PlaceResult> {
    const k = eventKeys(eventId);
    const r = (await this.redis.placeHold(
      k.meta, k.order(merchantUid), k.answers(merchantUid), k.seats, k.counts, k.buyers, k.holds, k.handoff,
      merchantUid, impUid, amount === null ? '' : amount, nowMs, this.decisionTtlSeconds, this.maxPaymentsPerOrder, this.maxHoldsPerOrder,
    )) as [number, number, number, number];
    const [code, expiresAt, seq, replayed] = r;
    if (code > 0) {
      return { approved: true, kind: APPROVED_KINDS[code as 1 | 2 | 3], expiresAt, seq, replayed: replayed === 1 };
    }
    return { approved: false, code: mapCode(PLACE_CODES, code, 'placeHold'), replayed: replayed === 1 };
  }

  /**
   * Takes back what placeHold did for this imp_uid, and remembers DEADLINE as its answer.
   * @returns true when a hold was released.
   */
  async undoHold(eventId: string, merchantUid: string, impUid: string): Promise<boolean> {
    const k = eventKeys(eventId);
    const r = await this.redis.undoHold(
      k.order(merchantUid), k.answers(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, impUid, this.decisionTtlSeconds,
    );
    return Number(r) === 1;
  }

  /**
   * The generation of the webhook outcome job for `impUid` of an order and the status the worker last
   * acted on ('peek'), or a new generation ('next'). `perOrder`: the order has seen too many payments
   * and they share one generation.
   */
  async webhookGeneration(
    eventId: string, merchantUid: string, impUid: string, mode: 'peek' | 'next',
  ): Promise<{ generation: number; perOrder: boolean; actedOn: string | null } | 'order_missing' | 'not_ready'> {
    const k = eventKeys(eventId);
    const [code, generation, acted] = (await this.redis.noteWebhook(
      k.meta, k.order(merchantUid), k.webhooks(merchantUid), mode, impUid, this.maxPaymentsPerOrder, this.decisionTtlSeconds, '',
    )) as [number, number, string];
    if (code === -9) return 'not_ready';
    if (code === -2) return 'order_missing';
    return { generation, perOrder: code === 2, actedOn: acted === '' ? null : acted };
  }

  /** Records that the worker acted on PortOne's `status` for a webhook-numbered payment (see noteWebhook). */
  async webhookActedOn(eventId: string, merchantUid: string, impUid: string, status: string): Promise<void> {
    const k = eventKeys(eventId);
    await this.redis.noteWebhook(k.meta, k.order(merchantUid), k.webhooks(merchantUid), 'acted', impUid, this.maxPaymentsPerOrder, this.decisionTtlSeconds, status);
  }

  /**
   * Takes a payment PortOne does not vouch for off the order's hold numbered `seq`; releases the hold
   * when no other payment rides on it.
   */
  async dropPayment(eventId: string, merchantUid: string, impUid: string, seq: number): Promise<DropPaymentResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.dropPayment(k.meta, k.order(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, impUid, seq);
    return mapCode(DROP_CODES, r, 'dropPayment');
  }

  async releaseHold(
    eventId: string,
    merchantUid: string,
    opts: { seq?: number; status: 'released' | 'expired' | 'refunded'; nowMs: number; onlyIfOverdue: boolean },
  ): Promise<ReleaseResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.releaseHold(
      k.meta, k.order(merchantUid), k.seats, k.counts, k.buyers, k.holds,
      merchantUid, opts.seq ?? '', opts.status, opts.nowMs, opts.onlyIfOverdue ? '1' : '0',
    );
    return mapCode(RELEASE_CODES, r, 'releaseHold');
  }

  async settlePaid(eventId: string, merchantUid: string): Promise<SettleResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.settlePaid(k.meta, k.order(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid);
    return mapCode(SETTLE_CODES, r, 'settlePaid');
  }

  async voidSale(eventId: string, merchantUid: string, status: 'released' | 'refunded'): Promise<VoidResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.voidSale(k.meta, k.order(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, status);
    return mapCode(VOID_CODES, r, 'voidSale');
  }

  async createOrder(eventId: string, o: NewRedisOrder): Promise<'created' | 'exists' | 'not_ready'> {
    const k = eventKeys(eventId);
    const r = Number(
      await this.redis.createOrder(k.meta, k.order(o.merchantUid), o.amount, o.buyerId, o.seats.join(','), itemsCsv(o.items), o.tickets),
    );
    return r === 1 ? 'created' : r === 0 ? 'exists' : 'not_ready';
  }

  /** 'ready', 'loading', or null when Redis has no state for the event. */
  async eventState(eventId: string): Promise<'ready' | 'loading' | null> {
    const state = await this.redis.hget(eventKeys(eventId).meta, 'state');
    return state === 'ready' || state === 'loading' ? state : null;
  }

  /** The event's readiness and a buyer's held + bought tickets, in one round trip. */
  async orderPreflight(eventId: string, buyerId: string): Promise<{ state: 'ready' | 'loading' | null; buyerTickets: number }> {
    const k = eventKeys(eventId);
    const res = await this.redis.pipeline().hget(k.meta, 'state').hget(k.buyers, buyerId).exec();
    if (!res) throw new Error('pipeline aborted');
    for (const [err] of res) if (err) throw err;
    const state = res[0]![1] as string | null;
    return { state: state === 'ready' || state === 'loading' ? state : null, buyerTickets: Number(res[1]![1] ?? 0) };
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

  async availability(eventId: string, pools: readonly { id: string }[]): Promise<Availability | null> {
    const counts = await this.redis.hgetall(eventKeys(eventId).counts);
    if (!counts || Object.keys(counts).length === 0) return null;
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

  /**
   * Writes an event's whole state. The meta hash, which marks the state as whole, is deleted first and
   * written last, so confirms for the event answer NOT_READY until everything else is in place.
   * Several round trips (pipelined): the caller holds the event's rebuild lock.
   */
  async loadEvent(s: EventSnapshot, epoch: string): Promise<void> {
    const k = eventKeys(s.id);
    await this.redis.del(k.meta);
    await this.redis.del(k.seats, k.seatIndex('available'), k.seatIndex('held'), k.seatIndex('sold'), k.counts, k.buyers, k.holds);

    const seatState = new Map<string, string>();
    for (const id of s.seats) seatState.set(id, '');
    const counts: Record<string, number> = { seats_total: s.seats.length, seats_held: 0, seats_sold: 0 };
    for (const p of s.pools) {
      counts[`p:${p.id}:cap`] = p.capacity;
      counts[`p:${p.id}:held`] = 0;
      counts[`p:${p.id}:sold`] = 0;
    }
    const buyers = new Map<string, number>();
    const pipe = this.redis.pipeline();
    const holds: (string | number)[] = [];
    for (const o of s.orders) {
      const tickets = o.seats.length + o.items.reduce((n, i) => n + i.quantity, 0);
      const fields: (string | number)[] = [
        'a', o.amount, 'b', o.buyerId, 's', o.seats.join(','), 'i', itemsCsv(o.items), 'q', tickets, 'st', o.status, 'seq', o.seq,
      ];
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
      pipe.del(k.order(o.merchantUid)).hset(k.order(o.merchantUid), ...fields);
    }
    const entries = [...seatState.entries()];
    for (let i = 0; i < entries.length; i += 5000) pipe.hset(k.seats, ...entries.slice(i, i + 5000).flat());
    // The status indexes (see moveLines): every seat in exactly one, score 0.
    const byStatus: Record<SeatState, (string | number)[]> = { available: [], held: [], sold: [] };
    for (const [seat, mark] of entries) byStatus[mark === '' ? 'available' : mark.startsWith('h:') ? 'held' : 'sold'].push(0, seat);
    for (const status of ['available', 'held', 'sold'] as const) {
      const members = byStatus[status];
      for (let i = 0; i < members.length; i += 10_000) pipe.zadd(k.seatIndex(status), ...members.slice(i, i + 10_000));
    }
    pipe.hset(k.counts, counts);
    if (buyers.size > 0) pipe.hset(k.buyers, ...[...buyers.entries()].flat());
    for (let i = 0; i < holds.length; i += 10_000) pipe.zadd(k.holds, ...holds.slice(i, i + 10_000));
    const res = await pipe.exec();
    for (const [err] of res ?? []) if (err) throw err;
    await this.redis.hset(k.meta, {
      state: 'ready',
      opens: s.opensAt,
      closes: s.closesAt ?? '',
      ttl: s.holdTtlMs,
      max: s.maxPerBuyer ?? 0,
      epoch,
      // The seat status indexes are whole (seatPage pages by status only then).
      seat_index: '1',
    });
  }

  /**
   * Reads up to `count` hold hand-offs of an event for consumer `consumer` of group `relay`: entries
   * another consumer left unacknowledged for `reclaimIdleMs` first, then new ones. Creates the group
   * (and the stream) when missing, e.g. after Redis lost its data.
   */
  async readHandoffs(eventId: string, consumer: string, count: number, reclaimIdleMs: number): Promise<Handoff[]> {
    const key = eventKeys(eventId).handoff;
    const parse = (entries: [string, string[]][] | null | undefined): Handoff[] =>
      (entries ?? []).filter(([, f]) => Array.isArray(f) && f.length > 0).map(([id, f]) => {
        const m: Record<string, string> = {};
        for (let i = 0; i < f.length; i += 2) m[f[i]!] = f[i + 1]!;
        return { id, eventId, merchantUid: m.uid!, impUid: m.imp!, seq: Number(m.seq), expiresAt: Number(m.exp), heldAt: Number(m.at), ride: m.ride === '1' };
      });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const claimed = (await this.redis.xautoclaim(key, 'relay', consumer, reclaimIdleMs, '0-0', 'COUNT', count)) as [string, [string, string[]][]];
        const mine = parse(claimed[1]);
        if (mine.length > 0) return mine;
        const fresh = (await this.redis.xreadgroup('GROUP', 'relay', consumer, 'COUNT', count, 'STREAMS', key, '>')) as [string, [string, string[]][]][] | null;
        return parse(fresh?.[0]?.[1]);
      } catch (error) {
        if (!String((error as Error).message).includes('NOGROUP')) throw error;
        await this.redis.xgroup('CREATE', key, 'relay', '0', 'MKSTREAM').catch((e: Error) => {
          if (!e.message.includes('BUSYGROUP')) throw e;
        });
      }
    }
    return [];
  }

  /** Acknowledges and deletes hand-offs once their jobs are queued. */
  async ackHandoffs(eventId: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const key = eventKeys(eventId).handoff;
    await this.redis.multi().xack(key, 'relay', ...ids).xdel(key, ...ids).exec();
  }

  /** Marks an event's state as being rebuilt: confirms and orders for it answer NOT_READY meanwhile. */
  async markLoading(eventId: string): Promise<void> {
    await this.redis.hset(eventKeys(eventId).meta, 'state', 'loading');
  }

  /** Removes every key of an event (tests and admin clean-up). */
  async deleteEvent(eventId: string): Promise<void> {
    await this.deleteByPattern(eventKeyPattern(eventId));
  }

  private async deleteByPattern(pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await this.redis.unlink(...keys);
    } while (cursor !== '0');
  }
}
