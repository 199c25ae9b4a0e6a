/**
 * A paid payment of another amount than its order's is refunded on its own. Anyone who knows an
 * order's merchant_uid can make one (a PG that skips confirm, or a confirm without an amount), so it
 * must never close the order: the buyer's hold stays, and the buyer's real payment still gets the
 * tickets. Only a hold the payment rode on alone ends, as a failed payment's does. V1 and V2 settle
 * through the same code. PortOne is the simulator over HTTP; Redis and Postgres are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job } from 'bullmq';
import type { Simulator } from '@dropgate/portone-sim';
import { rand, waitFor, TestClock } from '@dropgate/testkit';
import type { TestStack } from '@dropgate/stack';
import { lifecycle } from '@dropgate/db';
import { jobIds, type PaymentOutcomeJob } from '@dropgate/jobs';
import type { PortOneLedger } from '@dropgate/invariants';
import { acquireLock, eventKeys, releaseLock } from '@dropgate/redis';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(v2Keys('amount'), { label: 'amount', clock, env: { EXPIRY_GRACE_SECONDS: '60' } }));
});

afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, availability, orderIs, redisStatusIs, recorded, queuesIdle } = shop(() => stack, { prefix: 'am', section: 'M' });
const payments = () => stack.api.deps.queues.payments;
const redisStatus = async (id: string, muid: string) => (await stack.store.orderState(id, muid))?.status;
/** Successful cancels of `impUid` made through PortOne's cancel API (dropgate's refunds). */
const refundsOf = (impUid: string) => sim.ledger({ imp_uid: impUid }).cancels.filter((c) => c.ok && c.source === 'api');
/** Until dropgate's refund of `impUid` went through and every job it set off has run. */
async function refunded(impUid: string): Promise<void> {
  await waitFor(async () => refundsOf(impUid).length > 0, 20_000, `the refund of ${impUid}`);
  await waitFor(async () => (await lifecycle.findRefund(stack.api.deps.db, impUid))?.status === 'done', 10_000, `the refund of ${impUid} recorded`);
  await queuesIdle();
}
/** Invariants 1-5 for the event that the checker finds broken, with `ledger` as PortOne's. */
const failing = (id: string, ledger?: PortOneLedger) => brokenInvariants(stack, sim, id, ledger);
const lastStatusChange = async (muid: string) => (await stack.api.deps.db.selectFrom('order_events').select('data')
  .where('merchant_uid', '=', muid).where('type', '=', 'status').orderBy('id', 'desc').executeTakeFirst())?.data;

/** Runs a paid outcome of `impUid` as a webhook's job would, `copies` times at once; their results. */
async function outcomeRuns(id: string, muid: string, impUid: string, copies: number): Promise<unknown[]> {
  const job: PaymentOutcomeJob = { eventId: id, merchantUid: muid, impUid, hint: 'paid', source: 'webhook', receivedAt: Date.now() };
  const jobs = await Promise.all(Array.from({ length: copies }, (_, k) => payments().add('outcome', job, { jobId: `amtest-${rand(6)}-${k}` })));
  await waitFor(async () => (await Promise.all(jobs.map((j) => j.isCompleted()))).every(Boolean), 20_000, 'the outcomes to run');
  return Promise.all(jobs.map(async (j) => (await Job.fromId(payments(), j.id!))!.returnvalue));
}

describe('a stranger pays another amount under a buyer\'s merchant_uid, without confirm', () => {
  it('while the buyer holds the seat: only the stranger is refunded (once), the hold stays, the buyer\'s payment gets the ticket', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'buyer', seats: ['M-1-1'] });
    // The buyer's payment is approved through confirm and the buyer is still in the payment window.
    const real = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect(real.confirm?.status).toBe(200);
    await recorded(o.merchant_uid, real.payment.imp_uid);

    const stranger = await sim.pay({ merchant_uid: o.merchant_uid, amount: 1, notice_url: noticeUrl(), outcome: 'paid' });
    expect(stranger.confirm).toBeNull();
    await refunded(stranger.payment.imp_uid);
    const during = await detail(o.merchant_uid);
    expect(during.status).toBe('held');
    expect(await redisStatus(id, o.merchant_uid)).toBe('held');
    expect((await availability(id)).seats).toMatchObject({ held: 1, available: 0, sold: 0 });
    expect(during.payments).toEqual(expect.arrayContaining([expect.objectContaining({ imp_uid: stranger.payment.imp_uid, status: 'cancelled', cancel_amount: 1 })]));

    // The buyer completes the payment: tickets, and none of the buyer's money goes back.
    sim.setPaymentStatus(real.payment.imp_uid, 'paid', { webhook: true });
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'M-1-1' })]);
    expect(sim.ledger({ imp_uid: real.payment.imp_uid }).cancels).toEqual([]);

    // The stranger's outcome runs again, several times at once (redelivered webhooks, a job run twice).
    const again = await outcomeRuns(id, o.merchant_uid, stranger.payment.imp_uid, 3);
    expect(again).toEqual(['already-refunded', 'already-refunded', 'already-refunded']);
    expect(refundsOf(stranger.payment.imp_uid)).toHaveLength(1);
    expect((await detail(o.merchant_uid)).status).toBe('paid');
    expect(await failing(id)).toEqual([]);
  });

  it('before the buyer\'s confirm: the order stays pending, and the buyer then holds and pays it', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'buyer', seats: ['M-1-1'] });
    const stranger = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount + 5_000, notice_url: noticeUrl(), outcome: 'paid' });
    await refunded(stranger.payment.imp_uid);
    expect((await detail(o.merchant_uid)).status).toBe('pending');
    expect(await redisStatus(id, o.merchant_uid)).toBe('pending');
    expect((await availability(id)).seats).toMatchObject({ available: 1 });

    const real = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(real.confirm?.status).toBe(200);
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'M-1-1' })]);
    expect(sim.ledger({ imp_uid: real.payment.imp_uid }).cancels).toEqual([]);
    expect(refundsOf(stranger.payment.imp_uid)).toHaveLength(1);
    expect(await failing(id)).toEqual([]);
  });
});

describe('a payment of another amount that took the hold itself (a confirm without an amount)', () => {
  /**
   * An order held by a payment of another amount, its PortOne outcome `paid`, left to be settled by
   * that outcome (the payments queue paused until the caller resumes it). Its verification would
   * otherwise race the outcome to the order's lock: the order's lock is held through the confirm, so
   * the relay queues the verification as a job instead of running it, and the job is taken out.
   */
  async function heldByForeignPayment(): Promise<{ id: string; o: { merchant_uid: string; amount: number }; imp: string }> {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'buyer', seats: ['M-1-1'] });
    await payments().pause();
    const lockKey = eventKeys(id).settleLock(o.merchant_uid);
    const token = await acquireLock(stack.redis, lockKey, 60_000);
    expect(token).not.toBeNull();
    try {
      const forged = await sim.pay({
        merchant_uid: o.merchant_uid, amount: o.amount - 9_000, confirm_url: confirmUrl(), confirm_body: { amount: null }, notice_url: noticeUrl(), outcome: 'abandoned',
      });
      expect(forged.confirm?.status).toBe(200);
      await redisStatusIs(id, o.merchant_uid, 'held');
      const imp = forged.payment.imp_uid;
      const { seq } = (await stack.store.orderState(id, o.merchant_uid))!;
      const verify = await waitFor(() => payments().getJob(jobIds.verifyPayment(o.merchant_uid, seq, imp)), 15_000, 'the verification queued');
      await verify.remove();
      await releaseLock(stack.redis, lockKey, token!);
      await recorded(o.merchant_uid);
      sim.setPaymentStatus(imp, 'paid');
      return { id, o, imp };
    } catch (error) {
      await releaseLock(stack.redis, lockKey, token!);
      await payments().resume();
      throw error;
    }
  }

  async function endsReleasedThenSells(id: string, o: { merchant_uid: string; amount: number }, imp: string): Promise<void> {
    await refunded(imp);
    const d = await orderIs(o.merchant_uid, 'released');
    expect(d.tickets).toEqual([]);
    expect(await lastStatusChange(o.merchant_uid)).toMatchObject({ from: 'held', to: 'released', cause: 'payment_unverified' });
    expect(await stack.api.deps.db.selectFrom('holds').select('status').where('merchant_uid', '=', o.merchant_uid).execute()).toEqual([{ status: 'released' }]);
    expect(await redisStatus(id, o.merchant_uid)).toBe('released');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
    expect(refundsOf(imp)).toHaveLength(1);
    // The order is still open: the buyer's own payment holds it again and gets the ticket.
    const real = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(real.confirm?.status).toBe(200);
    expect((await orderIs(o.merchant_uid, 'paid')).tickets).toEqual([expect.objectContaining({ seat: 'M-1-1' })]);
    expect(sim.ledger({ imp_uid: real.payment.imp_uid }).cancels).toEqual([]);
    expect(refundsOf(imp)).toHaveLength(1);
    expect(await failing(id)).toEqual([]);
  }

  it('its paid outcome releases that hold like a failed payment\'s and refunds it once; the order stays open', async () => {
    const { id, o, imp } = await heldByForeignPayment();
    try {
      await sim.sendWebhook(imp, 'paid');
    } finally {
      await payments().resume();
    }
    await endsReleasedThenSells(id, o, imp);
  });

  it('found paid by its verification, with no webhook ever: the verification settles it (the hold released, the money back once)', async () => {
    const { id, o, imp } = await heldByForeignPayment();
    try {
      // Its webhooks are lost: only the verification (its job taken out above, run again here) asks PortOne.
      const { seq } = (await stack.store.orderState(id, o.merchant_uid))!;
      const job: PaymentOutcomeJob = { eventId: id, merchantUid: o.merchant_uid, impUid: imp, hint: null, source: 'verify', receivedAt: Date.now(), seq };
      await payments().add('verify', job, { jobId: `amtest-verify-${rand(6)}` });
    } finally {
      await payments().resume();
    }
    await endsReleasedThenSells(id, o, imp);
  });

  it('a run that stopped right after PortOne\'s refund is finished by the retry: the hold ends, nothing is refunded twice', async () => {
    const { id, o, imp } = await heldByForeignPayment();
    try {
      // What the stopped run did: claimed the refund and had PortOne cancel the payment, nothing more.
      const db = stack.api.deps.db;
      expect(await lifecycle.claimRefund(db, { impUid: imp, merchantUid: o.merchant_uid, eventId: id, amount: o.amount - 9_000, reason: 'amount_mismatch' })).toBe(true);
      await stack.worker!.ctx.portone.cancelPayment({ impUid: imp, merchantUid: o.merchant_uid, checksum: o.amount - 9_000, reason: 'dropgate: amount_mismatch' });
      expect(await redisStatus(id, o.merchant_uid)).toBe('held');
    } finally {
      await payments().resume();
    }
    expect(await outcomeRuns(id, o.merchant_uid, imp, 2)).toEqual(['already-refunded', 'already-refunded']);
    await endsReleasedThenSells(id, o, imp);
  });
});

describe('PortOne V2 settles the same way', () => {
  it('a payment of another amount (the order\'s pre-registration missed) is refunded once and leaves the order open', async () => {
    const id = await event({ seats: 1 });
    // PortOne is unreachable when the order is made: it is not pre-registered, so PortOne lets another amount through.
    sim.setFaults({ webhook_retry_ms: 50, rest_down: true });
    let o: { merchant_uid: string; amount: number };
    try {
      o = await order(id, { buyer_id: 'buyer', seats: ['M-1-1'], portone_api: 'v2' });
    } finally {
      sim.setFaults({ webhook_retry_ms: 50 });
    }
    const stranger = await sim.payV2({ payment_id: o.merchant_uid, amount: 1, webhook_url: `${stack.url}/portone/v2/webhook`, outcome: 'paid' });
    expect(stranger.payment.status).toBe('paid');
    const key = `v2.${stranger.transaction_id}`;
    await refunded(key);
    expect((await detail(o.merchant_uid)).status).toBe('pending');
    expect(await redisStatus(id, o.merchant_uid)).toBe('pending');
    expect(refundsOf(key)).toHaveLength(1);
    expect((await availability(id)).seats).toMatchObject({ available: 1 });
    // The checks accept an open order beside a refund of another amount, and only that: the same
    // refund of the order's own amount would have to close it.
    expect(await failing(id)).toEqual([]);
    const ledger = sim.ledger();
    const asIfOwnAmount = { ...ledger, payments: ledger.payments.map((p) => (p.imp_uid === key ? { ...p, amount: o.amount, cancel_amount: o.amount } : p)) };
    const found = await failing(id, asIfOwnAmount);
    expect(found.map((f) => f.slice(0, 2))).toEqual(['2.', '5.']);
    expect(found.join('\n')).toContain(`was refunded but order ${o.merchant_uid} is pending, not refunded`);
  });
});
