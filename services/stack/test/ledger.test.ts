/**
 * The ledger sweep (attack round 20A, High): a payment made without a confirm (a PG that cannot
 * confirm, a browser that left confirm_url out) whose only webhook is lost took no hold, so no expiry
 * ever asked PortOne about it: PortOne kept the money and dropgate issued no tickets and made no
 * refund, for good. The worker now reads PortOne's list of the store's paid payments against the
 * record and settles those the record lacks. V1 and V2, against the simulator over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '@dropgate/testkit';
import type { Simulator } from '@dropgate/portone-sim';
import type { TestStack } from '@dropgate/stack';
import { lifecycle } from '@dropgate/db';
import type { PaymentOutcomeJob } from '@dropgate/jobs';
import { sql } from 'kysely';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  // No periodic tasks: the test runs the sweep itself, so nothing else (an expiry, a guard) finds the payment.
  ({ sim, stack } = await startV2Stack(v2Keys('ledger'), { label: 'ledger', timers: false }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, orderIs, queuesIdle } = shop(() => stack, { prefix: 'lg', section: 'L' });
const broken = (id: string) => brokenInvariants(stack, sim, id);
const sweep = async () => {
  const sweeps = await stack.worker!.sweepLedger({ settleDelayMs: 0 });
  return { v1: sweeps.find((s) => s.api === 'v1')!, v2: sweeps.find((s) => s.api === 'v2')! };
};
/** Waits until nothing is queued and no webhook is on its way, then a little longer for a late one. */
const quiet = async () => {
  await sim.settled();
  await queuesIdle();
};

describe('the ledger sweep', () => {
  it('V1: a payment without confirm whose webhook was lost gets its order ticketed; the next sweep finds nothing new', async () => {
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'a', seats: ['L-1-1'] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    expect(paid.confirm).toBeNull();
    await quiet();
    // Nothing else asks PortOne about it: no hold, so no expiry.
    expect((await detail(o.merchant_uid)).status).toBe('pending');
    expect(await broken(id)).not.toEqual([]);

    const { v1 } = await sweep();
    expect(v1.queued).toContain(paid.payment.imp_uid);
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'L-1-1' })]);
    await quiet();
    expect(await broken(id)).toEqual([]);
    expect(sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels).toEqual([]);

    // Settled now: the record has it, and a sweep over the same window leaves it alone.
    const again = await sweep();
    expect(again.v1.queued).not.toContain(paid.payment.imp_uid);
    expect(again.v1.listed).toBeGreaterThanOrEqual(1);
  });

  it('V1: a second payment without confirm on a paid order, its webhook lost, is refunded; the order keeps its tickets', async () => {
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'b', seats: ['L-1-1'] });
    const first = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(o.merchant_uid, 'paid');
    const second = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    await quiet();
    expect(await broken(id)).not.toEqual([]);

    const { v1 } = await sweep();
    expect(v1.queued).toEqual([second.payment.imp_uid]);
    await waitFor(async () => sim.ledger({ imp_uid: second.payment.imp_uid }).cancels.find((c) => c.ok) ?? null, 15_000, 'the second payment to be refunded');
    await quiet();
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'L-1-1' })]);
    expect(sim.ledger({ imp_uid: first.payment.imp_uid }).cancels).toEqual([]);
    expect(sim.ledger({ imp_uid: second.payment.imp_uid }).cancels.filter((c) => c.ok)).toHaveLength(1);
    expect(await broken(id)).toEqual([]);
  });

  it('V2: a payment without confirm whose webhook was lost gets its order ticketed', async () => {
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'c', seats: ['L-1-1'], portone_api: 'v2' });
    const paid = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, webhook_url: `${stack.url}/portone/v2/webhook`, faults: { webhook_loss: 1 } });
    expect(paid.payment.status).toBe('paid');
    await quiet();
    expect((await detail(o.merchant_uid)).status).toBe('pending');

    const { v2 } = await sweep();
    expect(v2.queued).toHaveLength(1);
    expect(v2.queued[0]).toMatch(/^v2\./);
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toHaveLength(1);
    await quiet();
    expect(await broken(id)).toEqual([]);
    expect((await sweep()).v2.queued).toEqual([]);
  });

  it('payments of orders dropgate does not have are counted and left alone; a payment paid within the settle delay is its webhook\'s', async () => {
    const foreign = await sim.pay({ merchant_uid: 'other-shop.AAAAAAAAAAA', amount: 1000, outcome: 'paid' });
    const malformed = await sim.pay({ merchant_uid: 'not one of ours', amount: 1000, outcome: 'paid' });
    const { v1 } = await sweep();
    expect(v1.queued).not.toContain(foreign.payment.imp_uid);
    expect(v1.queued).not.toContain(malformed.payment.imp_uid);
    expect(v1.unknownOrders).toBeGreaterThanOrEqual(2);
    expect(sim.ledger({ imp_uid: foreign.payment.imp_uid }).cancels).toEqual([]);
    const counted = (await stack.worker!.ctx.metrics.ledgerPayments.get()).values.find((v) => v.labels.api === 'v1' && v.labels.result === 'unknown_order');
    expect(counted?.value).toBeGreaterThanOrEqual(2);

    // With the default delay a payment paid a moment ago is not read yet: its webhook settles it.
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'd', seats: ['L-1-1'] });
    const recent = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    const sweeps = await stack.worker!.sweepLedger();
    const late = sweeps.find((s) => s.api === 'v1')!;
    expect(late.to).toBeLessThan(Date.now() - 50_000);
    expect(late.queued).not.toContain(recent.payment.imp_uid);
    expect((await detail(o.merchant_uid)).status).toBe('pending');
  });

  it('a reconcile asks both APIs: a V2 order paid through V1 (no confirm, webhook lost) is found', async () => {
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'e', seats: ['L-1-1'], portone_api: 'v2' });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    await quiet();
    // What the guard queues after Redis lost the event, or a webhook naming one payment too many.
    const data: PaymentOutcomeJob = { eventId: id, merchantUid: o.merchant_uid, impUid: '', hint: null, source: 'reconcile', receivedAt: Date.now() };
    await stack.api.deps.queues.payments.add('reconcile', data, { jobId: `rec-${o.merchant_uid}-test` });
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'paid' })]);
    await quiet();
    expect(await broken(id)).toEqual([]);
  });

  it('a refund decided and not done for a payment made through the other API is finished by the refund retry', async () => {
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'f', seats: ['L-1-1'] });
    await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(o.merchant_uid, 'paid');
    // A V2 payment of the V1 order (its webhook lost), whose refund was decided and then not done.
    const second = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, webhook_url: `${stack.url}/portone/v2/webhook`, faults: { webhook_loss: 1 } });
    const key = `v2.${second.transaction_id}`;
    const db = stack.api.deps.db;
    expect(await lifecycle.claimRefund(db, { impUid: key, merchantUid: o.merchant_uid, eventId: id, amount: o.amount, reason: 'duplicate_payment' })).toBe(true);
    await sql`update refunds set created_at = now() - interval '2 minutes' where imp_uid = ${key}`.execute(db);
    expect(await stack.worker!.retryRefunds()).toContain(key);
    await waitFor(async () => (await lifecycle.findRefund(db, key))?.status === 'done', 20_000, 'the refund done');
    expect(sim.ledger({ merchant_uid: o.merchant_uid }).cancels.filter((c) => c.ok)).toEqual([expect.objectContaining({ imp_uid: key, amount: o.amount })]);
    await quiet();
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('paid');
    expect(d.tickets).toHaveLength(1);
    expect(await broken(id)).toEqual([]);
  });

  it('each sweep starts where the last one ended, less the overlap, and never goes back', async () => {
    const first = await sweep();
    const second = await sweep();
    expect(second.v1.from).toBe(first.v1.sweptUntil - 2 * 60_000);
    expect(second.v1.sweptUntil).toBeGreaterThanOrEqual(first.v1.sweptUntil);
    expect(second.v2.from).toBe(first.v2.sweptUntil - 2 * 60_000);
  });
});
