/**
 * The job queues lose their jobs: a failover of the Redis Cluster shard that has them (QUEUE_PREFIX's
 * hash slot), or a Redis that lost its data. The API answered those webhooks 200, so PortOne never sends
 * them again, and the events' own state may be untouched (on another shard): nothing else notices.
 * Found by attack round 19: a payment made without confirm (no hold, so no expiry asks PortOne) stayed
 * paid at PortOne with its order pending, for good. The worker stamps the queues like an event's state
 * (guardQueues): a missing stamp, or one from another replication history, reconciles every order not
 * held of every active event with PortOne, then stamps them again.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { RECOVERY_PRIORITY } from '@dropgate/worker';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  // No periodic guard: the test runs the queues' guard itself, after the loss.
  stack = await startStack({ label: 'queueloss', portoneUrl: sim.url, timers: false });
});
// A test that failed with the queue paused must not leave it so: the stack's close would wait on it.
afterEach(async () => {
  await stack?.api.deps.queues.payments.resume();
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { noticeUrl, event, order, detail, orderIs } = shop(() => stack, { prefix: 'ql', section: 'Q' });
const payments = () => stack.api.deps.queues.payments;
const broken = (id: string) => brokenInvariants(stack, sim, id);
const stampKey = () => `${stack.prefix}:stamp`;

/** Every key of the stack's queues, gone: what the shard that had them lost. */
async function loseQueues(): Promise<number> {
  let lost = 0;
  let cursor = '0';
  do {
    const [next, keys] = await stack.redis.scan(cursor, 'MATCH', `${stack.prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) lost += await stack.redis.del(...keys);
  } while (cursor !== '0');
  return lost;
}

/** A paid payment without confirm whose webhook was answered 200 and whose job is waiting (the queue paused). */
async function paidWithJobWaiting(id: string) {
  const o = await order(id, { buyer_id: `b-${Math.random()}`, items: [{ pool: 'ga', quantity: 1 }] });
  await payments().pause();
  const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid' });
  expect(paid.confirm).toBeNull();
  await waitFor(async () => ((await payments().getJobCounts('paused', 'waiting')).paused ?? 0) > 0, 10_000, 'the webhook\'s job to be queued');
  await waitFor(async () => sim.ledger({ imp_uid: paid.payment.imp_uid }).webhooks.some((w) => w.http_status === 200), 10_000, 'the webhook to be answered 200');
  return { o, paid };
}

describe('the job queues lose their jobs', () => {
  it('a missing stamp (Redis lost the queues): a paid payment whose webhook job was lost is settled', async () => {
    // The first look stamps them (nothing to reconcile yet); a whole stamp is then left alone.
    await stack.worker!.guardQueues();
    expect(await stack.store.keyStampState(stampKey())).toBe('whole');
    expect(await stack.worker!.guardQueues()).toBe(false);

    const id = await event({ pool: 5 });
    const { o } = await paidWithJobWaiting(id);
    expect(await loseQueues()).toBeGreaterThan(0);
    expect(await stack.store.keyStampState(stampKey())).toBe('missing');
    // The job is gone with the queues, and nothing else asks PortOne about this order: no hold expires.
    await new Promise((r) => setTimeout(r, 300));
    expect((await detail(o.merchant_uid)).status).toBe('pending');
    expect(await broken(id)).not.toEqual([]);

    expect(await stack.worker!.guardQueues()).toBe(true);
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toHaveLength(1);
    expect(await stack.store.keyStampState(stampKey())).toBe('whole');
    expect(await broken(id)).toEqual([]);
  });

  it('one loss of the queues and the events (a FLUSHALL): each order reconciled once, behind live jobs (attack round 23B)', async () => {
    await stack.worker!.guardQueues();
    const id = await event({ pool: 20 });
    const uids: string[] = [];
    for (let i = 0; i < 6; i++) uids.push((await order(id, { buyer_id: `r${i}`, items: [{ pool: 'ga', quantity: 1 }] })).merchant_uid);
    // The queues and the event's state gone together; the queue paused so the requeued jobs stay countable.
    await loseQueues();
    await stack.store.deleteEvent(id);
    await payments().pause();
    // The queues' guard finds their stamp missing and leaves the event, whose own state is gone too, to
    // its rebuild (missing on two guard passes), which requeues its orders once it is loaded (so that
    // webhooks refused meanwhile are answered too: attack round 24).
    expect(await stack.worker!.guardQueues()).toBe(true);
    expect((await payments().getJobs(['prioritized', 'waiting', 'paused', 'delayed'])).filter((j) => j.data.eventId === id)).toEqual([]);
    await stack.worker!.guard();
    expect(await stack.worker!.guard()).toContain(id);
    const queued = (await payments().getJobs(['prioritized', 'waiting', 'paused', 'delayed'])).filter((j) => j.name === 'reconcile' && j.data.eventId === id);
    expect(queued.map((j) => j.data.merchantUid).sort()).toEqual([...uids].sort());
    // Behind the outcomes of payments made meanwhile: BullMQ runs jobs without a priority first.
    expect(queued.every((j) => j.opts.priority === RECOVERY_PRIORITY)).toBe(true);
    expect(await stack.worker!.guardQueues()).toBe(false);
    await payments().resume();
    await waitFor(async () => {
      const c = await payments().getJobCounts('prioritized', 'waiting', 'active', 'delayed');
      return Object.values(c).every((n) => n === 0);
    }, 20_000, 'the reconciles to run');
    expect(await broken(id)).toEqual([]);
  });

  it('a stamp of another replication history (a failover of their shard): reconciled the same way', async () => {
    await stack.worker!.guardQueues();
    const id = await event({ pool: 5 });
    const { o } = await paidWithJobWaiting(id);
    // What the promoted replica has: the jobs it had replicated are there, the last ones are not (here
    // none is), and the stamp names the old primary's history.
    await payments().obliterate({ force: true });
    await stack.redis.hset(stampKey(), 'replid', 'f'.repeat(40));
    expect(await stack.store.keyStampState(stampKey())).toBe('unstamped');
    await new Promise((r) => setTimeout(r, 300));
    expect((await detail(o.merchant_uid)).status).toBe('pending');

    expect(await stack.worker!.guardQueues()).toBe(true);
    await orderIs(o.merchant_uid, 'paid');
    expect(await stack.store.keyStampState(stampKey())).toBe('whole');
    expect(await broken(id)).toEqual([]);
  });
});

describe('a worker starting on fresh queues', () => {
  it('has stamped them when its start returns: orders made at once are not taken for lost ones', async () => {
    // The first look used to wait for the guard's timer: a drop started at once had hundreds of orders
    // by then, each reconciled with PortOne as if the queues had lost its jobs (a drop test's queues
    // were still busy with them 45 s after its last payment).
    const fresh = await startStack({ label: 'queuefresh', portoneUrl: sim.url });
    try {
      expect(fresh.worker).not.toBeNull();
      expect(await fresh.store.keyStampState(`${fresh.prefix}:stamp`)).toBe('whole');
    } finally {
      await fresh.close();
    }
  });
});
