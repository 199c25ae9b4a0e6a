/**
 * The storefront's read cache (read-cache.ts): reads of an event's availability and seat pages within
 * READ_CACHE_MS share one Redis read and one serialized body; `Cache-Control: no-cache` reads afresh;
 * a failed read is never kept. The API on a private redis-server with READ_CACHE_MS at its most (5 s), so every
 * read in a test is within it and the test decides what is fresh; the holds are real confirms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, startPrivateRedis, type PrivateRedis } from '@dropgate/testkit';
import { loadSnapshot } from '@dropgate/db';
import { FRESH_READS_PER_SECOND, MAX_BYTES, MAX_ENTRIES, ReadCache, wantsFresh } from '../src/lib/read-cache.ts';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

describe('ReadCache', () => {
  it('keeps a body for the TTL, shares a read in flight, reads afresh on request, never keeps a failure', async () => {
    let now = 0;
    const cache = new ReadCache(100, () => now);
    let reads = 0;
    const read = (body: string) => async () => { reads++; await new Promise((r) => setImmediate(r)); return body; };
    // Ten at once: one read.
    expect(await Promise.all(Array.from({ length: 10 }, () => cache.get('k', read('a'))))).toEqual(Array(10).fill('a'));
    expect(reads).toBe(1);
    now = 99;
    expect(await cache.get('k', read('b'))).toBe('a');
    expect(await cache.get('k', read('b'), true)).toBe('b');
    expect(reads).toBe(2);
    // The fresh read serves the others from its own start.
    now = 198;
    expect(await cache.get('k', read('c'))).toBe('b');
    now = 199;
    expect(await cache.get('k', read('c'))).toBe('c');
    expect(reads).toBe(3);
    // A failure reaches every caller waiting on it and is not kept.
    const failing = async () => { reads++; throw new Error('down'); };
    await expect(cache.get('f', failing)).rejects.toThrow('down');
    expect(await cache.get('f', read('ok'))).toBe('ok');
    // TTL 0: every call reads.
    const off = new ReadCache(0, () => now);
    await off.get('k', read('x'));
    await off.get('k', read('x'));
    expect(reads).toBe(7);
  });

  it('keeps at most MAX_ENTRIES bodies, the oldest going first', async () => {
    const cache = new ReadCache(60_000, () => 0);
    for (let i = 0; i < MAX_ENTRIES + 50; i++) await cache.get(`k${i}`, async () => `b${i}`);
    expect(cache.size).toBe(MAX_ENTRIES);
    expect(await cache.get('k0', async () => 'new')).toBe('new');
    expect(await cache.get(`k${MAX_ENTRIES + 49}`, async () => 'new')).toBe(`b${MAX_ENTRIES + 49}`);
  });

  it('keeps at most MAX_BYTES of bodies, the oldest going first, and drops bodies past the TTL as new ones come', async () => {
    let now = 0;
    const cache = new ReadCache(100, () => now);
    const mib = 'x'.repeat(1024 * 1024);
    const count = Math.ceil(MAX_BYTES / mib.length) + 8;
    for (let i = 0; i < count; i++) await cache.get(`b${i}`, async () => `${mib}${i}`);
    expect(cache.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(cache.size).toBeLessThan(count);
    expect(await cache.get(`b${count - 1}`, async () => 'new')).toBe(`${mib}${count - 1}`);
    expect(await cache.get('b0', async () => 'new')).toBe('new');
    // Past the TTL, the next read leaves nothing older behind.
    now = 150;
    await cache.get('small', async () => 'o');
    expect([cache.size, cache.bytes]).toEqual([1, 1]);
  });

  it(`reads one page afresh at most ${FRESH_READS_PER_SECOND} times a second; beyond, the newest body read`, async () => {
    let now = 0;
    const cache = new ReadCache(100, () => now);
    let reads = 0;
    const read = async () => `r${++reads}`;
    const answers: string[] = [];
    for (let i = 0; i < 100; i++) {
      now += 1;
      answers.push(await cache.get('k', read, true));
      // Plain reads in between (one past the TTL reads again) do not start the count over.
      if (i % 10 === 0) answers.push(await cache.get('k', read));
    }
    // 100 ms of fresh requests: the 20 fresh reads, and none of the plain ones read (all within the TTL).
    expect(reads).toBe(FRESH_READS_PER_SECOND);
    expect(answers.at(-1)).toBe(`r${FRESH_READS_PER_SECOND}`);
    // Past its fresh reads, a no-cache request is a plain read: never older than the TTL (a browser's
    // reload sends no-cache; it must not see a page a second old).
    now += 150;
    expect(await cache.get('k', read, true)).toBe(`r${FRESH_READS_PER_SECOND + 1}`);
    expect(await cache.get('k', read, true)).toBe(`r${FRESH_READS_PER_SECOND + 1}`);
    now += 1_000;
    expect(await cache.get('k', read, true)).toBe(`r${FRESH_READS_PER_SECOND + 2}`);
  });

  it('reads afresh for no-cache, no-store and max-age=0 only', () => {
    for (const v of ['no-cache', 'No-Cache', 'no-store', 'max-age=0', 'max-age = 0', 'public, no-cache', ['private', 'no-cache']]) expect(wantsFresh(v), String(v)).toBe(true);
    for (const v of [undefined, '', 'max-age=60', 'max-age=05', 'public', 'no-cachex', 'x-no-cache']) expect(wantsFresh(v), String(v)).toBe(false);
  });
});

let redis: PrivateRedis;
let stack: ApiStack;
beforeAll(async () => {
  redis = await startPrivateRedis();
  stack = await startApiStack({ label: 'readcache', redisUrl: redis.url, env: { READ_CACHE_MS: '5000' } });
});
afterAll(async () => {
  await stack?.close();
  await redis?.stop();
});

async function makeEvent(): Promise<string> {
  const id = eventId('rc');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Read cache', seat_blocks: [{ section: 'A', rows: 1, seats_per_row: 10, price: 1000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 500 }],
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** A real hold: an order and its confirm. */
async function hold(id: string, order: Record<string, unknown>): Promise<void> {
  const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: `b-${impUid()}`, ...order });
  expect(o.status, o.text).toBe(201);
  const c = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.body.merchant_uid, amount: o.body.amount });
  expect(c.status, c.text).toBe(200);
}

const FRESH = { headers: { 'cache-control': 'no-cache' } };

describe('the storefront reads through the cache', () => {
  it('GET /events/:id: the same body within READ_CACHE_MS, a fresh one on no-cache, which then serves the others', async () => {
    const id = await makeEvent();
    const first = await http(stack.url, 'GET', `/events/${id}`);
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(first.body.availability.pools[0]).toMatchObject({ available: 10, held: 0 });
    await hold(id, { items: [{ pool: 'ga', quantity: 2 }] });

    const cached = await http(stack.url, 'GET', `/events/${id}`);
    expect(cached.text).toBe(first.text);
    const fresh = await http(stack.url, 'GET', `/events/${id}`, undefined, FRESH);
    expect(fresh.body.availability.pools[0]).toMatchObject({ available: 8, held: 2 });
    // The same fields the route's schema always wrote, only newer.
    expect({ ...fresh.body, availability: null }).toEqual({ ...first.body, availability: null });
    expect((await http(stack.url, 'GET', `/events/${id}`)).text).toBe(fresh.text);
  });

  it('seat pages: per status, cursor and limit', async () => {
    const id = await makeEvent();
    const page = await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=5`);
    expect(page.body.seats.map((s: { id: string }) => s.id)).toHaveLength(5);
    await hold(id, { seats: [page.body.seats[0].id] });
    expect((await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=5`)).text).toBe(page.text);
    // Another page is another read.
    const six = await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=6`);
    expect(six.body.seats.map((s: { id: string }) => s.id)).not.toContain(page.body.seats[0].id);
    const held = await http(stack.url, 'GET', `/events/${id}/seats?status=held`);
    expect(held.body.seats.map((s: { id: string }) => s.id)).toEqual([page.body.seats[0].id]);
    const fresh = await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=5`, undefined, FRESH);
    expect(fresh.body.seats).toHaveLength(5);
    expect(fresh.body.seats.map((s: { id: string }) => s.id)).not.toContain(page.body.seats[0].id);
  });

  it('any cursor starts the page of the last seat not after it: made-up cursors in one gap share one read', async () => {
    const id = await makeEvent();
    // Seat ids sort as A-1-1, A-1-10, A-1-2, ...: every cursor below falls between A-1-1 and A-1-10.
    const cursors = ['A-1-1', 'A-1-1-a', 'A-1-1-b', 'A-1-1.z', 'A-1-1-', 'A-1-1--', 'A-1-1-0', 'A-1-1-zz'];
    await stack.redis.config('RESETSTAT');
    const pages = [];
    for (const c of cursors) pages.push(await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=3&cursor=${encodeURIComponent(c)}`));
    expect(pages.map((p) => p.status)).toEqual(cursors.map(() => 200));
    expect(pages[0]!.body.seats.map((s: { id: string }) => s.id)).toEqual(['A-1-10', 'A-1-2', 'A-1-3']);
    expect(new Set(pages.map((p) => p.text)).size).toBe(1);
    const info = await stack.redis.info('commandstats');
    expect(Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(info)?.[1] ?? 0)).toBe(1);
    // Before the first seat: the first page.
    const first = await http(stack.url, 'GET', `/events/${id}/seats?status=available&limit=3&cursor=A-0`);
    expect(first.body.seats.map((s: { id: string }) => s.id)).toEqual(['A-1-1', 'A-1-10', 'A-1-2']);
  });

  it('reads at once share one Redis read', async () => {
    const id = await makeEvent();
    await stack.redis.config('RESETSTAT');
    const answers = await Promise.all(Array.from({ length: 20 }, () => http(stack.url, 'GET', `/events/${id}`)));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(answers[0]!.status).toBe(200);
    const info = await stack.redis.info('commandstats');
    expect(Number(/^cmdstat_hgetall:calls=(\d+)/m.exec(info)?.[1] ?? 0)).toBe(1);
  });

  it('keeps no failed read: an event not found, then created; an event not loaded, then loaded', async () => {
    const id = eventId('rc-late');
    expect((await http(stack.url, 'GET', `/events/${id}`)).status).toBe(404);
    expect((await http(stack.url, 'GET', `/events/${id}/seats?status=available`)).status).toBe(404);
    const made = await http(stack.url, 'POST', '/admin/events', { id, name: 'Late', pools: [{ id: 'ga', name: 'GA', capacity: 3, price: 1 }] }, { admin: true });
    expect(made.status, made.text).toBe(201);
    expect((await http(stack.url, 'GET', `/events/${id}`)).status).toBe(200);

    const gone = await makeEvent();
    const snapshot = await loadSnapshot(stack.api.deps.db, gone);
    await stack.store.deleteEvent(gone);
    const notReady = await http(stack.url, 'GET', `/events/${gone}`);
    expect(notReady.status).toBe(503);
    expect(notReady.body.code).toBe('NOT_READY');
    await stack.store.loadEvent(snapshot!, 'back');
    const back = await http(stack.url, 'GET', `/events/${gone}`);
    expect(back.status, back.text).toBe(200);
    expect(back.body.availability.seats.total).toBe(10);
  });
});
