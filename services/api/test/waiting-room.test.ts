/**
 * The waiting room (issue 11) over real HTTP and real Redis and Postgres: one place per buyer, the
 * seeded shuffle of early arrivals, admissions at the pace and within the bounds, paused while nothing
 * is available, sold out told to everyone waiting, and admission tokens nobody can forge or borrow.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, FrozenClock } from '@dropgate/testkit';
import { eventKeys } from '@dropgate/redis';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { startApi } from '../src/server.ts';

let stack: ApiStack;
/** Admissions are paced by this clock, which stands still unless a test moves it. */
const clock = new FrozenClock();
beforeAll(async () => { stack = await startApiStack({ label: 'queue', clock }); });
afterAll(async () => { await stack?.close(); });

const room = (extra: Record<string, unknown> = {}) => ({ mode: 'fixed', admit_per_second: 2, max_active: 3, admission_ttl_seconds: 30, ...extra });

async function makeEvent(extra: Record<string, unknown> = {}, capacity = 10) {
  const id = eventId('wr');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Waiting room', hold_at: 'order', reservation_ttl_seconds: 60, sale_opens_at: new Date(clock.now()).toISOString(),
    pools: [{ id: 'ga', name: 'GA', capacity, price: 1_000 }], waiting_room: room(), ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/**
 * A request; a 503 (the API shedding load while test files share the cores; it is refused before
 * the handler runs, so nothing happened) is retried, as a buyer would.
 */
async function call(method: string, path: string, body?: unknown) {
  for (;;) {
    const res = await http(stack.url, method, path, body);
    if (res.status !== 503) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const join = (id: string, buyer: string) => call('POST', `/events/${id}/queue`, { buyer_id: buyer });
const poll = (id: string, token: string) => call('GET', `/events/${id}/queue/${token}`);
const order = (id: string, buyer: string, token?: string, quantity = 1) =>
  call('POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity }], ...(token ? { admission_token: token } : {}) });

/** Every buyer polls once (a second of the test clock apart from their last poll). */
async function pollAll(id: string, tokens: Map<string, string>) {
  clock.advance(1_000);
  const out = new Map<string, any>();
  for (const [buyer, token] of tokens) {
    const r = await poll(id, token);
    expect(r.status, r.text).toBe(200);
    out.set(buyer, r.body);
  }
  return out;
}

async function joinAll(id: string, n: number, prefix = 'b') {
  const tokens = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const r = await join(id, `${prefix}${i}`);
    expect(r.status, r.text).toBe(201);
    tokens.set(`${prefix}${i}`, r.body.queue_token);
  }
  return tokens;
}

describe('waiting room', () => {
  it('gives one place per buyer, and an order needs the admission', async () => {
    const id = await makeEvent();
    const first = await join(id, 'alice');
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ state: 'waiting', position: 1 });
    expect(first.body.queue_token).toMatch(/^q2~alice~/);
    expect((await join(id, 'bob')).body.position).toBe(2);
    // Joining again gains nothing: the same token, the same place.
    for (let i = 0; i < 3; i++) expect((await join(id, 'alice')).body).toEqual(first.body);
    const none = await order(id, 'alice');
    expect(none.status).toBe(403);
    expect(none.body.code).toBe('ADMISSION_REQUIRED');
  });

  it('shuffles the buyers who joined before the opening by the seed it publishes afterwards; later ones queue behind in order', async () => {
    const opens = clock.now() + 60_000;
    const id = await makeEvent({ sale_opens_at: new Date(opens).toISOString() });
    expect((await http(stack.url, 'GET', `/events/${id}`)).body.waiting_room.shuffle_seed).toBeNull();
    const early = Array.from({ length: 25 }, (_, i) => `early${i}`);
    for (const b of early) expect((await join(id, b)).status).toBe(201);
    // Before the opening nobody is admitted, whatever the pace.
    const e0 = await join(id, 'early0');
    expect(e0.body.estimated_wait_seconds).toBeGreaterThanOrEqual(59);
    expect((await poll(id, e0.body.queue_token)).body.state).toBe('waiting');
    clock.advance(61_000);
    const seed = (await http(stack.url, 'GET', `/events/${id}`)).body.waiting_room.shuffle_seed as string;
    expect(seed).toMatch(/^[0-9a-f]{32}$/);
    const late = await join(id, 'late0');
    const late2 = await join(id, 'late1');
    // The audit: sort the early buyers by the first 52 bits of sha1(seed:buyer).
    const key = (b: string) => parseInt(createHash('sha1').update(`${seed}:${b}`).digest('hex').slice(0, 13), 16);
    const expected = [...early].sort((a, b) => key(a) - key(b));
    const positions = new Map<string, number>();
    for (const b of early) positions.set(b, (await join(id, b)).body.position);
    expect([...early].sort((a, b) => positions.get(a)! - positions.get(b)!)).toEqual(expected);
    expect(late.body.position).toBe(26);
    expect(late2.body.position).toBe(27);
    expect(expected).not.toEqual(early);
  });

  it('admits at the pace within max_active; the admitted buyer orders with a token bound to them', async () => {
    const id = await makeEvent();
    const tokens = await joinAll(id, 8);
    const r1 = await pollAll(id, tokens);
    const admitted1 = [...r1.values()].filter((r) => r.state === 'admitted');
    expect(admitted1).toHaveLength(2);
    const r2 = await pollAll(id, tokens);
    // max_active 3: admitted buyers who have not ordered yet block more admissions.
    expect([...r2.values()].filter((r) => r.state === 'admitted')).toHaveLength(3);
    const r3 = await pollAll(id, tokens);
    expect([...r3.values()].filter((r) => r.state === 'admitted')).toHaveLength(3);
    // Waiting buyers are told their place and an estimate.
    const waiting = [...r3.values()].filter((r) => r.state === 'waiting').map((r) => r.position).sort((a, b) => a - b);
    expect(waiting).toEqual([1, 2, 3, 4, 5]);
    const [buyer, status] = [...r3.entries()].find(([, r]) => r.state === 'admitted')!;
    const [other] = [...r3.entries()].find(([b, r]) => r.state === 'admitted' && b !== buyer)!;
    expect(status.admission_token).toMatch(/^a1~/);
    // Another buyer cannot use it; a forged or tampered one fails.
    const borrowed = await order(id, other, status.admission_token);
    expect(borrowed.status).toBe(403);
    expect(borrowed.body.code).toBe('ADMISSION_INVALID');
    const parts = (status.admission_token as string).split('~');
    const later = [parts[0], parts[1], String(Number(parts[2]) + 3_600_000), parts[3]].join('~');
    expect((await order(id, buyer, later)).body.code).toBe('ADMISSION_INVALID');
    // Someone else's name on a real signature.
    expect((await order(id, other, [parts[0], other, parts[2], parts[3]].join('~'))).body.code).toBe('ADMISSION_INVALID');
    expect((await order(id, buyer, 'a1~x~1~y')).body.code).toBe('ADMISSION_INVALID');
    const other2 = await makeEvent();
    expect((await order(other2, buyer, status.admission_token)).body.code).toBe('ADMISSION_INVALID');
    const ok = await order(id, buyer, status.admission_token);
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.status).toBe('held');
    // Ordering frees the buyer's slot: one more is admitted at the next step.
    const r4 = await pollAll(id, tokens);
    expect([...r4.values()].filter((r) => r.state === 'admitted')).toHaveLength(4);
    // A poll faster than once a second is refused and changes nothing.
    const fast = await poll(id, tokens.get('b0')!);
    expect(fast.status).toBe(429);
    expect(fast.body.code).toBe('RATE_LIMITED');
    // The admission lapses: the token stops working and the buyer is told expired.
    clock.advance(31_000);
    const lapsed = [...r4.entries()].find(([b, r]) => r.state === 'admitted' && b !== buyer)!;
    expect((await poll(id, tokens.get(lapsed[0])!)).body.state).toBe('expired');
    expect((await order(id, lapsed[0], lapsed[1].admission_token)).body.code).toBe('ADMISSION_INVALID');
  });

  it('admits no more buyers than places remain, pauses while everything is held, resumes when places return, and tells everyone waiting when it is sold out', async () => {
    const id = await makeEvent({ waiting_room: room({ admit_per_second: 10, max_active: 10 }) }, 2);
    const tokens = await joinAll(id, 12);
    const r1 = await pollAll(id, tokens);
    const admitted = [...r1.entries()].filter(([, r]) => r.state === 'admitted');
    // Two places: two admitted, however fast the pace.
    expect(admitted).toHaveLength(2);
    const orders = [];
    for (const [b, r] of admitted) {
      const o = await order(id, b, r.admission_token);
      expect(o.status, o.text).toBe(201);
      orders.push(o.body.merchant_uid as string);
    }
    // Everything held: paused, nobody else admitted.
    const r2 = await pollAll(id, tokens);
    expect([...r2.values()].filter((r) => r.state === 'admitted')).toHaveLength(2);
    expect([...r2.values()].filter((r) => r.state === 'waiting')).toHaveLength(10);
    // A hold ends: its place returns and one more buyer is admitted.
    await stack.store.releaseHold(id, orders[0]!, { status: 'expired', nowMs: clock.now(), onlyIfOverdue: false });
    const r3 = await pollAll(id, tokens);
    const admitted3 = [...r3.entries()].filter(([, r]) => r.state === 'admitted');
    expect(admitted3).toHaveLength(3);
    const newcomer = admitted3.find(([b]) => !admitted.some(([a]) => a === b))!;
    const o = await order(id, newcomer[0], newcomer[1].admission_token);
    expect(o.status, o.text).toBe(201);
    // Both places sold: everyone still waiting hears sold_out at once.
    for (const muid of [orders[1]!, o.body.merchant_uid as string]) expect(await stack.store.settlePaid(id, muid)).toBe('committed');
    const r4 = await pollAll(id, tokens);
    expect([...r4.values()].filter((r) => r.state === 'sold_out')).toHaveLength(9);
  });

  it('starts an admission\'s TTL when its buyer learns of it; one who never comes back frees the slot after one TTL', async () => {
    const id = await makeEvent({ waiting_room: room({ admit_per_second: 10, max_active: 1 }) });
    const a = (await join(id, 'a')).body.queue_token as string;
    const b = (await join(id, 'b')).body.queue_token as string;
    clock.advance(1_000);
    // b's poll admits a (first in line), who has not heard of it yet: b waits behind a's slot.
    expect((await poll(id, b)).body).toMatchObject({ state: 'waiting', position: 1 });
    clock.advance(20_000);
    // a comes back 20 s later: the admission's 30 s start now.
    const late = (await poll(id, a)).body;
    expect(late.state).toBe('admitted');
    expect(Number(late.admission_token.split('~')[2])).toBeGreaterThanOrEqual(clock.now() + 29_000);
    // c and d queue behind b; c will never come back.
    const c = (await join(id, 'c')).body.queue_token as string;
    const d = (await join(id, 'd')).body.queue_token as string;
    expect((await order(id, 'a', late.admission_token)).status).toBe(201);
    clock.advance(1_000);
    // a ordered, so its slot is free: b is next, and b (polling) learns of it at once.
    expect((await poll(id, b)).body.state).toBe('admitted');
    clock.advance(31_000);
    // b's admission ran out unused: c is admitted (pending) by d's poll; d waits.
    expect((await poll(id, d)).body).toMatchObject({ state: 'waiting', position: 1 });
    clock.advance(31_000);
    expect((await poll(id, c)).body.state).toBe('expired');
    clock.advance(1_000);
    expect((await poll(id, d)).body.state).toBe('admitted');
  });

  it('shares one pace and one set of bounds between API processes, and their tokens work on each other', async () => {
    const second = await startApi(stack.config, { logger: false, queuePrefix: stack.prefix, clock });
    try {
      const id = await makeEvent({ waiting_room: room({ admit_per_second: 3, max_active: 4 }) }, 50);
      const tokens = await joinAll(id, 12);
      const urls = [stack.url, second.url];
      const admitted = new Map<string, string>();
      for (let round = 0; round < 3; round++) {
        clock.advance(1_000);
        let n = 0;
        for (const [buyer, token] of tokens) {
          // Every other poll goes to the other process.
          const r = await http(urls[n++ % 2]!, 'GET', `/events/${id}/queue/${token}`);
          expect(r.status, r.text).toBe(200);
          if (r.body.state === 'admitted') admitted.set(buyer, r.body.admission_token);
        }
        // 3 a second (plus what the real time the polls take earns), never more than max_active 4
        // admitted and not yet ordered, whichever process polls.
        expect(admitted.size).toBeGreaterThanOrEqual(Math.min(4, 3 * (round + 1)));
        expect(admitted.size).toBeLessThanOrEqual(4);
      }
      // A token signed by one process is good at the other.
      const [buyer, token] = [...admitted][0]!;
      const o = await http(second.url, 'POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity: 1 }], admission_token: token });
      expect(o.status, o.text).toBe(201);
    } finally {
      await second.close();
    }
  });

  it('dynamic mode slows down when confirms approach the budget', async () => {
    const id = await makeEvent({ waiting_room: room({ mode: 'dynamic', admit_per_second: 8, max_active: 100 }) }, 100);
    const tokens = await joinAll(id, 40);
    await pollAll(id, tokens);
    const before = await stack.store.queues.snapshot(id);
    expect(before.admitted).toBeGreaterThanOrEqual(8);
    await stack.store.queues.noteConfirmLatency(id, stack.config.confirmBudgetMs);
    await pollAll(id, tokens);
    const after = await stack.store.queues.snapshot(id);
    expect(after.pace).toBeLessThanOrEqual(4);
    // Half the pace for the second (plus the few ms the polls themselves take), not the full 8.
    expect(after.admitted - before.admitted).toBeLessThan(8);
  });

  it('refuses bad input with 4xx and changes nothing', async () => {
    const id = await makeEvent();
    const plain = eventId('wr');
    expect((await http(stack.url, 'POST', '/admin/events', { id: plain, name: 'No room', pools: [{ id: 'ga', name: 'GA', capacity: 1, price: 1 }] }, { admin: true })).status).toBe(201);
    expect((await join(plain, 'b1')).body.code).toBe('NO_WAITING_ROOM');
    expect((await join(eventId('none'), 'b1')).status).toBe(404);
    for (const body of [{}, { buyer_id: '' }, { buyer_id: 'x'.repeat(500) }, { buyer_id: 'a b' }, { buyer_id: 'b', extra: 1 }]) {
      const r = await http(stack.url, 'POST', `/events/${id}/queue`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    const t = (await join(id, 'b1')).body.queue_token as string;
    const other = await makeEvent();
    // Another event's token, a tampered one, a made-up one, an oversized one.
    // (A path parameter over 100 characters is refused by the router itself: 414.)
    const forgedName = t.replace('~b1~', '~b2~');
    for (const [bad, status] of [[t, 404], [`${t.slice(0, -2)}AA`, 404], [forgedName, 404], ['q1~alice~abc', 404], ['q1~a~b~c', 404], ['x'.repeat(1000), 414]] as const) {
      const r = await poll(bad === t ? other : id, bad);
      expect(r.status, bad).toBe(status);
      if (status === 404) expect(r.body.code).toBe('TOKEN_INVALID');
    }
    for (const bad of [{ mode: 'slow' }, { admit_per_second: 0 }, { max_active: 0 }, { admission_ttl_seconds: 4 }]) {
      const r = await http(stack.url, 'POST', '/admin/events', { id: eventId('wr'), name: 'Bad', pools: [{ id: 'ga', name: 'GA', capacity: 1, price: 1 }], waiting_room: room(bad) }, { admin: true });
      expect(r.status, JSON.stringify(bad)).toBe(400);
    }
    expect(await stack.redis.zcard(eventKeys(id).queueWaiting)).toBe(1);
  });

  it('keeps 100,000 queued buyers in a few tens of MB', async () => {
    const id = await makeEvent({ sale_opens_at: new Date(clock.now() + 3_600_000).toISOString() });
    const k = eventKeys(id);
    const started = performance.now();
    // The same entries joinQueue and the poll limiter write (a pre-opening place in [0,1), a poll
    // time), written in bulk: the memory is the structures', whoever writes them.
    for (let i = 0; i < 100_000; i += 10_000) {
      const places: (string | number)[] = [];
      const polls: (string | number)[] = [];
      for (let j = i; j < i + 10_000; j++) {
        const buyer = `buyer-${String(j).padStart(6, '0')}`;
        places.push(Math.random(), buyer);
        polls.push(buyer, clock.now());
      }
      await stack.redis.zadd(k.queueWaiting, ...places);
      await stack.redis.hset(k.queuePolls, ...polls);
    }
    const ms = performance.now() - started;
    expect(await stack.redis.zcard(k.queueWaiting)).toBe(100_000);
    const bytes = Number(await stack.redis.memory('USAGE', k.queueWaiting, 'SAMPLES', 0)) + Number(await stack.redis.memory('USAGE', k.queuePolls, 'SAMPLES', 0));
    console.log(`100,000 queued buyers: ${(bytes / 1e6).toFixed(1)} MB in Redis (queue + poll limiter), written in ${ms.toFixed(0)} ms`);
    expect(bytes).toBeLessThan(40e6);
    // One more join and one poll stay fast with 100,000 ahead (O(log n)).
    const t0 = performance.now();
    const r = await join(id, 'last-buyer');
    expect(r.body.position).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(500);
  });
});
