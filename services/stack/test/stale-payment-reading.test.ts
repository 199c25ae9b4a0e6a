/**
 * A stale reading of a payment written after a fresher one (attack round 28A). The record refused a
 * reading with less cancelled or un-cancelling, but took a `ready` reading over a `paid` row: a job
 * that read the payment ready (before the buyer finished paying) and wrote after the job that ticketed
 * it moved the row back to ready. Settlement fetches and writes under the order's lock, so that takes
 * the lock's lease lost under a job (its key lost in a failover; a stalled worker; withOrderLock does
 * not stop a holder whose renewal failed) or PortOne's REST answering from a replica behind the
 * notification. The row matters: the ledger sweep counts a payment PortOne lists cancelled as settled
 * unless the record has it paid, so the payment's later cancel at the console, its webhook lost, was
 * never acted on: the order kept its tickets with its money returned, for good. Now a reading never
 * moves a payment back along ready < failed < paid < cancelled (failed then paid is a PG's way).
 *
 * The stale job's write is replayed here with the reading the worker's own PortOne client took before
 * the payment was paid, through the settlement's own writer. The API, a worker, real Redis and
 * Postgres, the simulator over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { startStack, type TestStack } from '@dropgate/stack';
import { lifecycle, settlement } from '@dropgate/db';
import type { PortOnePayment } from '@dropgate/portone';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  // No periodic tasks: the test runs the ledger sweep itself.
  stack = await startStack({ label: 'stalereading', portoneUrl: sim.url, timers: false });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, recorded, ledgerSweeps: sweeps } = shop(() => stack, { prefix: 'sr', section: 'S' });
/** What the settlement records of a reading (as the worker's paymentRecord). */
const recordOf = (eventId: string, p: PortOnePayment): lifecycle.PaymentRecord => ({
  impUid: p.imp_uid, merchantUid: p.merchant_uid, eventId, amount: p.amount, cancelAmount: p.cancel_amount,
  status: p.status, failReason: p.fail_reason, paidAt: p.paid_at > 0 ? new Date(p.paid_at * 1000) : null,
});
const rowOf = (imp: string) => stack.api.deps.db.selectFrom('payments').select(['status', 'cancel_amount']).where('imp_uid', '=', imp).executeTakeFirstOrThrow();

describe('a ready reading written after the payment was recorded paid', () => {
  it('leaves the row paid, and a later cancel at the console (webhook lost) still voids the tickets', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'b1', seats: ['S-1-1'] });
    // The buyer is in the payment window; every webhook of the payment is lost.
    const w = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned', faults: { webhook_loss: 1 } });
    expect(w.confirm?.status).toBe(200);
    const imp = w.payment.imp_uid;
    await recorded(o.merchant_uid, imp);
    // A job reads the payment now (ready) ...
    const stale = (await stack.worker!.ctx.portone.getPayment(o.merchant_uid, imp))!;
    expect(stale.status).toBe('ready');
    // ... the buyer finishes paying, and another job tickets the order (the ledger sweep's: the webhook is lost).
    sim.setPaymentStatus(imp, 'paid');
    expect(await sweeps()).toContain(imp);
    expect((await detail(o.merchant_uid)).tickets).toHaveLength(1);
    expect(await rowOf(imp)).toMatchObject({ status: 'paid' });
    // The first job writes what it read.
    await settlement.settlementWriter(stack.api.deps.db).recordPayment(recordOf(id, stale));
    await lifecycle.upsertPayment(stack.api.deps.db, recordOf(id, stale));
    // Before the fix: ready, and GET /orders showed the ticketed order's payment unpaid.
    expect(await rowOf(imp)).toMatchObject({ status: 'paid' });
    expect((await detail(o.merchant_uid)).payments).toEqual([expect.objectContaining({ imp_uid: imp, status: 'paid' })]);

    // Cancelled in full at PortOne's console, its webhook lost: the sweep finds it and voids the tickets.
    // (Before the fix the sweep counted it settled, the record not having it paid: tickets without money.)
    sim.cancelPayment(imp);
    await sim.settled();
    expect(await sweeps()).toContain(imp);
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('refunded');
    expect(d.tickets).toEqual([]);
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
