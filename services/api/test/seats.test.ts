/**
 * `GET /events/:id/seats?status=` pages through one status in seat id order, from the status index in
 * Redis (not by scanning the venue): every status, every page size, cursors continued to the end.
 * An event loaded before the indexes existed is still paged correctly (by walking its seats).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, newOrder } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { eventKeys } from '@dropgate/redis';

let stack: ApiStack;
beforeAll(async () => { stack = await startApiStack({ label: 'seats' }); });
afterAll(async () => { await stack?.close(); });

type Status = 'available' | 'held' | 'sold';
interface Seat { id: string; section: string; row: string; number: string; price: number; status: Status }

async function pages(id: string, query: string, limit: number): Promise<Seat[]> {
  const out: Seat[] = [];
  let cursor: string | null = null;
  for (let n = 0; n < 1000; n++) {
    const res: { status: number; text: string; body: { seats: Seat[]; next_cursor: string | null } } =
      await http(stack.url, 'GET', `/events/${id}/seats?${[query, `limit=${limit}`, cursor ? `cursor=${encodeURIComponent(cursor)}` : ''].filter(Boolean).join('&')}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.seats.length).toBeLessThanOrEqual(limit);
    out.push(...res.body.seats);
    cursor = res.body.next_cursor;
    if (cursor === null) return out;
    expect(res.body.seats.length).toBe(limit);
    expect(cursor).toBe(res.body.seats[res.body.seats.length - 1]!.id);
  }
  throw new Error('too many pages');
}

async function hold(id: string, seats: string[]): Promise<string> {
  const o = await newOrder(stack.url, id, { buyer_id: `b-${seats[0]}`, seats });
  const res = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.merchant_uid, amount: o.amount });
  expect(res.status, res.text).toBe(200);
  return o.merchant_uid;
}

describe('GET /events/:id/seats by status', () => {
  let id: string;
  const all: string[] = [];
  const held = ['A-1-10', 'A-2-3', 'VIP-2', 'B-1-1'];
  const sold = ['A-1-2', 'A-2-11', 'VIP-1'];

  beforeAll(async () => {
    id = eventId('seats');
    const res = await http(stack.url, 'POST', '/admin/events', {
      id, name: 'Seats by status',
      seats: [{ id: 'VIP-1', section: 'VIP', row: '1', number: '1', price: 300 }, { id: 'VIP-2', section: 'VIP', row: '1', number: '2', price: 300 }],
      seat_blocks: [{ section: 'A', rows: 2, seats_per_row: 12, price: 100 }, { section: 'B', rows: 1, seats_per_row: 3, price: 50 }],
    }, { admin: true });
    expect(res.status, res.text).toBe(201);
    for (let r = 1; r <= 2; r++) for (let n = 1; n <= 12; n++) all.push(`A-${r}-${n}`);
    all.push('B-1-1', 'B-1-2', 'B-1-3', 'VIP-1', 'VIP-2');
    all.sort();
    await hold(id, held.slice(0, 2));
    await hold(id, held.slice(2));
    // Sold as the worker sells them: the same script, committing a live hold.
    const buying = await hold(id, sold);
    expect(await stack.store.settlePaid(id, buying)).toBe('committed');
  });

  it.each([1, 2, 5, 1000])('pages every status in seat id order, %i at a time, to the end', async (limit) => {
    const expected: Record<Status, string[]> = {
      held: [...held].sort(),
      sold: [...sold].sort(),
      available: all.filter((s) => !held.includes(s) && !sold.includes(s)),
    };
    for (const status of ['held', 'sold', 'available'] as const) {
      const seats = await pages(id, `status=${status}`, limit);
      expect(seats.map((s) => s.id), status).toEqual(expected[status]);
      for (const s of seats) expect(s.status).toBe(status);
    }
    // Without a status: every seat, in the same order.
    const every = await pages(id, '', limit);
    expect(every.map((s) => s.id)).toEqual(all);
  });

  it('gives each seat its section, row, number and price, and continues after any cursor', async () => {
    const first = await http(stack.url, 'GET', `/events/${id}/seats?status=sold&limit=2`);
    expect(first.body).toEqual({
      seats: [
        { id: 'A-1-2', section: 'A', row: '1', number: '2', price: 100, status: 'sold' },
        { id: 'A-2-11', section: 'A', row: '2', number: '11', price: 100, status: 'sold' },
      ],
      next_cursor: 'A-2-11',
    });
    const rest = await http(stack.url, 'GET', `/events/${id}/seats?status=sold&limit=2&cursor=A-2-11`);
    expect(rest.body).toEqual({ seats: [{ id: 'VIP-1', section: 'VIP', row: '1', number: '1', price: 300, status: 'sold' }], next_cursor: null });
    // A cursor that is no seat of this status (or no seat at all) starts after it.
    const after = await http(stack.url, 'GET', `/events/${id}/seats?status=held&cursor=A-2`);
    expect(after.body.seats.map((s: Seat) => s.id)).toEqual(['A-2-3', 'B-1-1', 'VIP-2']);
    const none = await http(stack.url, 'GET', `/events/${id}/seats?status=held&cursor=ZZZ`);
    expect(none.body).toEqual({ seats: [], next_cursor: null });
  });

  it('follows a hold ending: released seats are available again', async () => {
    const other = eventId('seats');
    await http(stack.url, 'POST', '/admin/events', { id: other, name: 'Release', seat_blocks: [{ section: 'R', rows: 1, seats_per_row: 4, price: 1 }] }, { admin: true });
    const muid = await hold(other, ['R-1-2', 'R-1-4']);
    expect((await pages(other, 'status=held', 1)).map((s) => s.id)).toEqual(['R-1-2', 'R-1-4']);
    expect(await stack.store.releaseHold(other, muid, { status: 'released', nowMs: Date.now(), onlyIfOverdue: false })).toBe('released');
    expect(await pages(other, 'status=held', 1)).toEqual([]);
    expect((await pages(other, 'status=available', 3)).map((s) => s.id)).toEqual(['R-1-1', 'R-1-2', 'R-1-3', 'R-1-4']);
  });

  it('pages an event loaded before the indexes existed by walking its seats', async () => {
    await stack.redis.hdel(eventKeys(id).meta, 'seat_index');
    try {
      expect((await pages(id, 'status=held', 2)).map((s) => s.id)).toEqual([...held].sort());
      expect((await pages(id, 'status=sold', 5)).map((s) => s.id)).toEqual([...sold].sort());
    } finally {
      await stack.redis.hset(eventKeys(id).meta, 'seat_index', '1');
    }
  });
});
