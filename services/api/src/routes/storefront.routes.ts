/** Storefront API: events with availability, seat pages, orders. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { DomainError, bearerToken, eventIdOf } from '@dropgate/domain';
import { HttpError } from '../lib/http-errors.ts';
import { orders as ordersRepo } from '@dropgate/db';
import { jobIds } from '@dropgate/jobs';
import type { Availability as StoreAvailability, SeatState } from '@dropgate/redis';
import {
  CreateOrderBody, CreatedOrderBody, ErrorBody, EventBody, EventIdParams, ExtendedBody, MerchantUidParams, OrderBody, SeatsBody, SeatsQuery,
} from '../schemas.ts';
import { createOrder, extendReservation } from '../lib/orders.service.ts';
import { countOrderLimit, perAddressLimit, requireBuyer } from '../lib/buyers.ts';
import { preRegisterOrder } from '../lib/pre-register.ts';
import { isAdminToken, orderTokenMatches } from '../lib/secrets.ts';
import { ReadCache, wantsFresh } from '../lib/read-cache.ts';
import type { EventDef } from '../lib/catalog.ts';
import type { AppDeps } from '../deps.ts';

/**
 * How long after the opening the waiting room's shuffle seed is shown. Joins are placed by it until
 * the opening, by the time of the process that takes them (every process reads Redis's clock, so they
 * agree to within a round trip): shown a second later, nobody can learn it while any process still
 * places a join by it and pick a buyer id that lands first (attack round 20B, with clocks 40 s apart).
 */
export const SEED_SHOWN_AFTER_MS = 1_000;

export function eventBody(def: EventDef, availability: StoreAvailability | null, nowMs: number) {
  return {
    id: def.id,
    name: def.name,
    sale_opens_at: def.saleOpensAt.toISOString(),
    sale_closes_at: def.saleClosesAt ? def.saleClosesAt.toISOString() : null,
    hold_ttl_seconds: def.holdTtlSeconds,
    max_per_buyer: def.maxPerBuyer,
    currency: def.currency,
    pools: def.pools.map((p) => ({ id: p.id, name: p.name, capacity: p.capacity, price: p.price })),
    seat_count: def.seats.length,
    created_at: def.createdAt.toISOString(),
    hold_at: def.holdAt,
    reservation_ttl_seconds: def.reservationTtlSeconds,
    waiting_room: def.waitingRoom
      ? { ...def.waitingRoom, shuffle_seed: nowMs >= def.saleOpensAt.getTime() + SEED_SHOWN_AFTER_MS ? def.queueSeed : null }
      : null,
    waitlist: def.waitlistOfferTtlSeconds !== null ? { offer_ttl_seconds: def.waitlistOfferTtlSeconds } : null,
    ...(availability
      ? {
          availability: {
            pools: availability.pools.map((p) => ({ id: p.id, capacity: p.capacity, available: p.available, held: p.held, sold: p.sold })),
            seats: { total: availability.seats.capacity, available: availability.seats.available, held: availability.seats.held, sold: availability.seats.sold },
          },
        }
      : {}),
  };
}

export const storefrontRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const lastLoadRequest = new Map<string, number>();
  /** Queues a rebuild of an event whose state is not in Redis, at most once a second per event. */
  const requestLoad = (eventId: string) => {
    const now = Date.now();
    if ((lastLoadRequest.get(eventId) ?? 0) > now - 1_000) return;
    lastLoadRequest.set(eventId, now);
    deps.queues.maintenance
      .add('rebuild', { kind: 'rebuild', eventId }, { jobId: jobIds.rebuild(eventId, `load-${Math.floor(now / 1000)}`) })
      .catch(() => undefined);
  };
  // An event's availability and seat pages, shared by the reads of the same page within
  // READ_CACHE_MS (read-cache.ts); each body is serialized by its route's schema once.
  const reads = new ReadCache(deps.config.readCacheMs);
  /**
   * Sends a body its route's schema serializer already wrote (reply.serialize) as the JSON it is:
   * fastify sends a string with a JSON content type as it is.
   */
  const sendSerialized = (reply: FastifyReply, body: string) => reply.type('application/json; charset=utf-8').send(body);
  const requireEvent = async (eventId: string): Promise<EventDef> => {
    const def = await deps.catalog.get(eventId);
    if (!def) throw new DomainError('EVENT_NOT_FOUND', `event ${eventId} does not exist`);
    return def;
  };
  /**
   * Before an order is read from Postgres: its merchant_uid names an event that exists (the catalog,
   * no query for a made-up one), or it is answered as the missing order it is.
   */
  const requireOrderEvent = async (merchantUid: string): Promise<void> => {
    const eventId = eventIdOf(merchantUid);
    if (eventId === null || !(await deps.catalog.exists(eventId))) {
      throw new DomainError('ORDER_NOT_FOUND', 'no order matches this merchant_uid and token');
    }
  };

  app.get(
    '/events/:event_id',
    { schema: { params: EventIdParams, response: { 200: EventBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const eventId = request.params.event_id;
      const body = await reads.get(`event\n${eventId}`, async () => {
        const def = await requireEvent(eventId);
        const availability = await deps.store.availability(def.id, def.pools);
        if (!availability) {
          // Lost, or archived after its season: load it again (the worker rebuilds it from Postgres).
          requestLoad(def.id);
          throw new DomainError('NOT_READY', 'availability is being rebuilt; try again shortly');
        }
        return reply.serialize(eventBody(def, availability, deps.clock.now())) as string;
      }, wantsFresh(request.headers['cache-control']));
      return sendSerialized(reply, body);
    },
  );

  /** The index of the event's first seat after `cursor` (seats are in id order: a binary search). */
  const firstAfter = (def: EventDef, cursor: string): number => {
    let lo = 0;
    let hi = def.seats.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (def.seats[mid]!.id <= cursor) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  /** The last seat id of the event not after `cursor`; undefined: none is. */
  const seatAtOrBefore = (def: EventDef, cursor: string): string | undefined => {
    const i = firstAfter(def, cursor);
    return i === 0 ? undefined : def.seats[i - 1]!.id;
  };

  /** A page of the event's seats: `limit` of them after `cursor`, in one status when `wanted` names one. */
  const seatPage = async (eventId: string, limit: number, wanted: SeatState | undefined, cursor: string | undefined) => {
    const def = await requireEvent(eventId);
    type SeatOut = { id: string; section: string; row: string; number: string; price: number; status: 'available' | 'held' | 'sold' };
    if (wanted) {
      // One status: a page of its index in Redis, however large the venue and however few match.
      const page = await deps.store.seatPage(def.id, wanted, cursor ?? null, limit);
      if (page === 'not_ready') throw new DomainError('NOT_READY', 'seat states are being rebuilt; try again shortly');
      if (page !== 'unindexed') {
        const seats: SeatOut[] = [];
        for (const id of page.ids) {
          const s = def.seatById.get(id);
          if (s) seats.push({ id: s.id, section: s.section, row: s.row, number: s.number, price: s.price, status: wanted });
        }
        return { seats, next_cursor: page.more && page.ids.length > 0 ? page.ids[page.ids.length - 1]! : null };
      }
      // Loaded before the indexes existed (until its next rebuild): walk the seats as below.
    }
    // Seats are in id order; start after the cursor and fill the page.
    const out: SeatOut[] = [];
    let i = cursor === undefined ? 0 : firstAfter(def, cursor);
    const batch = Math.max(limit, 200);
    while (out.length < limit && i < def.seats.length) {
      const slice = def.seats.slice(i, i + batch);
      const states = await deps.store.seatStates(def.id, slice.map((s) => s.id));
      let taken = 0;
      for (let j = 0; j < slice.length && out.length < limit; j++) {
        taken = j + 1;
        const state = states[j];
        if (state === null || state === undefined) throw new DomainError('NOT_READY', 'seat states are being rebuilt; try again shortly');
        if (wanted && state !== wanted) continue;
        const s = slice[j]!;
        out.push({ id: s.id, section: s.section, row: s.row, number: s.number, price: s.price, status: state });
      }
      i += taken;
    }
    const more = i < def.seats.length && out.length === limit;
    return { seats: out, next_cursor: more ? out[out.length - 1]!.id : null };
  };

  app.get(
    '/events/:event_id/seats',
    { schema: { params: EventIdParams, querystring: SeatsQuery, response: { 200: SeatsBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const eventId = request.params.event_id;
      const limit = Number(request.query.limit ?? '100');
      const wanted = request.query.status;
      // A page starts after its cursor, whatever it is (a prefix such as 'A-2' seeks). Any cursor starts
      // the same page as the last seat id not after it, so that is the page read and kept: made-up
      // cursors cannot make more pages to read and keep than the event has seats.
      const cursor = request.query.cursor === undefined ? undefined : seatAtOrBefore(await requireEvent(eventId), request.query.cursor);
      const key = `seats\n${eventId}\n${wanted ?? ''}\n${cursor ?? ''}\n${limit}`;
      const body = await reads.get(key, async () => reply.serialize(await seatPage(eventId, limit, wanted, cursor)) as string, wantsFresh(request.headers['cache-control']));
      return sendSerialized(reply, body);
    },
  );

  app.post(
    '/events/:event_id/orders',
    { bodyLimit: 64 * 1024, config: perAddressLimit(deps, 'orders'), schema: { params: EventIdParams, body: CreateOrderBody, response: { 201: CreatedOrderBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const buyerVerified = requireBuyer(deps, 'orders', request.body.buyer_id, request.body.buyer_token);
      const def = await requireEvent(request.params.event_id);
      const api = request.body.portone_api ?? deps.config.portone.defaultApi;
      // An order must pay through an API dropgate can ask PortOne about (attack round 26A: V1 orders on a
      // V2-only store took unsigned confirms nothing could verify).
      if (api === 'v1' && deps.config.portone.v2Only) {
        throw new DomainError('VALIDATION_FAILED', 'portone_api v1: this store has no PortOne V1 credentials (PORTONE_IMP_KEY); pay through v2');
      }
      const created = await createOrder(deps.db, deps.store, def, request.body, new Date(deps.clock.now()), { defaultApi: api, buyerVerified })
        .catch((error: unknown) => countOrderLimit(deps, error));
      await preRegisterOrder(deps, api, created, request.log);
      // The body carries the order token: no cache may keep it.
      return reply.status(201).header('cache-control', 'no-store').send(created);
    },
  );

  app.post(
    '/orders/:merchant_uid/extend',
    { bodyLimit: 1024, schema: { params: MerchantUidParams, response: { 200: ExtendedBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      // The order token, as for reading the order; a wrong one gets the same 404 as a missing order.
      const token = bearerToken(request.headers.authorization);
      if (!token) throw new HttpError('UNAUTHORIZED', 'extending an order needs its order token: Authorization: Bearer <order_token>');
      await requireOrderEvent(request.params.merchant_uid);
      const order = await ordersRepo.findOrder(deps.db, request.params.merchant_uid);
      if (!order || !orderTokenMatches(token, order.order_token_hash)) {
        throw new DomainError('ORDER_NOT_FOUND', 'no order matches this merchant_uid and token');
      }
      // An offer is reserved for the list's offer time, not renewed by the reservation TTL: extending
      // it would let a buyer on the list keep the places several reservation TTLs.
      if (order.waitlist_offer) throw new DomainError('NOT_EXTENDABLE', 'a waiting-list offer lasts the list\'s offer time and cannot be extended');
      const def = await requireEvent(order.event_id);
      const extended = await extendReservation(deps.store, def, order.merchant_uid, deps.clock.now());
      return reply.header('cache-control', 'no-store').send(extended);
    },
  );

  app.get(
    '/orders/:merchant_uid',
    { schema: { params: MerchantUidParams, response: { 200: OrderBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      // The buyer's order token (from order creation) or the admin token. A wrong token gets the same
      // 404 as a missing order (not 403), so it cannot tell which merchant_uids exist: they are not
      // secrets (PortOne, logs and URLs carry them), the token is.
      const token = bearerToken(request.headers.authorization);
      if (!token) throw new HttpError('UNAUTHORIZED', 'reading an order needs its order token: Authorization: Bearer <order_token>');
      await requireOrderEvent(request.params.merchant_uid);
      const admin = isAdminToken(token, deps.config.adminToken);
      const detail = await ordersRepo.findOrderDetail(
        deps.db, request.params.merchant_uid, (order) => orderTokenMatches(token, order.order_token_hash) || admin,
      );
      if (!detail) throw new DomainError('ORDER_NOT_FOUND', 'no order matches this merchant_uid and token');
      void reply.header('cache-control', 'no-store');
      const { order, lines, tickets, payments } = detail;
      let status: string = order.status;
      let holdExpiresAt = order.hold_expires_at ? order.hold_expires_at.toISOString() : null;
      // A hold is taken in Redis first and recorded in Postgres by a worker a moment later.
      if (order.status === 'pending') {
        const live = await deps.store.orderState(order.event_id, order.merchant_uid).catch(() => null);
        if (live?.status === 'held' && live.expiresAt !== null) {
          status = 'held';
          holdExpiresAt = new Date(live.expiresAt).toISOString();
        }
      }
      return {
        merchant_uid: order.merchant_uid,
        event_id: order.event_id,
        buyer_id: order.buyer_id,
        status,
        status_reason: order.status_reason,
        amount: order.amount,
        currency: order.currency,
        seats: lines.seats.map((s) => s.seat_id),
        items: lines.items.map((i) => ({ pool: i.pool_id, quantity: i.quantity })),
        hold_expires_at: status === 'held' ? holdExpiresAt : null,
        tickets: tickets.map((t) => ({ id: String(t.id), seat: t.seat_id, pool: t.pool_id, serial: t.serial, imp_uid: t.imp_uid, issued_at: t.issued_at.toISOString() })),
        payments: payments.map((p) => ({
          imp_uid: p.imp_uid, amount: p.amount, cancel_amount: p.cancel_amount, status: p.status, fail_reason: p.fail_reason,
          paid_at: p.paid_at ? p.paid_at.toISOString() : null,
        })),
        created_at: order.created_at.toISOString(),
      };
    },
  );
};
