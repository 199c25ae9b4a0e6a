/**
 * A waiting-list step that runs past its lock (attack round 28B): the list's lock lasts 10 s, and a step
 * stalled longer than that (a slow Postgres, a GC pause) goes on while another process takes the lock
 * and steps too. Both looked at the line before either made its offer, so both picked the same entry;
 * the entry must still get one offer (one order, one reservation), not one from each step. Real Redis,
 * Postgres and worker, two API processes; Postgres is slowed by a lock on the orders table, and the list's lock is taken
 * from the first step as its expiry would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { pgConnection, waitlist as waitlistRepo } from '@dropgate/db';
import { http, eventId, waitFor } from '@dropgate/testkit';
import { eventKeys } from '@dropgate/redis';
import { startStack, type TestStack } from '@dropgate/stack';

let stack: TestStack;
/** A second API process on the same Postgres and Redis (each process batches its own order inserts). */
let other: TestStack;
beforeAll(async () => {
  stack = await startStack({ label: 'waitlist_stale' });
  other = await startStack({ label: 'waitlist_stale_b', databaseUrl: stack.db.url, worker: false });
});
afterAll(async () => {
  await other?.close();
  await stack?.close();
});

async function makeEvent(extra: Record<string, unknown> = {}) {
  const id = eventId('wls');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Stale step', hold_at: 'order', reservation_ttl_seconds: 60, waitlist: { offer_ttl_seconds: 60 },
    pools: [{ id: 'ga', name: 'GA', capacity: 3, price: 1_000 }], ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** Order inserts waiting for the lock on the orders table. */
async function waitingInserts(blocker: pg.Client): Promise<number> {
  const r = await blocker.query(`select count(*)::int as n from pg_locks where relation = 'orders'::regclass and not granted`);
  return r.rows[0].n as number;
}

describe('a waiting-list step past its lock', () => {
  it('gives the entry one offer when a second step picks it while the first, stalled, still makes its own', async () => {
    // Three places free, one entry wanting one: whatever the two steps do, the entry gets one offer.
    const id = await makeEvent();
    const joined = await http(stack.url, 'POST', `/events/${id}/waitlist`, { buyer_id: 'x', items: [{ pool: 'ga', quantity: 1 }] });
    expect(joined.status, joined.text).toBe(201);
    const token = joined.body.waitlist_token as string;
    const k = eventKeys(id);

    const blocker = new pg.Client(pgConnection(stack.db.url));
    blocker.on('error', () => undefined);
    await blocker.connect();
    let polls: Promise<Awaited<ReturnType<typeof http>>>[] = [];
    try {
      await blocker.query('begin');
      await blocker.query('lock table orders in exclusive mode');
      // Step A takes the list's lock, picks the entry, and stalls at its order's insert.
      polls.push(http(stack.url, 'GET', `/events/${id}/waitlist/${token}`));
      await waitFor(async () => (await waitingInserts(blocker)) === 1, 10_000, 'step A to wait at its order insert');
      expect(await stack.redis.exists(k.waitlistLock)).toBe(1);
      // Its lock runs out (as after 10 s): step B takes it, looks at the line and picks the entry again.
      await stack.redis.del(k.waitlistLock);
      polls.push(http(other.url, 'GET', `/events/${id}/waitlist/${token}`));
      await waitFor(async () => (await waitingInserts(blocker)) === 2, 10_000, 'step B to wait at its order insert');
      // Postgres answers again: both steps go on.
      await blocker.query('commit');
      const answers = await Promise.all(polls);
      polls = [];
      for (const a of answers) expect(a.status, a.text).toBe(200);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
      await Promise.all(polls);
    }

    // One order for the entry, reserving one place; the entry names it, and every poll shows it.
    const orders = await stack.api.deps.db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('buyer_id', '=', 'x').execute();
    const reserved = await Promise.all(orders.map(async (o) => (await stack.store.orderState(id, o.merchant_uid))?.status));
    expect({ orders: orders.length, reserved, placesHeld: await stack.redis.hget(k.counts, 'p:ga:held') }).toEqual({ orders: 1, reserved: ['held'], placesHeld: '1' });
    const muid = orders[0]!.merchant_uid;
    expect((await stack.store.waitlists.entry(id, 'x'))).toMatchObject({ state: 'offered', merchantUid: muid });
    expect((await http(stack.url, 'GET', `/events/${id}/waitlist/${token}`)).body).toMatchObject({ state: 'offered', merchant_uid: muid });
    // The record a rebuild would put the list back from names the same offer.
    expect((await waitlistRepo.listEntries(stack.api.deps.db, id)).map((e) => [e.buyerId, e.offer])).toEqual([['x', muid]]);
    // The two places left go to whoever orders next.
    expect((await stack.store.availability(id, [{ id: 'ga' }]))?.pools[0]).toMatchObject({ available: 2, held: 1 });
  });
});
