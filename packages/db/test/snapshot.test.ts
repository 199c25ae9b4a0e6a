/**
 * The record Redis is rebuilt from loads every place with at most one claim (issue 12): after a Redis
 * fault the record may have a live hold beside a sale of the same seat, or two live holds on a pool's
 * last place. Sales win, then holds in the order they were recorded; the others are displaced.
 */
import { describe, expect, it } from 'vitest';
import { displacedHolds } from '@dropgate/db';

const held = (merchantUid: string, recordedAt: number) => ({ merchantUid, status: 'held' as const, live: { recordedAt } });
const paid = (merchantUid: string) => ({ merchantUid, status: 'paid' as const, live: null });

describe('displacedHolds', () => {
  it('a sale keeps its seat against an earlier hold; the earliest recorded hold keeps a seat; other seats are untouched', () => {
    const seats = new Map([['a', ['S1']], ['b', ['S1']], ['c', ['S2', 'S3']], ['d', ['S3']], ['e', ['S4']]]);
    const out = displacedHolds([], [held('a', 1), paid('b'), held('d', 5), held('c', 2), held('e', 9)], seats, new Map());
    expect([...out].sort()).toEqual(['a', 'd']);
  });

  it('a pool: sales first, then holds while they fit, earliest recorded first (ties by merchant_uid)', () => {
    const items = new Map([
      ['s', [{ pool: 'ga', quantity: 2 }]],
      ['h1', [{ pool: 'ga', quantity: 1 }]],
      ['h2', [{ pool: 'ga', quantity: 1 }]],
      ['h3', [{ pool: 'ga', quantity: 1 }, { pool: 'ga', quantity: 1 }]],
      ['h4', [{ pool: 'vip', quantity: 1 }]],
    ]);
    const out = displacedHolds([{ id: 'ga', capacity: 4 }, { id: 'vip', capacity: 1 }], [held('h2', 3), held('h3', 2), paid('s'), held('h1', 3), held('h4', 1)], new Map(), items);
    // ga: 2 sold, h3 (2, recorded first) fits exactly; h1 and h2 do not.
    expect([...out].sort()).toEqual(['h1', 'h2']);
  });

  it('no conflict, nothing displaced; orders neither paid nor held claim nothing', () => {
    const seats = new Map([['a', ['S1']], ['b', ['S1']], ['c', ['S2']]]);
    const out = displacedHolds([], [{ merchantUid: 'a', status: 'expired', live: null }, held('b', 1), held('c', 1)], seats, new Map());
    expect(out.size).toBe(0);
  });
});
