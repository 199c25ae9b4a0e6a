/**
 * The waiting list's look along the line (scanWaitlist) and its bound (joinWaitlist), against a real
 * Redis: what is sold out leaves the line, what is held keeps its place, what fits is picked without
 * two picks sharing a place, and the cursor carries each step past the front to the rest of the line.
 */
import { describe, expect, it } from 'vitest';
import type { PoolItem } from '@dropgate/domain';
import { eventKeys, offeredEntry, type HoldStore } from '@dropgate/redis';
import { eventId } from '@dropgate/testkit';
import { holdStoreFixture } from './support/store.ts';

const { redis, store, created } = holdStoreFixture();

const T0 = 1_900_000_000_000;
async function load(): Promise<string> {
  const id = eventId('wls');
  created.push(id);
  await store.loadEvent({
    id, opensAt: T0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null,
    pools: [{ id: 'p', capacity: 5 }], seats: ['s1', 's2', 's3'], orders: [],
  }, 'test');
  return id;
}
/** Reserves places for `uid`, then sells them when `sell`. */
async function take(id: string, uid: string, seats: string[], items: PoolItem[], sell: boolean) {
  const tickets = seats.length + items.reduce((n, i) => n + i.quantity, 0);
  expect(await store.reserveOrder(id, { merchantUid: `${id}.${uid}`, amount: 1, buyerId: uid, seats, items, tickets }, T0, 60_000)).toMatchObject({ result: 'reserved' });
  if (sell) expect(await store.settlePaid(id, `${id}.${uid}`)).toBe('committed');
}
const join = (id: string, buyer: string, seats: string[], items: PoolItem[] = [], max = 1_000) => store.waitlists.join(id, buyer, seats, items, max);
const picked = (r: Awaited<ReturnType<HoldStore['waitlists']['scan']>>) => (r.result === 'looked' ? r.picked.map((e) => e.buyerId) : r.result);

describe('waiting list scan', () => {
  it('tells entries for sold places sold_out, keeps entries for held places, and picks what fits without sharing a place', async () => {
    const id = await load();
    await take(id, 'sold', ['s1'], [{ pool: 'p', quantity: 3 }], true);
    await take(id, 'held', ['s2'], [{ pool: 'p', quantity: 1 }], false);
    // p: 5 places, 3 sold, 1 held, 1 free. s1 sold, s2 held, s3 free.
    await join(id, 'a-seat-sold', ['s3', 's1']);
    await join(id, 'b-pool-unsold-too-few', [], [{ pool: 'p', quantity: 3 }]);
    await join(id, 'c-seat-held', ['s2']);
    await join(id, 'd-pool-held', [], [{ pool: 'p', quantity: 2 }]);
    await join(id, 'e-fits', ['s3'], [{ pool: 'p', quantity: 1 }]);
    await join(id, 'f-s3-again', ['s3']);
    await join(id, 'g-p-again', [], [{ pool: 'p', quantity: 1 }]);
    const r = await store.waitlists.scan(id, { front: 50, window: 200, most: 50, places: 2_000 });
    expect(r).toMatchObject({ result: 'looked', soldOut: 2 });
    // e takes s3 and the free GA place: f and g, which would each fit alone, wait.
    expect(picked(r)).toEqual(['e-fits']);
    expect(await store.waitlists.entry(id, 'a-seat-sold')).toMatchObject({ state: 'sold_out', rank: null });
    expect(await store.waitlists.entry(id, 'b-pool-unsold-too-few')).toMatchObject({ state: 'sold_out', rank: null });
    expect(await store.waitlists.entry(id, 'c-seat-held')).toMatchObject({ state: 'waiting', rank: 0 });
    expect(await store.waitlists.entry(id, 'g-p-again')).toMatchObject({ state: 'waiting', rank: 4 });
    // Nothing is taken by a look: the same places are picked again until an order reserves them.
    expect(picked(await store.waitlists.scan(id, { front: 50, window: 200, most: 1, places: 2_000 }))).toEqual(['e-fits']);
    expect(picked(await store.waitlists.scan(id, { front: 50, window: 200, most: 0, places: 2_000 }))).toEqual([]);
  });

  it('looks at the front at every step and moves a cursor through the rest, back to the front at its end', async () => {
    const id = await load();
    await take(id, 'held', ['s2'], [], false);
    for (let i = 0; i < 10; i++) await join(id, `w${i}`, ['s2']);
    await join(id, 'x', ['s3']);
    for (let i = 10; i < 14; i++) await join(id, `w${i}`, ['s2']);
    await join(id, 'y', ['s3']);
    // Front 2, window 3: w0 w1 | w2 w3 w4 | w5 w6 w7 | w8 w9 x | w10 w11 w12 | w13 y
    const steps: (string[] | string)[] = [];
    for (let n = 0; n < 7; n++) steps.push(picked(await store.waitlists.scan(id, { front: 2, window: 3, most: 5, places: 2_000 })));
    expect(steps).toEqual([[], [], ['x'], [], ['y'], [], []]);
    // Back at the front after the end: x (earlier) is picked before y whenever both are looked at.
    expect(picked(await store.waitlists.scan(id, { front: 20, window: 3, most: 5, places: 2_000 }))).toEqual(['x']);
    expect((await redis.zrange(eventKeys(id).waitlist, 0, 1))).toEqual(['w0', 'w1']);
  });

  it('stops a step at its budget of wanted places, half of it at most for the front, and the cursor still moves on', async () => {
    const id = await load();
    await take(id, 'held', ['s2'], [], false);
    for (let i = 0; i < 6; i++) await join(id, `w${i}`, ['s2', 's1']);
    await join(id, 'x', ['s3', 's1']);
    // 8 places a step, two a look: the front looks at w0 w1, the cursor's stretch at two more.
    const steps: (string[] | string)[] = [];
    for (let n = 0; n < 3; n++) steps.push(picked(await store.waitlists.scan(id, { front: 50, window: 200, most: 5, places: 8 })));
    expect(steps).toEqual([[], [], ['x']]);
  });

  it('keeps at most the entries it may: a new buyer beyond them is refused, one on the list keeps their place', async () => {
    const id = await load();
    expect(await join(id, 'a', ['s1'], [], 2)).toEqual({ joined: true, rank: 0, seq: 1 });
    expect(await join(id, 'b', ['s1'], [], 2)).toEqual({ joined: true, rank: 1, seq: 2 });
    expect(await join(id, 'c', ['s1'], [], 2)).toBe('full');
    expect(await join(id, 'b', ['s2'], [], 2)).toEqual({ joined: false, rank: 1, seq: 2 });
    expect(await redis.hlen(eventKeys(id).waitlistEntries)).toBe(3);
  });

  it('takes no one while the event is not loaded (a rebuild puts the list back from the record): nothing is stored', async () => {
    const id = eventId('wls');
    created.push(id);
    expect(await join(id, 'a', ['s1'])).toBe('not_ready');
    expect(await redis.exists(eventKeys(id).waitlist, eventKeys(id).waitlistEntries)).toBe(0);
    await store.loadEvent({ id, opensAt: T0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [], seats: ['s1'], orders: [] }, 'test');
    await store.markLoading(id);
    expect(await join(id, 'a', ['s1'])).toBe('not_ready');
    expect(await redis.exists(eventKeys(id).waitlist, eventKeys(id).waitlistEntries)).toBe(0);
  });

  it('restore puts a list back in arrival order: waiting entries in line, offered ones due for a look; arrivals go on after the last', async () => {
    const id = await load();
    await join(id, 'stale', ['s3']);
    await store.waitlists.restore(id, [
      { buyerId: 'w1', seq: 1, seats: ['s1'], items: [], offer: null },
      { buyerId: 'o2', seq: 2, seats: [], items: [{ pool: 'p', quantity: 1 }], offer: { merchantUid: `${id}.m2`, orderToken: 'tok' } },
      { buyerId: 'w3', seq: 3, seats: ['s2'], items: [], offer: null },
    ]);
    expect(await store.waitlists.entry(id, 'stale')).toBeNull();
    expect(await store.waitlists.entry(id, 'w1')).toMatchObject({ state: 'waiting', rank: 0, seats: ['s1'] });
    expect(await store.waitlists.entry(id, 'w3')).toMatchObject({ state: 'waiting', rank: 1 });
    expect(await store.waitlists.entry(id, 'o2')).toMatchObject({ state: 'offered', merchantUid: `${id}.m2`, orderToken: 'tok', rank: null });
    expect(await store.waitlists.dueOffers(id, 0)).toEqual(['o2']);
    expect(await join(id, 'w4', ['s3'])).toEqual({ joined: true, rank: 2, seq: 4 });
  });

  it('makes an offer only for an entry still waiting, marking it offered in the same step; drops only a waiting entry', async () => {
    const id = await load();
    await join(id, 'x', [], [{ pool: 'p', quantity: 1 }]);
    await join(id, 'y', [], [{ pool: 'p', quantity: 1 }]);
    const offer = (uid: string) => store.reserveOrder(
      id, { merchantUid: `${id}.${uid}`, amount: 1, buyerId: 'x', seats: [], items: [{ pool: 'p', quantity: 1 }], tickets: 1 }, T0, 60_000,
      offeredEntry([], [{ pool: 'p', quantity: 1 }], `${id}.${uid}`, `tok-${uid}`),
    );
    // Two steps picked x (one ran past the list's lock): the first reservation is x's offer.
    expect(await offer('o1')).toEqual({ result: 'reserved', expiresAt: T0 + 60_000 });
    expect(await store.waitlists.entry(id, 'x')).toMatchObject({ state: 'offered', merchantUid: `${id}.o1`, orderToken: 'tok-o1', rank: null });
    expect(await store.waitlists.dueOffers(id, T0 + 60_000)).toEqual(['x']);
    // The second is refused, and nothing of it is written: one place held, the offer unchanged.
    expect(await offer('o2')).toEqual({ result: 'not_waiting' });
    expect(await store.orderState(id, `${id}.o2`)).toBeNull();
    expect(await redis.hget(eventKeys(id).counts, 'p:p:held')).toBe('1');
    expect(await store.waitlists.entry(id, 'x')).toMatchObject({ state: 'offered', merchantUid: `${id}.o1` });
    // A step that finds x over the buyer limit (its own offer counted) leaves the offer alone; a waiting entry goes.
    const x = (await store.waitlists.entry(id, 'x'))!;
    expect(await store.waitlists.drop(id, { ...x, state: 'waiting' })).toBe(false);
    expect(await store.waitlists.entry(id, 'x')).toMatchObject({ state: 'offered', merchantUid: `${id}.o1` });
    expect(await store.waitlists.drop(id, (await store.waitlists.entry(id, 'y'))!)).toBe(true);
    expect(await store.waitlists.entry(id, 'y')).toMatchObject({ state: 'expired', rank: null });
  });
});
