/**
 * The relay reads the hand-off streams of every active event at each pass (twenty a second). On one
 * Redis that is one XREADGROUP however many events are active, not one (and an XAUTOCLAIM) per event:
 * 50 idle events cost an idle worker a fifth of a core and 2,000 Redis commands a second before.
 * Runs on a redis-server of its own, so INFO commandstats counts this test's commands only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { HoldStore, eventKeys } from '@dropgate/redis';
import { eventId, startPrivateRedis, type PrivateRedis } from '@dropgate/testkit';

const T0 = 1_900_000_000_000;
let server: PrivateRedis;
let redis: Redis;
let store: HoldStore;

beforeAll(async () => {
  server = await startPrivateRedis();
  redis = new Redis(server.url);
  store = new HoldStore(redis);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

async function loadEvents(n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => eventId('hsm'));
  for (const id of ids) {
    await store.loadEvent({ id, opensAt: T0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [{ id: 'p', capacity: 10 }], seats: [], orders: [] }, 'test');
  }
  return ids;
}

/** A new order of `id` holding one pool place through the confirm's script: one hand-off. */
async function hold(id: string, n: number): Promise<void> {
  const uid = `${id}.o${n}`;
  expect(await store.createOrder(id, { merchantUid: uid, amount: 100, buyerId: `b${n}`, seats: [], items: [{ pool: 'p', quantity: 1 }], tickets: 1 })).toBe('created');
  expect(await store.placeHold(id, uid, `imp-${n}`, 100, T0)).toMatchObject({ approved: true, kind: 'new' });
}

async function calls(command: string): Promise<number> {
  const stats = String(await redis.info('commandstats'));
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

describe('reading the hand-offs of many events', () => {
  it('one XREADGROUP reads every event\'s new entries; events with none are left out', async () => {
    const ids = await loadEvents(40);
    // The first read creates the streams' groups (none exist yet).
    expect((await store.readNewHandoffs(ids, 'w1', 500)).size).toBe(0);
    await hold(ids[3]!, 1);
    await hold(ids[3]!, 2);
    await hold(ids[17]!, 3);
    await hold(ids[39]!, 4);
    await redis.config('RESETSTAT');
    const read = await store.readNewHandoffs(ids, 'w1', 500);
    expect(await calls('xreadgroup')).toBe(1);
    expect([...read.keys()].sort()).toEqual([ids[3]!, ids[17]!, ids[39]!].sort());
    expect(read.get(ids[3]!)!.map((h) => [h.eventId, h.merchantUid, h.impUid])).toEqual([[ids[3], `${ids[3]}.o1`, 'imp-1'], [ids[3], `${ids[3]}.o2`, 'imp-2']]);
    expect(read.get(ids[39]!)!.map((h) => h.merchantUid)).toEqual([`${ids[39]}.o4`]);
    // Read once: the next pass finds nothing new, in one command again.
    expect((await store.readNewHandoffs(ids, 'w1', 500)).size).toBe(0);
    expect(await calls('xreadgroup')).toBe(2);
    // Unacknowledged, they stay this consumer's until reclaimed by another.
    expect((await store.reclaimHandoffs(ids[3]!, 'w2', 500, 0)).map((h) => h.impUid)).toEqual(['imp-1', 'imp-2']);
  });

  it('a stream that lost its group (Redis lost the key) gets it again, and its new entries are read', async () => {
    const ids = await loadEvents(5);
    await store.readNewHandoffs(ids, 'w1', 500);
    await redis.del(eventKeys(ids[2]!).handoff);
    expect((await store.readNewHandoffs(ids, 'w1', 500)).size).toBe(0);
    await hold(ids[2]!, 1);
    const read = await store.readNewHandoffs(ids, 'w1', 500);
    expect([...read.keys()]).toEqual([ids[2]]);
    expect(await store.reclaimHandoffs(ids[4]!, 'w1', 500, 0)).toEqual([]);
  });

  it('COUNT is per event: an event with more entries than a batch leaves the rest for the next read', async () => {
    const ids = await loadEvents(2);
    await store.readNewHandoffs(ids, 'w1', 2);
    for (let n = 1; n <= 5; n++) await hold(ids[0]!, n);
    await hold(ids[1]!, 9);
    const first = await store.readNewHandoffs(ids, 'w1', 2);
    expect(first.get(ids[0]!)!.map((h) => h.impUid)).toEqual(['imp-1', 'imp-2']);
    expect(first.get(ids[1]!)!.map((h) => h.impUid)).toEqual(['imp-9']);
    const second = await store.readNewHandoffs(ids, 'w1', 2);
    expect(second.get(ids[0]!)!.map((h) => h.impUid)).toEqual(['imp-3', 'imp-4']);
    expect(second.has(ids[1]!)).toBe(false);
  });
});

describe('hand-offs left', () => {
  it('counts entries read or not until the relay acknowledges them', async () => {
    const [id] = await loadEvents(1);
    expect(await store.handoffsLeft(id!)).toBe(0);
    await hold(id!, 1);
    await hold(id!, 2);
    expect(await store.handoffsLeft(id!)).toBe(2);
    const read = (await store.readNewHandoffs([id!], 'c1', 10)).get(id!) ?? [];
    expect(read).toHaveLength(2);
    // Read but not acknowledged: still left (a worker may die before handling them).
    expect(await store.handoffsLeft(id!)).toBe(2);
    await store.ackHandoffs(id!, [read[0]!.id]);
    expect(await store.handoffsLeft(id!)).toBe(1);
    await store.ackHandoffs(id!, [read[1]!.id]);
    expect(await store.handoffsLeft(id!)).toBe(0);
  });
});
