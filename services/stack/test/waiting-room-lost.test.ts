/**
 * A waiting room that Redis lost (a restart without persistence, a failover to a replica that had not
 * seen the joins) comes back with its buyers in their places: each queue token carries its buyer's
 * place, and a poll puts the buyer back in it. Until the worker has loaded the event again, polls are
 * answered 503 NOT_READY (the room's counts are not there: it used to tell everyone "sold out"). From
 * the worker's reload (and from the first buyer back), admissions wait QUEUE_BACK_SECONDS, so the front
 * is back before anyone behind it is admitted; buyers who join afterwards, or while the event was not
 * loaded, queue behind everyone who comes back.
 *
 * Here the event's keys are deleted from Redis (the whole room and event, as a FLUSHALL loses them);
 * the stack's worker rebuilds the event from Postgres as it does after a Redis restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUE_BACK_SECONDS } from '@dropgate/domain';
import { TestClock, eventId, http, waitFor } from '@dropgate/testkit';
import { eventKeys } from '@dropgate/redis';
import { startStack, type TestStack } from '@dropgate/stack';
import { events as eventsRepo } from '@dropgate/db';

let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => { stack = await startStack({ label: 'roomlost', clock }); });
afterAll(async () => { await stack?.close(); });

/** A 503 is the API shedding load or the event loading: nothing happened, the buyer asks again. */
async function call(method: string, path: string, body?: unknown) {
  for (;;) {
    const res = await http(stack.url, method, path, body);
    if (res.status !== 503) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An event on sale now with a fixed waiting room admitting two a second, two at a time. */
async function roomEvent(prefix: string, name: string, admissionTtlSeconds: number): Promise<string> {
  const id = eventId(prefix);
  const created = await http(stack.url, 'POST', '/admin/events', {
    id, name, pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1_000 }],
    waiting_room: { mode: 'fixed', admit_per_second: 2, max_active: 2, admission_ttl_seconds: admissionTtlSeconds },
  }, { admin: true });
  expect(created.status, created.text).toBe(201);
  return id;
}

/** Each buyer joins the room; `poll(buyer)` asks where they stand with their token. */
async function queueOf(id: string, buyers: readonly string[]) {
  const tokens = new Map<string, string>();
  for (const buyer of buyers) tokens.set(buyer, (await call('POST', `/events/${id}/queue`, { buyer_id: buyer })).body.queue_token);
  const poll = async (buyer: string) => (await call('GET', `/events/${id}/queue/${tokens.get(buyer)}`)).body;
  return { tokens, poll };
}

/** Deletes the event's keys, as a Redis that lost its data would, and waits for the worker to load it again. */
async function loseAndReload(id: string, token: string): Promise<void> {
  await stack.store.deleteEvent(id);
  await waitFor(async () => (await http(stack.url, 'GET', `/events/${id}/queue/${token}`)).status === 200 || null, 30_000, 'the event loaded again');
}

describe('a waiting room Redis lost', () => {
  it('is answered NOT_READY until the event is back, then puts every buyer back in their place; admissions wait for the front', async () => {
    const id = eventId('lost');
    const opens = clock.now() + 60_000;
    const created = await http(stack.url, 'POST', '/admin/events', {
      id, name: 'Lost room', sale_opens_at: new Date(opens).toISOString(), hold_at: 'order', reservation_ttl_seconds: 60,
      pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1_000 }],
      waiting_room: { mode: 'fixed', admit_per_second: 1, max_active: 1, admission_ttl_seconds: 60 },
    }, { admin: true });
    expect(created.status, created.text).toBe(201);

    // Six buyers before the opening (placed by the seeded shuffle), four after it (by arrival).
    const tokens = new Map<string, string>();
    for (let i = 0; i < 6; i++) tokens.set(`early${i}`, (await call('POST', `/events/${id}/queue`, { buyer_id: `early${i}` })).body.queue_token);
    clock.advance(61_000);
    for (let i = 0; i < 4; i++) tokens.set(`late${i}`, (await call('POST', `/events/${id}/queue`, { buyer_id: `late${i}` })).body.queue_token);
    const before = new Map<string, number>();
    for (const buyer of tokens.keys()) {
      const again = await call('POST', `/events/${id}/queue`, { buyer_id: buyer });
      expect(again.body.queue_token, buyer).toBe(tokens.get(buyer));
      expect(again.body.queue_token).toMatch(new RegExp(`^q2~${buyer}~`));
      before.set(buyer, again.body.position);
    }
    expect([...before.values()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (let i = 0; i < 4; i++) expect(before.get(`late${i}`)).toBe(7 + i);

    expect(await stack.redis.exists(eventKeys(id).queueWaiting)).toBe(1);
    await stack.store.deleteEvent(id);
    expect(await stack.redis.exists(eventKeys(id).queueWaiting, eventKeys(id).meta)).toBe(0);
    const someone = tokens.get('late3')!;
    // Not loaded: NOT_READY, not "sold out" (nothing is counted) and not "no such place".
    const first = await http(stack.url, 'GET', `/events/${id}/queue/${someone}`);
    expect(first.status, first.text).toBe(503);
    expect(first.body).toMatchObject({ code: 'NOT_READY' });
    // Someone joins while the event is not loaded, and is the first to poll once it is: the worker's
    // guard loads it from Postgres again, and admissions wait for the buyers who waited (without
    // the wait set by the reload, this poll admitted them ahead of everyone).
    const early = await call('POST', `/events/${id}/queue`, { buyer_id: 'early-newcomer' });
    expect(early.status, early.text).toBe(201);
    const earlyPoll = await waitFor(async () => {
      const r = await http(stack.url, 'GET', `/events/${id}/queue/${early.body.queue_token}`);
      return r.status === 200 ? r.body : null;
    }, 30_000, 'the event loaded again');
    expect(earlyPoll).toMatchObject({ state: 'waiting' });

    // Everyone comes back, in the reverse of their order, and a newcomer joins meanwhile.
    const newcomer = await call('POST', `/events/${id}/queue`, { buyer_id: 'newcomer' });
    expect(newcomer.status, newcomer.text).toBe(201);
    const back = [...tokens.entries()].sort((a, b) => before.get(b[0])! - before.get(a[0])!);
    clock.advance(1_000);
    for (const [buyer, token] of back) {
      const res = await call('GET', `/events/${id}/queue/${token}`);
      expect(res.status, `${buyer}: ${res.text}`).toBe(200);
      expect(res.body.state, buyer).toBe('waiting');
    }
    // Once all are back, each stands where they stood, and the newcomer behind them all.
    clock.advance(1_000);
    for (const [buyer, token] of tokens) {
      const res = await call('GET', `/events/${id}/queue/${token}`);
      expect(res.body, buyer).toMatchObject({ state: 'waiting', position: before.get(buyer) });
    }
    clock.advance(1_000);
    expect((await call('GET', `/events/${id}/queue/${early.body.queue_token}`)).body).toMatchObject({ state: 'waiting', position: 11 });
    const newcomerNow = await call('GET', `/events/${id}/queue/${newcomer.body.queue_token}`);
    expect(newcomerNow.body).toMatchObject({ state: 'waiting', position: 12 });

    // After the wait, admissions resume from the front: the first in line is admitted, nobody else.
    clock.advance(QUEUE_BACK_SECONDS * 1_000);
    const states = new Map<string, string>();
    for (const [buyer, token] of [...tokens.entries()].sort((a, b) => before.get(a[0])! - before.get(b[0])!)) {
      states.set(buyer, (await call('GET', `/events/${id}/queue/${token}`)).body.state);
    }
    const admitted = [...states].filter(([, s]) => s === 'admitted').map(([b]) => b);
    const front = [...before].find(([, p]) => p === 1)![0];
    expect(admitted).toEqual([front]);
  }, 60_000);

  it('a buyer it had admitted comes back admitted at once, without taking a slot of max_active again', async () => {
    const id = await roomEvent('front', 'Lost front', 60);
    const { tokens, poll } = await queueOf(id, ['f0', 'f1', 'f2', 'f3', 'f4']);

    // The first two are admitted (two slots, two a second) and learn it; the rest wait.
    clock.advance(1_000);
    expect(await poll('f0')).toMatchObject({ state: 'admitted' });
    expect(await poll('f1')).toMatchObject({ state: 'admitted' });
    expect(await poll('f2')).toMatchObject({ state: 'waiting', position: 1 });
    // The worker records how far the room has admitted (this call, or its own timer's just before),
    // and writes it again only when it moves.
    await stack.worker!.recordQueueFronts();
    expect(await stack.worker!.recordQueueFronts()).not.toContain(id);
    const recorded = await stack.api.deps.db.selectFrom('queue_fronts').select('place').where('event_id', '=', id).executeTakeFirstOrThrow();
    expect(recorded.place).toBeGreaterThan(0);

    await loseAndReload(id, tokens.get('f4')!);

    // The two admitted before the loss are admitted again at once, and can order with it; the
    // others stand where they stood.
    clock.advance(1_000);
    for (const buyer of ['f0', 'f1']) {
      const again = await poll(buyer);
      expect(again, buyer).toMatchObject({ state: 'admitted', admission_token: expect.any(String) });
      if (buyer === 'f0') {
        const order = await call('POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity: 1 }], admission_token: again.admission_token });
        expect(order.status, order.text).toBe(201);
      }
    }
    expect(await poll('f2')).toMatchObject({ state: 'waiting', position: 1 });
    expect(await poll('f3')).toMatchObject({ state: 'waiting', position: 2 });
    // They hold no slot: once the wait for the others is over, the next two are admitted (with the
    // two taking the room's two slots again, nobody would be).
    clock.advance(QUEUE_BACK_SECONDS * 1_000 + 1_000);
    expect(await poll('f2')).toMatchObject({ state: 'admitted' });
    expect(await poll('f3')).toMatchObject({ state: 'admitted' });
    expect(await poll('f4')).toMatchObject({ state: 'waiting', position: 1 });
  }, 60_000);

  it('a buyer it had admitted longer ago than their admission could last is told it expired', async () => {
    const id = await roomEvent('front-old', 'Lost front, long ago', 10);
    const { tokens, poll } = await queueOf(id, ['g0', 'g1', 'g2']);
    clock.advance(1_000);
    expect(await poll('g0')).toMatchObject({ state: 'admitted' });
    await stack.worker!.recordQueueFronts();
    // Two admission TTLs later (learned within one, lasting one): whatever g0 did, their admission is over.
    clock.advance(21_000);
    await loseAndReload(id, tokens.get('g2')!);
    clock.advance(1_000);
    expect(await poll('g0')).toMatchObject({ state: 'expired' });
  }, 60_000);

  it('keeps of the front\'s records older than two admission TTLs only the newest', async () => {
    const id = await roomEvent('front-prune', 'Pruned fronts', 10);
    const db = stack.api.deps.db;
    const now = clock.now();
    // Records of long ago (a second apart, as the worker writes them), then the room admits now.
    for (const agoS of [600, 500, 400, 300, 200]) await eventsRepo.recordRoomFront(db, id, 1 - agoS / 1000, new Date(now - agoS * 1000));
    const { poll } = await queueOf(id, ['p0']);
    clock.advance(1_000);
    expect(await poll('p0')).toMatchObject({ state: 'admitted' });
    await stack.worker!.recordQueueFronts(); // (or the worker's own timer just before)
    // Two TTLs and a minute back is 80 s: of the older records only the newest (200 s ago) is kept.
    const ages = (await db.selectFrom('queue_fronts').select('at').where('event_id', '=', id).orderBy('at').execute()).map((r) => Math.round((clock.now() - r.at.getTime()) / 1000));
    expect(ages).toEqual([201, 0]);
  }, 60_000);

  it('a made-up place changes nothing: the token is signed with the event', async () => {
    const id = eventId('forge');
    const created = await http(stack.url, 'POST', '/admin/events', {
      id, name: 'Forged place', pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1_000 }],
      waiting_room: { mode: 'fixed', admit_per_second: 1, max_active: 1, admission_ttl_seconds: 60 },
    }, { admin: true });
    expect(created.status, created.text).toBe(201);
    const joined = await call('POST', `/events/${id}/queue`, { buyer_id: 'mallory' });
    const [v, buyer, , mac] = (joined.body.queue_token as string).split('~');
    for (const token of [`${v}~${buyer}~s~${mac}`, `${v}~${buyer}~1~${mac}`, `${v}~someone~s~${mac}`]) {
      const res = await call('GET', `/events/${id}/queue/${token}`);
      expect(res.status, token).toBe(404);
      expect(res.body).toMatchObject({ code: 'TOKEN_INVALID' });
    }
  });
});
