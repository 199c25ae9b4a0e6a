/**
 * The ledger sweep and cancels made at PortOne (console, PG) whose webhook was lost (attack round 26A).
 * A ticketed V2 payment cancelled in full kept its tickets for good: V2's listing asked only for PAID
 * and PARTIAL_CANCELLED payments, and nothing else asks PortOne about a settled order (tickets without
 * money). And a payment the sweep itself had settled, partly cancelled within the hour, was never acted
 * on: its job id was the same as the settled job's, which BullMQ keeps an hour (round 21A's fix undone).
 * The API, a worker, real Redis and Postgres, and the simulator's V2 mode over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '@dropgate/testkit';
import type { Simulator } from '@dropgate/portone-sim';
import type { TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(v2Keys('ledgercancel'), { label: 'ledgercancel' }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});
const { event, order, detail, orderIs, queuesIdle, ledgerSweeps: sweeps } = shop(() => stack, { prefix: 'lc', section: 'C' });
const webhookUrl = () => `${stack.url}/portone/v2/webhook`;

describe('a cancel at PortOne whose webhook is lost', () => {
  it('in full: the sweep finds it and voids the tickets', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'c', seats: ['C-1-1'], portone_api: 'v2' });
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, mode: 'manual', webhook_url: webhookUrl(), faults: { webhook_loss: 1 } });
    const res = await http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount }, { headers: { authorization: `Bearer ${o.order_token}` } });
    expect(res.status, res.text).toBe(200);
    expect((await orderIs(o.merchant_uid, 'paid')).tickets).toHaveLength(1);
    await sim.settled();
    await queuesIdle();
    // Cancelled in full from PortOne's console; its Transaction.Cancelled webhook is lost.
    sim.cancelPayment(`v2.${w.transaction_id}`);
    await sim.settled();
    await sweeps();
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('refunded');
    expect(d.tickets).toEqual([]);
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });

  it('in part, of a payment the sweep itself settled within the hour: settled again', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'p', seats: ['C-1-1'], portone_api: 'v2' });
    // Paid without a confirm, its webhook lost: only the sweep finds it (a ledger job, kept an hour once done).
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, webhook_url: webhookUrl(), faults: { webhook_loss: 1 } });
    await sim.settled();
    await stack.worker!.sweepLedger({ settleDelayMs: 0 });
    expect((await orderIs(o.merchant_uid, 'paid')).tickets).toHaveLength(1);
    await queuesIdle();
    sim.cancelPayment(`v2.${w.transaction_id}`, { amount: 1000 });
    await sim.settled();
    await sweeps();
    expect((await detail(o.merchant_uid)).status).toBe('refunded');
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
