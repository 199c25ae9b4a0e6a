/**
 * Seats by status: each event keeps one ordered index per status (available, held, sold) beside the
 * seat hash, moved in the same script as the seat itself, so `GET /events/:id/seats?status=` reads a
 * page with ZRANGEBYLEX instead of scanning the venue. Every script that moves seats keeps the
 * indexes equal to what the seat hash says, and a rebuild (loadEvent) rebuilds them.
 */
import { describe, expect, it } from 'vitest';
import { eventKeys, type EventSnapshot, type SeatState } from '@dropgate/redis';
import { eventId } from '@dropgate/testkit';
import { holdStoreFixture } from './support/store.ts';

const { redis, store, created } = holdStoreFixture();

const T0 = 1_900_000_000_000;
const STATUSES: SeatState[] = ['available', 'held', 'sold'];
// Byte order, the order ZRANGEBYLEX and the catalog both page in ('A-1-10' before 'A-1-2').
const SEATS = ['A-1-1', 'A-1-10', 'A-1-2', 'A-1-3', 'B-1-1', 'B-1-2', 'B-2-1', 'C-1-1'];

async function load(orders: EventSnapshot['orders'] = []): Promise<string> {
  const id = eventId('si');
  created.push(id);
  await store.loadEvent({
    id, opensAt: T0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [{ id: 'p', capacity: 5 }], seats: SEATS, orders,
  }, 'test');
  return id;
}

async function order(id: string, uid: string, seats: string[]) {
  expect(await store.createOrder(id, { merchantUid: uid, amount: 100, buyerId: 'b', seats, items: [], tickets: seats.length })).toBe('created');
}

/** Every page of one status, `limit` at a time, following next cursors to the end. */
async function walk(id: string, status: SeatState, limit: number): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page = await store.seatPage(id, status, cursor, limit);
    if (page === 'not_ready' || page === 'unindexed') throw new Error(`seatPage answered ${page}`);
    expect(page.ids.length).toBeLessThanOrEqual(limit);
    out.push(...page.ids);
    if (!page.more) return out;
    expect(page.ids).toHaveLength(limit);
    cursor = page.ids[page.ids.length - 1]!;
  }
  throw new Error('too many pages');
}

/** The indexes hold exactly the seats the seat hash gives each status, and page in byte order. */
async function expectIndexesMatchSeats(id: string) {
  const states = await store.seatStates(id, SEATS);
  for (const status of STATUSES) {
    const expected = SEATS.filter((_, i) => states[i] === status).sort();
    expect(await redis.zrange(eventKeys(id).seatIndex(status), 0, -1), `index of ${status}`).toEqual(expected);
    expect(await walk(id, status, 3), `pages of ${status}`).toEqual(expected);
  }
}

describe('seat indexes', () => {
  it('are built by loadEvent from held and paid orders, and page in seat id order after a cursor', async () => {
    const id = await load([
      { merchantUid: 'x.held', amount: 1, buyerId: 'b', seats: ['B-1-2', 'A-1-10'], items: [], status: 'held', holdExpiresAt: T0 + 60_000, seq: 1, impUid: 'i1' },
      { merchantUid: 'x.paid', amount: 1, buyerId: 'b', seats: ['C-1-1', 'A-1-1'], items: [], status: 'paid', holdExpiresAt: null, seq: 1, impUid: 'i2' },
      { merchantUid: 'x.gone', amount: 1, buyerId: 'b', seats: ['A-1-2'], items: [], status: 'expired', holdExpiresAt: null, seq: 1, impUid: 'i3' },
    ]);
    expect(await walk(id, 'held', 1)).toEqual(['A-1-10', 'B-1-2']);
    expect(await walk(id, 'sold', 10)).toEqual(['A-1-1', 'C-1-1']);
    expect(await walk(id, 'available', 2)).toEqual(['A-1-2', 'A-1-3', 'B-1-1', 'B-2-1']);
    expect(await store.seatPage(id, 'available', 'A-1-3', 2)).toEqual({ ids: ['B-1-1', 'B-2-1'], more: false });
    expect(await store.seatPage(id, 'available', 'A-1-2', 2)).toEqual({ ids: ['A-1-3', 'B-1-1'], more: true });
    // A cursor need not be a seat of this status, or a seat at all.
    expect(await store.seatPage(id, 'held', 'A', 5)).toEqual({ ids: ['A-1-10', 'B-1-2'], more: false });
    expect(await store.seatPage(id, 'held', 'Z', 5)).toEqual({ ids: [], more: false });
    await expectIndexesMatchSeats(id);
  });

  it('follow every script that moves seats: hold, undo, release, commit, void, retake, drop', async () => {
    const id = await load();
    await order(id, 'a', ['A-1-1', 'B-1-1']);
    await order(id, 'b', ['A-1-2']);
    await order(id, 'c', ['C-1-1', 'A-1-10']);
    await expectIndexesMatchSeats(id);

    expect((await store.placeHold(id, 'a', 'ia1', null, T0)).approved).toBe(true);
    await expectIndexesMatchSeats(id);
    expect(await store.undoHold(id, 'a', 'ia1')).toBe(true);
    await expectIndexesMatchSeats(id);
    expect((await store.placeHold(id, 'a', 'ia2', null, T0)).approved).toBe(true);
    expect((await store.placeHold(id, 'b', 'ib1', null, T0)).approved).toBe(true);
    expect(await walk(id, 'held', 2)).toEqual(['A-1-1', 'A-1-2', 'B-1-1']);
    await expectIndexesMatchSeats(id);

    expect(await store.releaseHold(id, 'b', { status: 'released', nowMs: T0 + 1, onlyIfOverdue: false })).toBe('released');
    await expectIndexesMatchSeats(id);
    expect(await store.settlePaid(id, 'a')).toBe('committed');
    expect(await walk(id, 'sold', 1)).toEqual(['A-1-1', 'B-1-1']);
    await expectIndexesMatchSeats(id);
    expect(await store.voidSale(id, 'a', 'refunded')).toBe('voided');
    await expectIndexesMatchSeats(id);
    expect(await store.settlePaid(id, 'b')).toBe('retaken');
    await expectIndexesMatchSeats(id);

    const held = await store.placeHold(id, 'c', 'ic1', null, T0);
    expect(held.approved).toBe(true);
    await expectIndexesMatchSeats(id);
    expect(await store.dropPayment(id, 'c', 'ic1', 1)).toBe('released');
    await expectIndexesMatchSeats(id);
    expect(await walk(id, 'available', 100)).toEqual(['A-1-1', 'A-1-10', 'A-1-3', 'B-1-1', 'B-1-2', 'B-2-1', 'C-1-1']);
  });

  it('answer not_ready while the event is not loaded, and unindexed for a state loaded before they existed', async () => {
    const id = await load();
    await store.markLoading(id);
    expect(await store.seatPage(id, 'available', null, 10)).toBe('not_ready');
    const gone = eventId('si');
    expect(await store.seatPage(gone, 'held', null, 10)).toBe('not_ready');
    const old = await load();
    await redis.hdel(eventKeys(old).meta, 'seat_index');
    expect(await store.seatPage(old, 'held', null, 10)).toBe('unindexed');
  });
});
