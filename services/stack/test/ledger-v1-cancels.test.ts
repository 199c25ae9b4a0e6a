/**
 * The ledger sweep and V1 payments cancelled in full at PortOne (console, PG) whose webhook was lost.
 * A ticketed V1 payment cancelled in full kept its tickets for good: the sweep read V1's list of paid
 * payments only (`GET /payments/status/paid`, by paid time), which a cancelled payment has left, and
 * nothing else asks PortOne about a settled order (tickets without money; round 26A's V2 fix). V1 lists
 * cancelled payments by their cancel time, so one cancelled long after it was paid is read too.
 * The API, a worker, real Redis and Postgres, and the simulator over HTTP, its clock moved by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

// PortOne's clock: the system's until a test moves it.
const portoneClock = new TestClock();
let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, clock: portoneClock, faults: { webhook_retry_ms: 50 } });
  // No periodic tasks: the test runs the sweep itself.
  stack = await startStack({ label: 'ledgerv1cancel', portoneUrl: sim.url, timers: false });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, orderIs, queuesIdle, ledgerSweeps: sweeps } = shop(() => stack, { prefix: 'lv', section: 'V' });
/** A V1 order paid with confirm and ticketed; every webhook of its payment is lost. */
async function ticketed(id: string, buyer: string) {
  const o = await order(id, { buyer_id: buyer, seats: ['V-1-1'] });
  const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
  expect(paid.confirm?.status).toBe(200);
  expect((await orderIs(o.merchant_uid, 'paid')).tickets).toHaveLength(1);
  await sim.settled();
  await queuesIdle();
  return { o, imp: paid.payment.imp_uid };
}
/** The order ends refunded by PortOne's cancel alone, without tickets, and the event is whole. */
async function expectVoided(id: string, merchantUid: string, imp: string): Promise<void> {
  const d = await detail(merchantUid);
  expect(d.status).toBe('refunded');
  expect(d.tickets).toEqual([]);
  // The console's cancel returned the money: dropgate refunds nothing more.
  expect(sim.ledger({ imp_uid: imp }).cancels.filter((c) => c.ok).map((c) => c.source)).toEqual(['console']);
  expect(await brokenInvariants(stack, sim, id)).toEqual([]);
}

describe('a V1 payment cancelled in full at PortOne whose webhook is lost', () => {
  it('is found by the sweep and its tickets voided', async () => {
    const id = await event({ seats: 1 });
    const { o, imp } = await ticketed(id, 'a');
    // Cancelled in full from PortOne's console; its cancelled webhook is lost.
    sim.cancelPayment(imp);
    await sim.settled();
    expect((await detail(o.merchant_uid)).status).toBe('paid');
    expect(await sweeps()).toContain(imp);
    await expectVoided(id, o.merchant_uid, imp);
  });

  it('cancelled two hours after it was paid, long after the sweeps read its paid time: found', async () => {
    const id = await event({ seats: 1 });
    // Paid two hours ago by PortOne's clock.
    portoneClock.advance(-2 * 3_600_000);
    const { o, imp } = await ticketed(id, 'b');
    expect(sim.getPayment(imp)?.paid_at).toBeLessThan(Date.now() / 1000 - 3_600);
    // Sweeps read up to now meanwhile: the paid list's cursor is past its paid time for good.
    await sweeps();
    expect((await detail(o.merchant_uid)).status).toBe('paid');
    // Now cancelled in full, its webhook lost.
    portoneClock.advance(2 * 3_600_000);
    sim.cancelPayment(imp);
    await sim.settled();
    expect(await sweeps()).toContain(imp);
    await expectVoided(id, o.merchant_uid, imp);
  });
});
