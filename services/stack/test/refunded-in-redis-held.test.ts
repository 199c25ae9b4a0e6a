/**
 * An order Redis has closed (refunded) while the record still has it held with a live hold (attack
 * round 28A). A refund that closes an order (refundAndClose: a late payment whose seats are gone) gives
 * the money back, closes the order in Redis, then ends its holds and moves it to `refunded` in
 * Postgres. When that last transaction fails (Postgres restarting, the worker dying) the job's retry
 * finishes it; when that job is lost as well (the queues' shard failing over), the queue guard leaves a
 * held order to its hold's expiry, and the expiry followed Redis only half way: it ended the live hold
 * and left the order `held` for good, its money refunded (invariants 2, 3 and 8 broken, nothing to
 * repair it). Now the expiry moves the order along the refund the record has decided for it.
 *
 * The faults are real: the hold lost from Redis (loaded again from a record read before it, as a
 * failover leaves it), the worker's Postgres connection terminated in the middle of the refund's record
 * step, the queues' keys gone. The API, a worker, real Redis and Postgres, the simulator.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { TestClock, waitFor } from '@dropgate/testkit';
import { loadSnapshot, lifecycle } from '@dropgate/db';
import { startStack, type TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'refundedheld', portoneUrl: sim.url, clock, env: { EXPIRY_GRACE_SECONDS: '60' } });
});
// A test that failed with the queue paused must not leave it so: the stack's close would wait on it.
afterEach(async () => {
  await stack?.api.deps.queues.payments.resume();
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, queuesIdle, orderIs, redisStatusIs, recorded } = shop(() => stack, { prefix: 'rh', section: 'R' });

/** Every key of the stack's queues, gone: what the shard that had them lost (as in queue-loss.test.ts). */
async function loseQueues(): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await stack.redis.scan(cursor, 'MATCH', `${stack.prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await stack.redis.del(...keys);
  } while (cursor !== '0');
}

describe('an order refunded in Redis whose record step and job were lost', () => {
  it('its hold\'s expiry moves it to refunded in the record, not only its hold', async () => {
    const db = stack.api.deps.db;
    const payments = stack.api.deps.queues.payments;
    const id = await event({ seats: 1, ttl: 30 });
    const a = await order(id, { buyer_id: 'a', seats: ['R-1-1'] });
    const before = await loadSnapshot(db, id);
    // The first buyer is in the payment window on a live hold, recorded and verified.
    const windowA = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect(windowA.confirm?.status).toBe(200);
    const imp = windowA.payment.imp_uid;
    await redisStatusIs(id, a.merchant_uid, 'held');
    await recorded(a.merchant_uid, imp);
    // Redis loses the hold (loaded again from a record read before it); a second buyer buys the seat.
    await stack.store.loadEvent(before!, 'lost');
    expect((await stack.store.orderState(id, a.merchant_uid))?.status).toBe('pending');
    const b = await order(id, { buyer_id: 'b', seats: ['R-1-1'] });
    await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(b.merchant_uid, 'paid');
    await queuesIdle();

    // The first buyer's payment goes through after all: its seat is gone, so it is refunded and the
    // order closed. Its record step waits on a lock (the test's) and its connection is then terminated.
    await db.connection().execute(async (conn) => {
      await sql`begin`.execute(conn);
      try {
        await sql`select 1 from holds where merchant_uid = ${a.merchant_uid} and status = 'live' for update`.execute(conn);
        sim.setPaymentStatus(imp, 'paid', { webhook: true });
        const blocked = await waitFor(async () => {
          if ((await stack.store.orderState(id, a.merchant_uid))?.status !== 'refunded') return null;
          const r = await sql<{ pid: number }>`
            select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()
          `.execute(conn);
          return r.rows[0]?.pid ?? null;
        }, 20_000, 'the refund\'s record step waiting, the order closed in Redis');
        expect(sim.ledger({ imp_uid: imp }).cancels.filter((c) => c.source === 'api')).toEqual([expect.objectContaining({ ok: true, checksum: a.amount })]);
        // Its retry must not run before the queues are lost.
        await payments.pause();
        await sql`select pg_terminate_backend(${blocked})`.execute(conn);
      } finally {
        await sql`rollback`.execute(conn);
      }
    });
    await waitFor(async () => {
      const jobs = await payments.getJobs(['delayed', 'paused', 'waiting', 'prioritized']);
      return jobs.some((j) => j.name === 'outcome' && j.data.merchantUid === a.merchant_uid && j.attemptsMade > 0) || null;
    }, 20_000, 'the refund\'s job failed, its retry waiting');
    expect((await detail(a.merchant_uid)).status).toBe('held');
    // The queues' shard fails over: the retry is gone with them.
    await loseQueues();
    await payments.resume();
    await stack.worker!.guardQueues();
    await queuesIdle();

    // The hold's expiry comes: Redis says refunded.
    clock.advance(31_000);
    await stack.worker!.sweep();
    await waitFor(async () => (await db.selectFrom('holds').select('status').where('merchant_uid', '=', a.merchant_uid).where('status', '=', 'live').executeTakeFirst()) === undefined || null,
      20_000, 'the live hold ended');
    await queuesIdle();
    // Before the fix: held, for good (no live hold left for a sweep to find, the queue guard skips held orders).
    const d = await detail(a.merchant_uid);
    expect(d.status).toBe('refunded');
    expect(d.tickets).toEqual([]);
    expect((await lifecycle.findRefund(db, imp))).toMatchObject({ status: 'done', reason: 'seats_gone' });
    expect((await detail(b.merchant_uid)).tickets).toHaveLength(1);
    await sim.settled();
    await queuesIdle();
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
