/**
 * The waiting list's line (issue 11): entries that cannot be served never stop the ones behind them.
 * Entries whose wanted places are sold are told sold_out and leave the line; entries waiting for held
 * places keep their place, and each advance step looks past them (the front of the line, then a
 * stretch after a cursor), so a servable entry behind any number of them is offered. Offers racing
 * with joins and with holds ending never give one place (or one entry) twice. The list keeps a
 * bounded number of entries (WAITLIST_MAX_ENTRIES). Real Redis, Postgres, worker (which expires the
 * lapsed reservations).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, waitFor, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { eventKeys } from '@dropgate/redis';

let stack: TestStack;
// Reservations and offers lapse by this clock: a test moves it past an expiry instead of waiting.
const clock = new TestClock();
beforeAll(async () => { stack = await startStack({ label: 'waitlist-line', clock }); });
afterAll(async () => { await stack?.close(); });

const GA = { id: 'ga', name: 'GA', price: 500 };

async function makeEvent(base: string, inventory: Record<string, unknown>) {
  const id = eventId('wll');
  const res = await http(base, 'POST', '/admin/events', {
    id, name: 'Waiting line', hold_at: 'order', reservation_ttl_seconds: 5, waitlist: { offer_ttl_seconds: 5 }, ...inventory,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** A request; a 503 (the API shedding load while test files share the cores) is retried, as a buyer would. */
async function call(method: string, path: string, body?: unknown, base = stack.url) {
  for (;;) {
    const res = await http(base, method, path, body);
    if (res.status !== 503) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const order = (id: string, buyer: string, body: Record<string, unknown>) => call('POST', `/events/${id}/orders`, { buyer_id: buyer, ...body });
const join = (id: string, buyer: string, body: Record<string, unknown>, base = stack.url) =>
  call('POST', `/events/${id}/waitlist`, { buyer_id: buyer, ...body }, base);
const poll = (id: string, token: string) => call('GET', `/events/${id}/waitlist/${token}`);

/** Joins `buyers` with the same request, a few at a time; their tokens in order. */
async function joinAll(id: string, buyers: string[], body: Record<string, unknown>): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < buyers.length; i += 25) {
    const batch = await Promise.all(buyers.slice(i, i + 25).map((b) => join(id, b, body)));
    for (const r of batch) {
      expect(r.status, r.text).toBe(201);
      tokens.push(r.body.waitlist_token);
    }
  }
  return tokens;
}

/** Polls (each poll runs an advance step) until the entry is in `state`, at most `polls` times. */
async function pollUntil(id: string, token: string, state: string, polls: number) {
  let last: any;
  for (let n = 0; n < polls; n++) {
    last = (await poll(id, token)).body;
    if (last?.state === state) return last;
  }
  throw new Error(`entry not ${state} after ${polls} polls: ${JSON.stringify(last)}`);
}

const lapsed = (id: string, muid: string) =>
  waitFor(async () => (await stack.store.orderState(id, muid))?.status === 'expired', 15_000, `reservation ${muid} expired`);

describe('waiting list line', () => {
  it('offers a servable entry behind more than a step of entries for a sold seat, and tells those sold_out', async () => {
    const id = await makeEvent(stack.url, { seats: [{ id: 'S1', section: 'A', row: '1', number: '1', price: 1_000 }], pools: [{ ...GA, capacity: 1 }] });
    // S1 is sold for good; the only GA place is reserved by a buyer who will never pay.
    const owner = await order(id, 'owner', { seats: ['S1'] });
    expect(await stack.store.settlePaid(id, owner.body.merchant_uid)).toBe('committed');
    const y = await order(id, 'y', { items: [{ pool: 'ga', quantity: 1 }] });
    expect(y.status, y.text).toBe(201);
    // 120 entries for the sold seat (anyone may join under any buyer id), then one for GA.
    const bots = await joinAll(id, Array.from({ length: 120 }, (_, i) => `bot-${i + 1}`), { seats: ['S1'] });
    const legit = await join(id, 'legit', { items: [{ pool: 'ga', quantity: 1 }] });
    expect(legit.body.position).toBe(121);

    clock.advance(6_000);
    await lapsed(id, y.body.merchant_uid);
    expect((await call('GET', `/events/${id}`)).body.availability.pools[0]).toMatchObject({ available: 1 });
    const offer = await pollUntil(id, legit.body.waitlist_token, 'offered', 3);
    const mine = await http(stack.url, 'GET', `/orders/${offer.merchant_uid}`, undefined, { headers: { authorization: `Bearer ${offer.order_token}` } });
    expect(mine.body).toMatchObject({ status: 'held', buyer_id: 'legit', items: [{ pool: 'ga', quantity: 1 }] });
    // Every entry for the sold seat was told so and left the line.
    for (const t of bots) expect((await poll(id, t)).body).toEqual({ state: 'sold_out', position: 0 });
    expect(await stack.redis.zcard(eventKeys(id).waitlist)).toBe(0);
  });

  it('keeps entries waiting for a held seat in line, in order, and looks past them within a bounded number of steps', async () => {
    const id = await makeEvent(stack.url, {
      reservation_ttl_seconds: 60,
      seats: [{ id: 'S2', section: 'A', row: '1', number: '2', price: 1_000 }], pools: [{ ...GA, capacity: 1 }],
    });
    const holder = await order(id, 'holder', { seats: ['S2'] });
    expect(holder.status, holder.text).toBe(201);
    const waiting = await joinAll(id, Array.from({ length: 300 }, (_, i) => `w-${i + 1}`), { seats: ['S2'] });
    const legit = await join(id, 'legit', { items: [{ pool: 'ga', quantity: 1 }] });
    expect(legit.body.position).toBe(301);
    // 50 at the front and 200 behind them per step: position 301 is looked at by the second step.
    await pollUntil(id, legit.body.waitlist_token, 'offered', 2);
    for (const [n, t] of [[0, waiting[0]!], [149, waiting[149]!], [299, waiting[299]!]] as const) {
      expect((await poll(id, t)).body).toEqual({ state: 'waiting', position: n + 1 });
    }

    // The held seat comes back: the front of the line gets it, first come first served.
    clock.advance(61_000);
    await lapsed(id, holder.body.merchant_uid);
    const first = await pollUntil(id, waiting[0]!, 'offered', 2);
    expect((await poll(id, waiting[1]!)).body).toEqual({ state: 'waiting', position: 1 });
    // Bought: the seat is sold, and every entry still waiting for it is told sold_out.
    expect(await stack.store.settlePaid(id, first.merchant_uid)).toBe('committed');
    await pollUntil(id, waiting[299]!, 'sold_out', 3);
    for (const t of waiting.slice(1)) expect((await poll(id, t)).body.state).toBe('sold_out');
    expect(await stack.redis.zcard(eventKeys(id).waitlist)).toBe(0);
  });

  it('never offers one place, or one entry, twice while offers race with joins and with holds ending', async () => {
    const id = await makeEvent(stack.url, { seat_blocks: [{ section: 'S', rows: 1, seats_per_row: 4, price: 2_000 }], pools: [{ ...GA, capacity: 4 }] });
    const seatIds = ['S-1-1', 'S-1-2', 'S-1-3', 'S-1-4'];
    const holders = [await order(id, 'h-ga', { items: [{ pool: 'ga', quantity: 4 }] }), await order(id, 'h-s', { seats: seatIds })];
    for (const h of holders) expect(h.status, h.text).toBe(201);
    const want = (i: number): Record<string, unknown> => [
      { items: [{ pool: 'ga', quantity: 1 + (i % 2) }] },
      { seats: [seatIds[i % 4]] },
      { seats: [seatIds[(i + 1) % 4]], items: [{ pool: 'ga', quantity: 1 }] },
    ][i % 3]!;

    const k = eventKeys(id);
    // One atomic look at Redis: every live hold's seats and pool quantity beside the seat hash and counters.
    const snapshot = async () => (await stack.redis.eval(`
      local holds = redis.call('ZRANGE', KEYS[1], 0, -1)
      local out = { redis.call('HGET', KEYS[2], 'p:ga:held') or '0', #holds }
      for _, uid in ipairs(holds) do
        local o = redis.call('HMGET', ARGV[1] .. uid, 'st', 's', 'i')
        out[#out + 1] = uid; out[#out + 1] = o[1] or ''; out[#out + 1] = o[2] or ''; out[#out + 1] = o[3] or ''
      end
      for _, v in ipairs(redis.call('HGETALL', KEYS[3])) do out[#out + 1] = v end
      return out`, 3, k.holds, k.counts, k.seats, `{ev:${id}}:o:`)) as (string | number)[];
    let checks = 0;
    const check = async () => {
      const flat = (await snapshot()).map(String);
      const gaHeld = Number(flat[0]);
      const holdsEnd = 2 + 4 * Number(flat[1]);
      const live = new Map<string, { seats: string[]; ga: number }>();
      let n = 2;
      for (; n < holdsEnd; n += 4) {
        if (flat[n + 1] !== 'held') continue;
        const items = flat[n + 3]!.split(',').filter(Boolean);
        live.set(flat[n]!, { seats: flat[n + 2]!.split(',').filter(Boolean), ga: items[0] === 'ga' ? Number(items[1]) : 0 });
      }
      const owner = new Map<string, string>();
      for (; n < flat.length; n += 2) owner.set(flat[n]!, flat[n + 1]!);
      // Each seat is claimed by at most one live hold, the one the seat hash names; GA adds up.
      const claimed = [...live.entries()].flatMap(([uid, o]) => o.seats.map((s) => [s, uid] as const));
      expect(new Set(claimed.map(([s]) => s)).size).toBe(claimed.length);
      for (const [s, uid] of claimed) expect(owner.get(s)).toBe(`h:${uid}`);
      expect([...live.values()].reduce((sum, o) => sum + o.ga, 0)).toBe(gaHeld);
      expect(gaHeld).toBeLessThanOrEqual(4);
      checks++;
    };

    const tokens: string[] = [];
    /** waitlist token -> every merchant_uid its polls were offered */
    const answers = new Map<string, Set<string>>();
    let stop = false;
    let failure: unknown = null;
    let before = 0;
    const pollers = Array.from({ length: 4 }, async (_, p) => {
      try {
        for (let n = p; !stop; n++) {
          if (tokens.length === 0) { await new Promise((r) => setTimeout(r, 20)); continue; }
          const t = tokens[(n * 7) % tokens.length]!;
          const r = await poll(id, t);
          expect(r.status, r.text).toBe(200);
          if (r.body.merchant_uid) answers.set(t, (answers.get(t) ?? new Set<string>()).add(r.body.merchant_uid));
          await check();
        }
      } catch (error) {
        failure ??= error;
        stop = true;
      }
    });
    try {
      // Joins in waves; after the second, the holders' reservations lapse and the worker ends them
      // while the pollers make offers and the joins go on.
      for (let wave = 0; wave < 6; wave++) {
        const joined = await Promise.all(Array.from({ length: 10 }, (_, j) => join(id, `c-${wave * 10 + j}`, want(wave * 10 + j))));
        for (const r of joined) {
          expect(r.status, r.text).toBe(201);
          tokens.push(r.body.waitlist_token);
        }
        if (wave === 1) clock.advance(6_000);
      }
      for (const h of holders) await lapsed(id, h.body.merchant_uid);
      await waitFor(async () => failure !== null || answers.size > 0, 15_000, 'a first offer');
      // The first offers lapse unpaid: their places go on to later entries, still racing the pollers.
      before = answers.size;
      clock.advance(6_000);
      await waitFor(async () => failure !== null || answers.size > before, 20_000, 'offers after the first lapsed');
    } finally {
      stop = true;
      await Promise.all(pollers);
    }
    if (failure) throw failure;
    await check();
    expect(checks).toBeGreaterThan(20);
    // One offer per entry, ever: one order per waiting-list buyer in Postgres, the one their entry
    // names, and the only one their polls were shown.
    const rows = await stack.api.deps.db.selectFrom('orders').select(['buyer_id', 'merchant_uid']).where('event_id', '=', id).execute();
    const offered = rows.filter((r) => r.buyer_id.startsWith('c-'));
    expect(new Set(offered.map((r) => r.buyer_id)).size).toBe(offered.length);
    for (const r of offered) expect((await stack.store.waitlists.entry(id, r.buyer_id))?.merchantUid, r.buyer_id).toBe(r.merchant_uid);
    for (const seen of answers.values()) expect(seen.size).toBe(1);
    expect(offered.length).toBeGreaterThan(before);
  });

  it('refuses a new buyer once the list keeps WAITLIST_MAX_ENTRIES entries, sold out or not', async () => {
    const small = await startStack({ label: 'waitlist-cap', clock, worker: false, env: { WAITLIST_MAX_ENTRIES: '3' } });
    try {
      const id = await makeEvent(small.url, { seats: [{ id: 'S1', section: 'A', row: '1', number: '1', price: 1_000 }], pools: [{ ...GA, capacity: 1 }] });
      const owner = await call('POST', `/events/${id}/orders`, { buyer_id: 'owner', seats: ['S1'] }, small.url);
      expect(await small.store.settlePaid(id, owner.body.merchant_uid)).toBe('committed');
      const first = await join(id, 'a', { seats: ['S1'] }, small.url);
      // Told sold_out, it left the line, and its entry is still kept (for its buyer to read): it counts.
      expect((await call('GET', `/events/${id}/waitlist/${first.body.waitlist_token}`, undefined, small.url)).body.state).toBe('sold_out');
      const b = await join(id, 'b', { items: [{ pool: 'ga', quantity: 1 }] }, small.url);
      expect((await join(id, 'c', { items: [{ pool: 'ga', quantity: 1 }] }, small.url)).status).toBe(201);
      const full = await join(id, 'd', { items: [{ pool: 'ga', quantity: 1 }] }, small.url);
      expect(full.status).toBe(409);
      expect(full.body).toMatchObject({ code: 'WAITLIST_FULL', message: expect.stringContaining('full') });
      // A buyer on the list keeps their entry, token and place.
      expect(b.body).toMatchObject({ position: 1 });
      expect((await join(id, 'b', { items: [{ pool: 'ga', quantity: 1 }] }, small.url)).body).toEqual(b.body);
      expect((await join(id, 'a', { seats: ['S1'] }, small.url)).body).toEqual({ waitlist_token: first.body.waitlist_token, position: 0 });
      expect(await small.redis.hlen(eventKeys(id).waitlistEntries)).toBe(4); // three entries and the arrival count
    } finally {
      await small.close();
    }
  });
});
