/**
 * A ticketed order's payment partly cancelled at PortOne's console, whose remaining refund PortOne keeps
 * refusing (attack round 28A). dropgate refunded the rest before it voided the tickets, so while the
 * cancel API refused (503s, then each retry minute after minute) the order stayed paid with every
 * ticket valid and its places sold, its money partly back: money and tickets disagreed for as long as
 * PortOne refused, for good if it never took the cancel. Now the decision is recorded and the tickets
 * voided first (the seats back on sale, the order refunded), and the refund is retried until it is
 * done. The API, a worker, real Redis and Postgres, the simulator refusing the cancels.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { lifecycle } from '@dropgate/db';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'partcancel', portoneUrl: sim.url });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});
const { confirmUrl, noticeUrl, event, order, detail, availability, queuesIdle, orderIs } = shop(() => stack, { prefix: 'pc', section: 'P' });

describe('a paid order partly cancelled at the console, its remaining refund refused by PortOne', () => {
  it('its tickets are voided at once, and the rest is refunded once PortOne takes the cancel', async () => {
    const id = await event({ seats: 1, pool: 2 });
    const o = await order(id, { buyer_id: 'b1', seats: ['P-1-1'], items: [{ pool: 'ga', quantity: 2 }] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    const imp = paid.payment.imp_uid;
    expect((await orderIs(o.merchant_uid, 'paid')).tickets).toHaveLength(3);
    await queuesIdle();
    // PortOne's cancel API refuses everything for now (503s; the simulator counts at most 100).
    const refusals = 100;
    sim.setFaults({ webhook_retry_ms: 50, cancel_failures: refusals });
    try {
      sim.cancelPayment(imp, { amount: 5_000, reason: 'console: one pool place' });
      // dropgate decided to refund the rest and asked PortOne (refused).
      await waitFor(async () => (sim.getFaults().cancel_failures ?? 0) < refusals || null, 20_000, 'the refund of the rest tried');
      expect((await lifecycle.findRefund(stack.api.deps.db, imp))).toMatchObject({ status: 'requested', reason: 'partially_cancelled', amount: o.amount - 5_000 });
      // The tickets are void already: the order no longer has its money, whatever PortOne does with the
      // cancel. Before the fix it stayed paid with its 3 tickets, its places sold.
      const d = await detail(o.merchant_uid);
      expect(d.status).toBe('refunded');
      expect(d.tickets).toEqual([]);
      const a = await availability(id);
      expect(a.seats).toMatchObject({ available: 1, sold: 0 });
      expect(a.pools[0]).toMatchObject({ available: 2, sold: 0 });
      // The retries keep failing: the order stays refunded, nothing is ticketed again.
      const tried = sim.getFaults().cancel_failures ?? 0;
      await waitFor(async () => (sim.getFaults().cancel_failures ?? 0) < tried || null, 20_000, 'the refund tried again');
      expect((await detail(o.merchant_uid))).toMatchObject({ status: 'refunded', tickets: [] });
    } finally {
      sim.setFaults({ webhook_retry_ms: 50 });
    }
    // PortOne takes the cancel again: the retry refunds the rest, once, with the checksum of what was left.
    await waitFor(async () => (await lifecycle.findRefund(stack.api.deps.db, imp))?.status === 'done', 30_000, 'the refund done');
    expect(sim.ledger({ imp_uid: imp }).cancels.filter((c) => c.source === 'api')).toEqual([
      expect.objectContaining({ ok: true, amount: o.amount - 5_000, checksum: o.amount - 5_000 }),
    ]);
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d).toMatchObject({ status: 'refunded', tickets: [] });
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: imp, status: 'cancelled', cancel_amount: o.amount })]);
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
