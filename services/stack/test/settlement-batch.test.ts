/**
 * Settlement in batches (issue 10): the worker settles many payment outcomes at once, sharing
 * Postgres transactions between orders, and each order's outcomes still count once. Outcomes are
 * queued while the payments queue is paused, then released together, so they run side by side: the
 * same outcome many times (a webhook delivered again and again, a job run twice) among other orders'
 * outcomes. PortOne is the simulator over HTTP; Redis and Postgres are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job } from 'bullmq';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { http, waitFor, TestClock } from '@dropgate/testkit';
import { settlement } from '@dropgate/db';
import type { PaymentOutcomeJob } from '@dropgate/jobs';
import { startStack, type TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';

let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'settlebatch', portoneUrl: sim.url, clock, env: { WORKER_CONCURRENCY: '16', EXPIRY_GRACE_SECONDS: '60' } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, availability, queuesIdle, orderIs, redisStatusIs, recorded } = shop(() => stack, { prefix: 'sb', section: 'B' });
const payments = () => stack.api.deps.queues.payments;

interface Bought { merchant_uid: string; amount: number; imp: string }

/** An order held through the confirm whose payment is still open at PortOne (the buyer is paying). */
async function held(id: string, body: Record<string, unknown>): Promise<Bought> {
  const o = await order(id, body);
  const p = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
  expect(p.confirm?.status).toBe(200);
  await redisStatusIs(id, o.merchant_uid, 'held');
  // Recorded and verified before the outcomes below: a recording still running when a test locks an
  // order's row would wait for it, and hold every order recorded in the same statement with it.
  await recorded(o.merchant_uid, p.payment.imp_uid);
  return { merchant_uid: o.merchant_uid, amount: o.amount, imp: p.payment.imp_uid };
}

/** Queues a paid outcome of `b` as a webhook's job would be (`copy` makes a distinct job: a redelivery). */
function outcomeJob(id: string, b: Bought, copy: string): Promise<Job<PaymentOutcomeJob>> {
  const job: PaymentOutcomeJob = { eventId: id, merchantUid: b.merchant_uid, impUid: b.imp, hint: 'paid', source: 'webhook', receivedAt: Date.now() };
  return payments().add('outcome', job, { jobId: `sbtest-${copy}-${b.merchant_uid}` });
}

/** PortOne's paid webhook for `b`, posted to the API. */
const webhook = (b: Bought) => http(stack.url, 'POST', '/portone/v1/webhook', { imp_uid: b.imp, merchant_uid: b.merchant_uid, status: 'paid' });

/** Until every job is completed; their results. */
async function results(jobs: Job<PaymentOutcomeJob>[]): Promise<Map<string, unknown[]>> {
  await waitFor(async () => (await Promise.all(jobs.map((j) => j.isCompleted()))).every(Boolean), 30_000, 'every queued outcome completed');
  const out = new Map<string, unknown[]>();
  for (const j of jobs) {
    const done = (await Job.fromId<PaymentOutcomeJob>(payments(), j.id!))!;
    out.set(done.data.merchantUid, [...(out.get(done.data.merchantUid) ?? []), done.returnvalue]);
  }
  return out;
}

async function logEntries(muid: string, type: string): Promise<number> {
  return (await stack.api.deps.db.selectFrom('order_events').select('id').where('merchant_uid', '=', muid).where('type', '=', type).execute()).length;
}

describe('settlement in batches', () => {
  it('the same paid outcome delivered many times at once, among other orders\' outcomes: one set of tickets', async () => {
    const id = await event({ seats: 6, pool: 12 });
    const bought: Bought[] = [];
    for (let i = 0; i < 6; i++) bought.push(await held(id, { buyer_id: `p${i}`, items: [{ pool: 'ga', quantity: 2 }] }));
    for (let i = 0; i < 6; i++) bought.push(await held(id, { buyer_id: `s${i}`, seats: [`B-1-${i + 1}`] }));
    await queuesIdle(); // (a confirm's verification not queued yet runs among the outcomes below)
    const target = bought[0]!;
    const writer = settlement.settlementWriter(stack.worker!.ctx.db);
    await payments().pause();
    const jobs: Job<PaymentOutcomeJob>[] = [];
    // The target's row stays locked (as a commit locks it) until other orders' commits wait behind its
    // batch: they must then go together (the batched path runs, not one order per transaction).
    const blocker = stack.api.deps.db.transaction().execute(async (trx) => {
      await trx.selectFrom('orders').select('merchant_uid').where('merchant_uid', '=', target.merchant_uid).forNoKeyUpdate().execute();
      await waitFor(async () => writer.commitsWaiting >= 5, 30_000, 'commits waiting behind the locked order');
    });
    try {
      for (const b of bought) sim.setPaymentStatus(b.imp, 'paid');
      for (let k = 0; k < 12; k++) jobs.push(await outcomeJob(id, target, `dup${k}`));
      for (const b of bought.slice(1)) for (let k = 0; k < 2; k++) jobs.push(await outcomeJob(id, b, `dup${k}`));
      // And the webhook itself, delivered five times at once.
      const posted = await Promise.all(Array.from({ length: 5 }, () => webhook(target)));
      expect(posted.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    } finally {
      await payments().resume();
    }
    await blocker;
    const outcomes = await results(jobs);
    for (const b of bought) await orderIs(b.merchant_uid, 'paid');
    await queuesIdle();

    for (const b of bought) {
      expect(outcomes.get(b.merchant_uid)!.every((r) => r === 'ticketed' || r === 'already-paid'), JSON.stringify(outcomes.get(b.merchant_uid))).toBe(true);
      expect(await logEntries(b.merchant_uid, 'paid')).toBe(1);
      const d = await detail(b.merchant_uid);
      expect(d.tickets).toHaveLength(b === target || bought.indexOf(b) < 6 ? 2 : 1);
    }
    const pool = (await Promise.all(bought.slice(0, 6).map((b) => detail(b.merchant_uid)))).flatMap((d) => d.tickets.map((t: { serial: number }) => t.serial));
    expect(pool.sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const a = await availability(id);
    expect(a.seats).toMatchObject({ sold: 6, held: 0 });
    expect(a.pools[0]).toMatchObject({ sold: 12, held: 0, available: 0 });
    // No money went back: every payment became tickets.
    for (const b of bought) expect(sim.ledger({ imp_uid: b.imp }).cancels).toEqual([]);
    // The outcomes did share transactions.
    expect(writer.stats.commit.largestBatch).toBeGreaterThanOrEqual(5);
  });

  it('money for places that are gone goes back exactly once, however many times its outcome runs at once', async () => {
    const id = await event({ seats: 7, ttl: 5 });
    const late = await held(id, { buyer_id: 'slow', seats: ['B-1-1'] });
    clock.advance(5_000);
    await orderIs(late.merchant_uid, 'expired', 15_000);
    const fast = await order(id, { buyer_id: 'fast', seats: ['B-1-1'] });
    const fastPaid = await sim.pay({ merchant_uid: fast.merchant_uid, amount: fast.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(fastPaid.confirm?.status).toBe(200);
    await orderIs(fast.merchant_uid, 'paid');
    const others: Bought[] = [];
    for (let i = 2; i <= 7; i++) others.push(await held(id, { buyer_id: `o${i}`, seats: [`B-1-${i}`] }));
    await queuesIdle();

    await payments().pause();
    const jobs: Job<PaymentOutcomeJob>[] = [];
    try {
      // The slow buyer's payment completes after all (the late-payment watch is due too).
      sim.setPaymentStatus(late.imp, 'paid');
      for (const b of others) sim.setPaymentStatus(b.imp, 'paid');
      for (let k = 0; k < 10; k++) jobs.push(await outcomeJob(id, late, `late${k}`));
      for (const b of others) for (let k = 0; k < 2; k++) jobs.push(await outcomeJob(id, b, `late${k}`));
      await Promise.all(Array.from({ length: 5 }, () => webhook(late)));
    } finally {
      await payments().resume();
    }
    const outcomes = await results(jobs);
    const d = await orderIs(late.merchant_uid, 'refunded', 20_000);
    for (const b of others) await orderIs(b.merchant_uid, 'paid');
    await queuesIdle();
    await sim.settled();

    expect(d.tickets).toEqual([]);
    expect(outcomes.get(late.merchant_uid)!.filter((r) => r === 'refunded-seats-gone').length).toBeLessThanOrEqual(1);
    const cancels = sim.ledger({ imp_uid: late.imp }).cancels;
    expect(cancels).toHaveLength(1);
    expect(cancels[0]).toMatchObject({ ok: true, checksum: late.amount, source: 'api' });
    expect(sim.getPayment(late.imp)).toMatchObject({ status: 'cancelled', cancel_amount: late.amount });
    const refunds = await stack.api.deps.db.selectFrom('refunds').select(['status', 'reason', 'amount']).where('imp_uid', '=', late.imp).execute();
    expect(refunds).toEqual([{ status: 'done', reason: 'seats_gone', amount: late.amount }]);
    expect(await logEntries(late.merchant_uid, 'refunded')).toBe(1);
    // The seat stays with the buyer who paid in time; the other orders settled beside it.
    expect((await detail(fast.merchant_uid)).tickets.map((t: { seat: string }) => t.seat)).toEqual(['B-1-1']);
    for (const b of others) {
      expect(await logEntries(b.merchant_uid, 'paid')).toBe(1);
      expect((await detail(b.merchant_uid)).tickets).toHaveLength(1);
      expect(sim.ledger({ imp_uid: b.imp }).cancels).toEqual([]);
    }
    expect((await availability(id)).seats).toMatchObject({ sold: 7, held: 0, available: 0 });
  });
});
