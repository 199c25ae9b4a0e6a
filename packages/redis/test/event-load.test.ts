/**
 * Loading a big event: loadEvent sends its writes as several pipelines (LOAD_PIPELINE_ARGS arguments
 * each) so one load does not hold the process's event loop for the whole venue. The parts must add up
 * to the same state, and the state must never look whole (meta 'ready') before every part is in.
 */
import { describe, expect, it } from 'vitest';
import { LOAD_PIPELINE_ARGS, eventKeys, type EventSnapshot } from '@dropgate/redis';
import { eventId } from '@dropgate/testkit';
import { holdStoreFixture } from './support/store.ts';

const { redis, store, created } = holdStoreFixture();

const T0 = 1_900_000_000_000;
const SEATS = 60_000;
const ORDERS = 12_000;

function snapshot(id: string): EventSnapshot {
  const seats = Array.from({ length: SEATS }, (_, i) => `S-${Math.floor(i / 100)}-${i % 100}`);
  const orders: EventSnapshot['orders'] = [];
  for (let i = 0; i < ORDERS; i++) {
    // Every fourth order held, every fourth paid, the rest pending; seat orders and pool orders alternate.
    const status = i % 4 === 0 ? 'held' : i % 4 === 1 ? 'paid' : 'pending';
    const bySeat = i % 2 === 0;
    orders.push({
      merchantUid: `${id}.o${i}`, amount: 1000, buyerId: `b${i % 3000}`, seats: bySeat ? [seats[i]!] : [], items: bySeat ? [] : [{ pool: 'ga', quantity: 1 }],
      status, holdExpiresAt: status === 'held' ? T0 + 60_000 + i : null, seq: status === 'pending' ? 0 : 1, impUid: status === 'pending' ? null : `imp${i}`,
    });
  }
  return { id, opensAt: T0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [{ id: 'ga', capacity: 20_000 }], seats, orders };
}

describe('loading an event bigger than one pipeline', () => {
  it('writes every seat, index, order, hold and count, and marks the state whole only after all of them', async () => {
    const id = eventId('big');
    created.push(id);
    const s = snapshot(id);
    const k = eventKeys(id);
    // The load is several pipelines, or this test would not test the parts.
    expect(SEATS * 2).toBeGreaterThan(LOAD_PIPELINE_ARGS);

    // Watch the state while it loads: whenever it reads 'ready', everything must already be there.
    let loading = true;
    const early: string[] = [];
    let looks = 0;
    const watcher = (async () => {
      while (loading) {
        const [state, seats, holds, available] = await Promise.all([
          store.eventState(id), redis.hlen(k.seats), redis.zcard(k.holds), redis.zcard(k.seatIndex('available')),
        ]);
        looks++;
        if (state === 'ready' && (seats !== SEATS || holds !== ORDERS / 4 || available !== SEATS - ORDERS / 4)) early.push(`${seats} seats, ${holds} holds, ${available} available`);
      }
    })();
    await store.loadEvent(s, 'test', T0);
    loading = false;
    await watcher;
    expect(early).toEqual([]);
    expect(looks).toBeGreaterThan(1);

    expect(await store.eventState(id)).toBe('ready');
    // Seats: orders 0, 4, 8, ... are held seat orders (3,000 seats held); the paid ones (1, 5, ...) are pool orders.
    const heldSeats = ORDERS / 4;
    expect(await redis.hlen(k.seats)).toBe(SEATS);
    expect(await redis.zcard(k.seatIndex('held'))).toBe(heldSeats);
    expect(await redis.zcard(k.seatIndex('sold'))).toBe(0);
    expect(await redis.zcard(k.seatIndex('available'))).toBe(SEATS - heldSeats);
    expect(await redis.hget(k.seats, s.seats[0]!)).toBe(`h:${id}.o0`);
    expect(await redis.hget(k.seats, s.seats[2]!)).toBe('');
    // Pools: orders i % 4 === 1 are paid pool orders, 3,000 places sold.
    const counts = await redis.hgetall(k.counts);
    expect(counts).toMatchObject({ seats_total: String(SEATS), seats_held: String(heldSeats), seats_sold: '0', 'p:ga:cap': '20000', 'p:ga:held': '0', 'p:ga:sold': String(ORDERS / 4) });
    expect(await redis.zcard(k.holds)).toBe(ORDERS / 4);
    // Every order's hash, the last one included.
    const last = await redis.hgetall(k.order(`${id}.o${ORDERS - 1}`));
    expect(last).toMatchObject({ a: '1000', st: 'pending', q: '1' });
    const pipe = redis.pipeline();
    for (let i = 0; i < ORDERS; i++) pipe.exists(k.order(`${id}.o${i}`));
    const exists = (await pipe.exec())!.map(([, n]) => n);
    expect(exists.filter((n) => n === 1)).toHaveLength(ORDERS);
    // Tickets per buyer: 3,000 buyers, each with the held and paid orders among their four.
    const buyers = await redis.hgetall(k.buyers);
    expect(Object.values(buyers).reduce((n, v) => n + Number(v), 0)).toBe(ORDERS / 2);
  });
});
