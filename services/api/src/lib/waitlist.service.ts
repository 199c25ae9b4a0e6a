/**
 * The waiting list (issue 11), API side. A buyer joins with what they want (seats or pool items); when
 * places return (a hold expired, a payment failed), the first buyer on the list whose request fits gets
 * an offer: an order made for them and reserved for `waitlist.offer_ttl_seconds` (hold_at "order"'s
 * reservation), which they pay like any other. An offer that lapses unpaid closes, and its places go
 * to the next buyer who fits. First come, first served, one entry per buyer; a buyer whose request
 * does not fit the places returned is passed over for one whose request does (their place is kept).
 *
 * Who is offered when an early entry cannot be served: each step looks at the front of the line (the
 * first STEP.front waiting entries, in arrival order), then at a stretch of STEP.window more after a
 * cursor that moves through the rest of the line step by step (and back to the front at its end), all
 * in one Redis script (scanWaitlist); a step also stops at STEP.places wanted places, at most half of
 * them for the front, since an entry may want a hundred seats. Returned places go to the entries
 * looked at whose whole request fits, the front first: near the front it is first come, first served;
 * further back, the cursor passes STEP.window entries (or STEP.places / 2 wanted places) a step however
 * many entries that cannot be served wait ahead, and each step costs Redis a bounded look. An entry
 * that can never be served (a seat it wants is sold, or its pool has fewer places left unsold than it
 * asks) is told sold_out and leaves the line; one waiting for held places keeps its place (a hold can
 * end).
 *
 * Offers are made lazily, like the waiting room's admissions: every poll of the list runs one advance
 * step under the list's lock (one process at a time, any number of API processes), so no timer is
 * needed. The lock lasts 10 s; a step stalled past it (a slow Postgres, a pause) can go on beside the
 * next one, both having picked the same entries, so an offer's reservation also marks its entry offered
 * in one Redis script, and only while it still waits (reserveOrder): one offer per entry whatever the
 * steps do, and a step that comes second takes its order back. Returned places are not kept from the waiting room's admitted buyers: whoever orders first
 * between two steps gets them.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { DomainError, RESOURCE_ID_PATTERN, WAITLIST_ENTRY_MAX_PLACES, WAITLIST_STEPS_PER_SECOND } from '@dropgate/domain';
import { waitlist as waitlistRepo, type Db } from '@dropgate/db';
import type { HoldStore } from '@dropgate/redis';
import type { EventDef } from './catalog.ts';
import { createOrder, priceLines, type CreatedOrder } from './orders.service.ts';
import { checkAdmission } from './queue.service.ts';

/** What one advance step looks at and offers (see the header). */
const STEP = {
  /** Waiting entries looked at from the front of the line. */
  front: 50,
  /** Waiting entries looked at behind the front, after the cursor. */
  window: 200,
  /** Wanted places (seats and pool items) looked at, at most: about 1 ms of Redis's time (measured). */
  places: 2_000,
  /** Offers made, at most (each an order in Postgres and a reservation in Redis). */
  most: 50,
} as const;

export interface WaitlistAnswer {
  state: 'waiting' | 'offered' | 'expired' | 'sold_out';
  position: number;
  merchant_uid?: string;
  order_token?: string;
  hold_expires_at?: string;
}

const BUYER = new RegExp(RESOURCE_ID_PATTERN);
const mac = (secret: Buffer, eventId: string, buyerId: string) =>
  createHmac('sha256', secret).update('waitlist').update('\u0000').update(eventId).update('\u0000').update(buyerId).digest('base64url').slice(0, 22);

/** `w1~<buyer>~<mac>`: deterministic per buyer and event, unguessable without the event's secret. */
export function waitlistToken(secret: Buffer, eventId: string, buyerId: string): string {
  return `w1~${buyerId}~${mac(secret, eventId, buyerId)}`;
}

function tokenBuyer(secret: Buffer, eventId: string, token: string): string | null {
  const [v, buyer, sig, ...rest] = token.split('~');
  if (v !== 'w1' || buyer === undefined || sig === undefined || rest.length > 0 || !BUYER.test(buyer)) return null;
  const want = Buffer.from(mac(secret, eventId, buyer));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want) ? buyer : null;
}

function list(event: EventDef): { ttl: number; secret: Buffer } {
  if (event.waitlistOfferTtlSeconds === null || !event.rushSecret) throw new DomainError('NO_WAITING_ROOM', `event ${event.id} has no waiting list`);
  return { ttl: event.waitlistOfferTtlSeconds, secret: event.rushSecret };
}

export async function joinWaitlist(
  db: Db, store: HoldStore, event: EventDef,
  input: { buyer_id: string; admission_token?: string; seats?: string[]; items?: { pool: string; quantity: number }[] },
  maxEntries: number, nowMs: number,
): Promise<{ waitlist_token: string; position: number }> {
  const { secret } = list(event);
  // With a waiting room, only a buyer it admitted joins the list: otherwise the list would be a door
  // round the room (its pace, its fair start, one place per buyer), offering free places to whoever
  // joined it first.
  checkAdmission(event, input.buyer_id, input.admission_token, nowMs);
  const seats = input.seats ?? [];
  const items = input.items ?? [];
  if (seats.length === 0 && items.length === 0) throw new DomainError('VALIDATION_FAILED', 'a waiting-list entry needs seats or items');
  if (new Set(seats).size !== seats.length) throw new DomainError('DUPLICATE_SEAT', 'a seat appears twice');
  if (new Set(items.map((i) => i.pool)).size !== items.length) throw new DomainError('VALIDATION_FAILED', 'a pool appears twice in items');
  const { amount } = priceLines(event, seats, items);
  const tickets = seats.length + items.reduce((n, i) => n + i.quantity, 0);
  // An offer is an order the buyer pays through PortOne: an entry that costs nothing could never be
  // offered (createOrder refuses it), and would stand at the front of the line for good.
  if (amount < 1) throw new DomainError('VALIDATION_FAILED', 'the entry costs nothing, and PortOne takes no payment of 0: an offer could never be made for it');
  if (event.maxPerBuyer !== null && tickets > event.maxPerBuyer) throw new DomainError('BUYER_LIMIT', `at most ${event.maxPerBuyer} tickets per buyer`);
  if (tickets > WAITLIST_ENTRY_MAX_PLACES) {
    throw new DomainError('VALIDATION_FAILED', `a waiting-list entry wants at most ${WAITLIST_ENTRY_MAX_PLACES} places (seats and pool items)`);
  }
  const r = await store.waitlists.join(event.id, input.buyer_id, seats, items, maxEntries);
  if (r === 'full') throw new DomainError('WAITLIST_FULL', `the waiting list of event ${event.id} is full`, { max_entries: maxEntries });
  if (r === 'not_ready') throw new DomainError('NOT_READY', 'the event is being loaded; join again shortly');
  // The record, before the answer: a list Redis loses is put back from it (waitlist.repository.ts).
  // Joining again (after a failure here, say) records it then; the entry keeps its place meanwhile.
  if (r.seq !== null) {
    try {
      await waitlistRepo.recordEntry(db, { eventId: event.id, buyerId: input.buyer_id, seq: r.seq, seats, items });
    } catch {
      // A buyer who joined just now leaves again (one who had joined before keeps their place): the
      // answer is 503, and a buyer who never comes back must not stand ahead of those who come after.
      if (r.joined) await store.waitlists.leave(event.id, input.buyer_id).catch(() => undefined);
      throw new DomainError('NOT_READY', 'the entry could not be recorded; join again shortly');
    }
  }
  // The buyer moved from the room to the list: like an order, the join ends their admission's hold on
  // the room's bounds, so the next buyer in the queue is admitted (the token still works until it expires).
  if (r.joined && event.waitingRoom) await store.queues.useAdmission(event.id, input.buyer_id).catch(() => false);
  return { waitlist_token: waitlistToken(secret, event.id, input.buyer_id), position: r.rank + 1 };
}

/**
 * Paces the list steps polls run, per event, in one API process: a step costs Redis up to about a
 * millisecond on a large list, and polls are not limited per token (the tests and the README count an
 * entry's progress in polls), so without a pace one client polling in a loop kept Redis busy running
 * steps back to back (5,080 polls of one token in 3 s, each a step). A token bucket of
 * WAITLIST_STEPS_PER_SECOND, refilled with real time (not the app's clock, which tests move by hand).
 */
export class WaitlistStepPacer {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;

  constructor(rate = WAITLIST_STEPS_PER_SECOND) {
    this.#rate = rate;
  }

  /** True when a poll of `eventId`'s list may run a step now (and takes it from the bucket). */
  take(eventId: string): boolean {
    const now = performance.now();
    const b = this.#buckets.get(eventId) ?? { tokens: this.#rate, at: now };
    b.tokens = Math.min(this.#rate, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    this.#buckets.set(eventId, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** How offers are made: the PortOne API of the orders (PORTONE_DEFAULT_API), and what follows each one. */
export interface OfferOptions {
  defaultApi?: 'v1' | 'v2';
  /** Called with each order offered (V2's pre-registration); its failure must not throw. */
  onOffer?: (created: CreatedOrder, api: 'v1' | 'v2') => Promise<void>;
}

/**
 * One advance step: close lapsed offers, then one bounded look along the line (see the header): entries
 * whose places are sold are told sold_out, and returned places are offered to the entries looked at
 * whose request fits. Skipped when another process is making offers right now.
 */
export async function advanceWaitlist(db: Db, store: HoldStore, event: EventDef, nowMs: number, opts: OfferOptions = {}): Promise<void> {
  const { ttl } = list(event);
  await store.waitlists.exclusively(event.id, 10_000, async () => {
    for (const buyer of await store.waitlists.dueOffers(event.id, nowMs)) {
      const entry = await store.waitlists.entry(event.id, buyer);
      const state = entry?.merchantUid ? await store.orderState(event.id, entry.merchantUid) : null;
      // An order Redis does not know while the event is being loaded is no lapsed offer: the rebuild
      // puts the list's offers back before the orders (found by the test of a list Redis lost).
      if (state === null && (await store.eventState(event.id)) !== 'ready') return;
      if (state?.status === 'held' && state.expiresAt !== null && state.expiresAt > nowMs) {
        await store.waitlists.recheckOffer(event.id, buyer, state.expiresAt);
      } else if (state?.status === 'held') {
        // Lapsed, not yet swept by the worker: look again shortly (a payment may still renew it).
        await store.waitlists.recheckOffer(event.id, buyer, nowMs + 1_000);
      } else {
        await store.waitlists.closeOffer(event.id, buyer, state?.status !== 'paid');
      }
    }
    // Before the opening nothing is offered (and nothing is sold).
    if (nowMs < event.saleOpensAt.getTime()) return;
    const scan = await store.waitlists.scan(event.id, STEP);
    if (scan.result !== 'looked') return;
    for (const e of scan.picked) {
      try {
        const input = {
          buyer_id: e.buyerId,
          ...(e.seats.length > 0 ? { seats: e.seats } : {}),
          ...(e.items.length > 0 ? { items: e.items.map((i) => ({ pool: i.pool, quantity: i.quantity })) } : {}),
        };
        const api = opts.defaultApi ?? 'v1';
        // Reserved and marked offered in one step (the entry leaves the line), or refused.
        const created = await createOrder(db, store, event, input, new Date(nowMs), { offerTtlSeconds: ttl, defaultApi: api });
        await opts.onOffer?.(created, api);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        // Taken between the look and the reservation: the entry keeps its place for the next step (or
        // keeps the offer another step made it meanwhile).
        if (error.code === 'SOLD_OUT') continue;
        // Before the opening nothing is offered; a reloading event is tried again at the next step.
        if (error.code === 'SALE_NOT_OPEN' || error.code === 'NOT_READY') break;
        // Over the buyer limit (they bought elsewhere meanwhile), or the sale closed: never servable.
        // Anything else refused for this entry alone (an entry recorded before a check existed, such
        // as one that costs nothing) can never be offered either: it leaves the line instead of
        // failing every step, and every poll of the list with it, for good. Only while it still waits:
        // over the buyer limit can mean offered meanwhile by another step, whose offer stands.
        await store.waitlists.drop(event.id, e);
      }
    }
  });
}

export async function pollWaitlist(
  db: Db, store: HoldStore, event: EventDef, token: string, nowMs: number, opts: OfferOptions & { mayStep?: () => boolean } = {},
): Promise<WaitlistAnswer> {
  const { secret } = list(event);
  const buyer = tokenBuyer(secret, event.id, token);
  if (buyer === null) throw new DomainError('TOKEN_INVALID', 'no entry on this waiting list matches this token');
  // A poll steps the list unless polls come faster than the pace (see WaitlistStepPacer): then it
  // answers from the list as the last step left it.
  if (opts.mayStep?.() ?? true) await advanceWaitlist(db, store, event, nowMs, opts);
  const e = await store.waitlists.entry(event.id, buyer);
  if (!e) {
    // A list Redis lost comes back with the event (the rebuild puts it back from the record): until
    // then the buyer polls again, rather than being told their entry does not exist.
    if ((await store.eventState(event.id)) !== 'ready') throw new DomainError('NOT_READY', 'the event is being loaded; poll again shortly');
    throw new DomainError('TOKEN_INVALID', 'no entry on this waiting list matches this token');
  }
  if (e.state === 'offered' && e.merchantUid) {
    const st = await store.orderState(event.id, e.merchantUid);
    if (st && (st.status === 'held' || st.status === 'paid')) {
      return {
        state: 'offered', position: 0, merchant_uid: e.merchantUid, order_token: e.orderToken ?? undefined,
        ...(st.status === 'held' && st.expiresAt !== null ? { hold_expires_at: new Date(st.expiresAt).toISOString() } : {}),
      } as WaitlistAnswer;
    }
    return { state: 'expired', position: 0 };
  }
  if (e.state === 'expired') return { state: 'expired', position: 0 };
  if (e.state === 'sold_out') return { state: 'sold_out', position: 0 };
  const counts = await store.availability(event.id, event.pools);
  const available = counts ? counts.seats.available + counts.pools.reduce((n, p) => n + p.available, 0) : 1;
  const held = counts ? counts.seats.held + counts.pools.reduce((n, p) => n + p.held, 0) : 1;
  if (available <= 0 && held <= 0) return { state: 'sold_out', position: (e.rank ?? 0) + 1 };
  return { state: 'waiting', position: (e.rank ?? 0) + 1 };
}
