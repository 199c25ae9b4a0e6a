/**
 * The script calls: every change to an event's inventory, orders and holds goes through one Lua script
 * in `lua/` (one round trip each), and its return code through one table (codes.ts).
 */
import type { ScriptedRedis } from './scripts.ts';
import { eventKeys, orderKey } from './keys.ts';
import {
  APPROVED_KINDS, CLAIM_CODES, CREATE_CODES, DROP_CODES, EXTEND_CODES, PLACE_CODES, RESERVE_CODES, RELEASE_CODES, SETTLE_CODES, VOID_CODES, mapCode,
  type ClaimOrderResult, type CreateOrderResult, type DropPaymentResult, type ExtendResult, type ReserveResult, type PlaceResult, type ReleaseResult, type SettleResult, type VoidResult,
} from './codes.ts';
import { itemsCsv, type NewRedisOrder } from './types.ts';

export interface HoldStoreOptions {
  /** How long the answer given to an imp_uid is remembered (s). Default one day. */
  decisionTtlSeconds?: number;
  /** Most payments (imp_uids) one order may see: answers remembered, payments riding one hold. Default 8. */
  maxPaymentsPerOrder?: number;
  /** Most holds one order may take in its life. Default 8. */
  maxHoldsPerOrder?: number;
  /** PortOne lookups webhooks may start at once for one payment (see noteWebhook). Default 4. */
  webhookLookupsPerPayment?: number;
  /**
   * The window (s) over which those lookups refill (one every window / lookups), and how long a
   * payment PortOne said it does not know waits for its next lookup. Default 60.
   */
  webhookLookupWindowSeconds?: number;
  /** Most orders one signed buyer may make for one event (claimOrder; 0: no limit). Default 0. */
  maxOrdersPerBuyer?: number;
}

/**
 * What the worker records as acted on besides PortOne's own statuses: PortOne does not know the
 * payment (its next lookup waits a window), or knows it for another order (it never becomes this
 * order's: any webhook naming it for this order is a duplicate).
 */
export const WEBHOOK_ACTED = { unknown: 'unknown', foreign: 'foreign' } as const;

/** A webhook outcome generation of one payment (or of the order, `perOrder`); see noteWebhook. */
export interface WebhookGeneration {
  generation: number;
  perOrder: boolean;
  /** The status the worker acted on since this generation was numbered; null if none yet. */
  actedOn: string | null;
  /** When this generation's lookup may start (ms): later than now when the pace put it off. */
  startsAt: number;
}

export class HoldScripts {
  readonly redis: ScriptedRedis;
  readonly decisionTtlSeconds: number;
  readonly maxPaymentsPerOrder: number;
  readonly maxHoldsPerOrder: number;
  readonly webhookLookupsPerPayment: number;
  readonly webhookLookupWindowMs: number;
  readonly maxOrdersPerBuyer: number;
  /** The three limits as placeHold takes them, in one argument ("ttl:payments:holds"). */
  private readonly placeLimits: string;

  constructor(redis: ScriptedRedis, opts: HoldStoreOptions = {}) {
    this.redis = redis;
    this.decisionTtlSeconds = opts.decisionTtlSeconds ?? 86_400;
    this.maxPaymentsPerOrder = opts.maxPaymentsPerOrder ?? 8;
    this.maxHoldsPerOrder = opts.maxHoldsPerOrder ?? 8;
    this.webhookLookupsPerPayment = opts.webhookLookupsPerPayment ?? 4;
    const windowSeconds = opts.webhookLookupWindowSeconds ?? 60;
    for (const [name, value] of [
      ['decisionTtlSeconds', this.decisionTtlSeconds], ['maxPaymentsPerOrder', this.maxPaymentsPerOrder], ['maxHoldsPerOrder', this.maxHoldsPerOrder],
      ['webhookLookupsPerPayment', this.webhookLookupsPerPayment], ['webhookLookupWindowSeconds', windowSeconds],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number of at least 1 (got ${value})`);
    }
    this.webhookLookupWindowMs = windowSeconds * 1000;
    this.maxOrdersPerBuyer = opts.maxOrdersPerBuyer ?? 0;
    if (!Number.isSafeInteger(this.maxOrdersPerBuyer) || this.maxOrdersPerBuyer < 0) {
      throw new RangeError(`maxOrdersPerBuyer must be a whole number of at least 0 (got ${this.maxOrdersPerBuyer})`);
    }
    this.placeLimits = `${this.decisionTtlSeconds}:${this.maxPaymentsPerOrder}:${this.maxHoldsPerOrder}`;
  }

  /**
   * The confirm decision: hold every seat and pool quantity of the order for this imp_uid, or nothing.
   * `requestId` (unique per request) is remembered with the answer: undoHold takes back only what the
   * request that decided it took, never an answer another request replays.
   */
  async placeHold(eventId: string, merchantUid: string, impUid: string, amount: number | null, nowMs: number, requestId = ''): Promise<PlaceResult> {
    // One key and five arguments: the script names the event's other keys from the order key's tag.
    const r = (await this.redis.placeHold(
      orderKey(eventId, merchantUid), impUid, amount === null ? '' : amount, nowMs, this.placeLimits, requestId,
    )) as [number, number, number, number];
    const [code, expiresAt, seq, replayed] = r;
    if (code > 0) {
      return { approved: true, kind: APPROVED_KINDS[code as 1 | 2 | 3 | 4], expiresAt, seq, replayed: replayed === 1 };
    }
    return { approved: false, code: mapCode(PLACE_CODES, code, 'placeHold'), replayed: replayed === 1 };
  }

  /**
   * Takes back what placeHold did for this imp_uid in the request `requestId`, and remembers DEADLINE as
   * its answer; an answer placeHold remembered for another request is left as it is (see undoHold-6.lua).
   * @returns true when a hold was released.
   */
  async undoHold(eventId: string, merchantUid: string, impUid: string, requestId = ''): Promise<boolean> {
    const k = eventKeys(eventId);
    const r = await this.redis.undoHold(
      k.order(merchantUid), k.answers(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, impUid, this.decisionTtlSeconds, requestId,
    );
    return Number(r) === 1;
  }

  /**
   * Takes back the hold a V2 manual confirmation took for attempt `paymentKey` after PortOne refused
   * it, and forgets the attempt's remembered answer (see releaseAttempt-6.lua). @returns true when a
   * hold was released.
   */
  async releaseAttempt(eventId: string, merchantUid: string, paymentKey: string): Promise<boolean> {
    const k = eventKeys(eventId);
    const r = await this.redis.releaseAttempt(k.order(merchantUid), k.answers(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, paymentKey);
    return Number(r) === 1;
  }

  /**
   * The generation of the webhook outcome job for `impUid` of an order and the status the worker last
   * acted on ('peek'), or a new generation ('next'), paced per payment: its `startsAt` is later than
   * `nowMs` when the payment's lookups are used up, and a 'next' before that start answers the same
   * generation (one deferred lookup answers every webhook until it starts), except `taken` (a
   * generation whose job id was found used). `perOrder`: the order has seen too many payments and
   * they share one generation.
   */
  async webhookGeneration(
    eventId: string, merchantUid: string, impUid: string, mode: 'peek' | 'next', nowMs: number, taken?: number,
  ): Promise<WebhookGeneration | 'order_missing' | 'not_ready'> {
    const k = eventKeys(eventId);
    const [code, generation, acted, startsAt] = (await this.redis.noteWebhook(
      k.meta, k.order(merchantUid), k.webhooks(merchantUid), mode, impUid, this.maxPaymentsPerOrder, this.decisionTtlSeconds, '',
      nowMs, this.webhookLookupsPerPayment, this.webhookLookupWindowMs, taken ?? '',
    )) as [number, number, string, number];
    if (code === -9) return 'not_ready';
    if (code === -2) return 'order_missing';
    return { generation, perOrder: code === 2, actedOn: acted === '' ? null : acted, startsAt };
  }

  /**
   * Records that the worker acted on PortOne's `status` (or a {@link WEBHOOK_ACTED} verdict) for a
   * webhook-numbered payment (see noteWebhook).
   */
  async webhookActedOn(eventId: string, merchantUid: string, impUid: string, status: string, nowMs: number): Promise<void> {
    const k = eventKeys(eventId);
    await this.redis.noteWebhook(
      k.meta, k.order(merchantUid), k.webhooks(merchantUid), 'acted', impUid, this.maxPaymentsPerOrder, this.decisionTtlSeconds, status,
      nowMs, this.webhookLookupsPerPayment, this.webhookLookupWindowMs, '',
    );
  }

  /**
   * A worker has PortOne's word on a payment of the order: unsigned confirms may take or renew its hold
   * again (placeHold refuses them PAYMENT_UNCHECKED while a hold one of them took is unchecked). @returns
   * whether the order was waiting for it.
   */
  async markChecked(eventId: string, merchantUid: string): Promise<boolean> {
    // One field off the order's hash: a plain HDEL is as atomic as a script and writes nothing for an
    // order that does not exist, at about a third of a script call's cost (once per approved confirm).
    return (await this.redis.hdel(eventKeys(eventId).order(merchantUid), 'uh')) === 1;
  }

  /**
   * Takes a payment PortOne does not vouch for off the order's hold numbered `seq`; releases the hold
   * when no other payment rides on it (and marks the order checked, as markChecked).
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

  /** `buyerLimit`: a retake (no live hold) is refused past the event's max_per_buyer ('buyer_limit'). */
  async settlePaid(eventId: string, merchantUid: string, opts: { buyerLimit?: boolean } = {}): Promise<SettleResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.settlePaid(k.meta, k.order(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, opts.buyerLimit ? '1' : '');
    return mapCode(SETTLE_CODES, r, 'settlePaid');
  }

  async voidSale(eventId: string, merchantUid: string, status: 'released' | 'refunded'): Promise<VoidResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.voidSale(k.meta, k.order(merchantUid), k.seats, k.counts, k.buyers, k.holds, merchantUid, status);
    return mapCode(VOID_CODES, r, 'voidSale');
  }

  async createOrder(eventId: string, o: NewRedisOrder): Promise<CreateOrderResult> {
    const k = eventKeys(eventId);
    const r = await this.redis.createOrder(k.meta, k.order(o.merchantUid), o.amount, o.buyerId, o.seats.join(','), itemsCsv(o.items), o.tickets, o.api === 'v2' ? 'v2' : '', o.merchantUid);
    return mapCode(CREATE_CODES, r, 'createOrder');
  }

  /**
   * The worker's orphan check: of `merchantUids` (orders pending in Postgres), those Redis does not have
   * are marked withdrawn in the same step (withdrawOrphans-1.lua), so a late createOrder or reserveOrder
   * of the API refuses them. @returns the ones marked, for the worker to withdraw in Postgres.
   */
  async markOrphans(eventId: string, merchantUids: readonly string[]): Promise<string[]> {
    if (merchantUids.length === 0) return [];
    const k = eventKeys(eventId);
    return (await this.redis.withdrawOrphans(k.meta, k.order(''), ...merchantUids)) as string[];
  }

  /**
   * hold_at "order": makes the order visible and reserves its places for `ttlMs`, or nothing. With
   * `offer` (a waiting-list offer: the buyer's entry as offered, see offeredEntry), only while the
   * buyer's entry still waits, and the entry is marked offered in the same step ('not_waiting' else).
   */
  async reserveOrder(eventId: string, o: NewRedisOrder, nowMs: number, ttlMs: number, offer = ''): Promise<ReserveResult> {
    const k = eventKeys(eventId);
    const [code, exp] = (await this.redis.reserveOrder(
      k.meta, k.order(o.merchantUid), k.seats, k.counts, k.buyers, k.holds, k.handoff, k.waitlist, k.waitlistEntries, k.waitlistOffers,
      o.merchantUid, o.amount, o.buyerId, o.seats.join(','), itemsCsv(o.items), nowMs, ttlMs, o.api === 'v2' ? 'v2' : '', offer,
    )) as [number, number];
    if (code === 1) return { result: 'reserved', expiresAt: exp };
    return { result: mapCode(RESERVE_CODES, code, 'reserveOrder') };
  }

  /**
   * Counts one more order of signed buyer `buyerId` for the event, or refuses it past
   * maxOrdersPerBuyer (0: counted, never refused), before order `merchantUid` is written anywhere.
   * The claim is held until settleClaim (the order is made) or unclaimOrder (it is not).
   */
  async claimOrder(eventId: string, buyerId: string, merchantUid: string, nowMs: number): Promise<ClaimOrderResult> {
    const k = eventKeys(eventId);
    return mapCode(CLAIM_CODES, await this.redis.claimOrder(k.meta, k.buyerOrders, k.buyerClaims, buyerId, this.maxOrdersPerBuyer, merchantUid, nowMs), 'claimOrder');
  }

  /** Gives back the claim of an order not made after all; a claim not held (never ran, settled, given back) changes nothing. */
  async unclaimOrder(eventId: string, merchantUid: string): Promise<boolean> {
    const k = eventKeys(eventId);
    return Number(await this.redis.unclaimOrder(k.buyerOrders, k.buyerClaims, merchantUid)) === 1;
  }

  /** The claimed order is made (in the record and visible): its count stays, its claim goes. */
  async settleClaim(eventId: string, merchantUid: string): Promise<void> {
    await this.redis.hdel(eventKeys(eventId).buyerClaims, merchantUid);
  }

  /** Renews a live reservation for `ttlMs` from now, at most `most` times in the order's life. */
  async extendReservation(eventId: string, merchantUid: string, nowMs: number, ttlMs: number, most: number): Promise<ExtendResult> {
    const k = eventKeys(eventId);
    const [code, exp, left] = (await this.redis.extendReservation(k.meta, k.order(merchantUid), k.holds, k.handoff, merchantUid, nowMs, ttlMs, most)) as [number, number, number];
    if (code === 1) return { result: 'extended', expiresAt: exp, extensionsLeft: left };
    return { result: mapCode(EXTEND_CODES, code, 'extendReservation') };
  }
}
