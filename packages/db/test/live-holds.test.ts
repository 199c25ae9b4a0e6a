/**
 * An order's live holds are found through that order alone, however many holds are live: recording a
 * hold (which supersedes the order's earlier live ones) and ending one each read a handful of index
 * entries, not every live hold of every event. Before `holds__live_merchant_uid_ix`, Postgres, with
 * statistics that lag behind a table filling at a drop, ANDed the sweep's index of every live hold
 * with the order's: each hold recorded read them all (quadratic in the drop).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { events as eventsRepo, lifecycle, type Db } from '@dropgate/db';
import { rand } from '@dropgate/testkit';
import { useTestDatabase } from './support/database.ts';

const LIVE = 20_000;
let db: Db;
let eventId: string;
const muid = (i: number) => `${eventId}.o${String(i).padStart(10, '0')}`;

// One connection: the statistics read below are this session's own, flushed on demand.
useTestDatabase('liveholds', 1, (opened) => { db = opened; });
beforeAll(async () => {
  eventId = `lh-${rand(6)}`;
  await eventsRepo.insertEvent(db, {
    id: eventId, name: eventId, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'ga', name: 'GA', capacity: LIVE, price: 500 }], seats: [],
  });
  // A drop in full swing: every order pending with a live hold, the table never analyzed.
  await sql`insert into orders (merchant_uid, event_id, buyer_id, amount, currency, status)
    select ${eventId} || '.o' || lpad(i::text, 10, '0'), ${eventId}, 'b' || i, 500, 'KRW', 'pending' from generate_series(1, ${LIVE}) i`.execute(db);
  await sql`insert into holds (hold_id, merchant_uid, event_id, imp_uid, seq, status, expires_at)
    select ${eventId} || '.o' || lpad(i::text, 10, '0') || ':1', ${eventId} || '.o' || lpad(i::text, 10, '0'), ${eventId}, 'imp_' || i, 1, 'live', now() + interval '1 minute'
    from generate_series(1, ${LIVE}) i`.execute(db);
}, 60_000);

/** Index entries read so far from the sweep's index of every live hold (this session's statistics, flushed now). */
async function liveIndexReads(): Promise<number> {
  await sql`select pg_stat_force_next_flush()`.execute(db);
  await sql`select 1`.execute(db); // the flush happens as a statement ends
  await sql`select pg_stat_clear_snapshot()`.execute(db);
  const row = (await sql<{ n: string }>`select idx_tup_read as n from pg_stat_user_indexes where indexrelname = 'holds__live_expires_at_ix'`.execute(db)).rows[0];
  return Number(row?.n ?? 0);
}

describe('an order\'s live holds', () => {
  it('are found without reading every live hold: recording a new hold and ending one', async () => {
    const before = await liveIndexReads();
    const recorded = await lifecycle.recordHold(db, { holdId: `${muid(5)}:2`, merchantUid: muid(5), eventId, impUid: 'imp_5b', seq: 2, expiresAt: new Date(Date.now() + 60_000) }, 'live');
    const ended = await lifecycle.endLiveHolds(db, muid(7), 'released', 'payment failed');
    const reads = (await liveIndexReads()) - before;
    // The work itself was done: hold 1 of order 5 superseded by hold 2, order 7's hold ended.
    expect(recorded).toBe(true);
    expect(ended).toBe(1);
    const holds = await db.selectFrom('holds').select(['hold_id', 'status']).where('merchant_uid', 'in', [muid(5), muid(7)]).orderBy('hold_id').execute();
    expect(holds).toEqual([
      { hold_id: `${muid(5)}:1`, status: 'expired' },
      { hold_id: `${muid(5)}:2`, status: 'live' },
      { hold_id: `${muid(7)}:1`, status: 'released' },
    ]);
    // Reading the sweep's index for these would cost every live hold (20,000) per statement.
    expect(reads).toBeLessThan(100);
  });

  it('recorded at once share statements, each whole: its hold, the order\'s earlier one superseded, the order held, one log entry', async () => {
    const orders = Array.from({ length: 300 }, (_, k) => 1000 + k);
    const before = { ...lifecycle.holdRecordingStats(db) };
    const secondHold = (i: number) => lifecycle.recordHold(db, {
      holdId: `${muid(i)}:2`, merchantUid: muid(i), eventId, impUid: `imp_${i}b`, seq: 2, expiresAt: new Date(Date.now() + 60_000),
    }, 'live');
    const recorded = await Promise.all(orders.map(secondHold));
    // Recorded again (a job run twice): nothing more.
    const again = await Promise.all(orders.slice(0, 50).map(secondHold));
    const after = lifecycle.holdRecordingStats(db);
    expect(recorded.every(Boolean)).toBe(true);
    expect(again.some(Boolean)).toBe(false);
    const uids = orders.map(muid);
    const holds = await db.selectFrom('holds').select(['seq', 'status', (eb) => eb.fn.countAll<string>().as('n')])
      .where('merchant_uid', 'in', uids).groupBy(['seq', 'status']).orderBy('seq').execute();
    expect(holds.map((h) => [h.seq, h.status, Number(h.n)])).toEqual([[1, 'expired', 300], [2, 'live', 300]]);
    const statuses = await db.selectFrom('orders').select(['status', 'status_cause']).distinct().where('merchant_uid', 'in', uids).execute();
    expect(statuses).toEqual([{ status: 'held', status_cause: 'hold_taken' }]);
    const logged = await db.selectFrom('order_events').select(['merchant_uid', 'data']).where('type', '=', 'hold_recorded').where('merchant_uid', 'in', uids).execute();
    expect(logged).toHaveLength(300);
    expect(logged.find((e) => e.merchant_uid === muid(1000))?.data).toMatchObject({ seq: 2, imp_uid: 'imp_1000b', status: 'live' });
    // 350 recordings in far fewer statements (the first goes alone, the rest wait for it and go together).
    expect(after.items - before.items).toBe(350);
    expect(after.statements - before.statements).toBeLessThan(20);
  });
});

