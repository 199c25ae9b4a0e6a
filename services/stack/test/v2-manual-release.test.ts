/**
 * A refused V2 manual confirmation releases only a hold its own request took (attack round 26A). Its
 * placeHold may only have replayed the approval another request decided for the same attempt
 * (PortOne's signed confirm, or an earlier confirmation whose answer was lost) while PortOne is
 * approving on that hold; releasing it put the seat back on sale, another buyer took it, and the
 * first buyer's payment was refunded. The API, a worker, real Redis and Postgres, the simulator's V2
 * mode over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Simulator } from '@dropgate/portone-sim';
import { http, waitFor } from '@dropgate/testkit';
import type { TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(v2Keys('manualrel'), { label: 'manualrel' }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { event, order, orderIs, availability } = shop(() => stack, { prefix: 'mr', section: 'R' });
const manualConfirm = (token: string, body: Record<string, unknown>) =>
  http(stack.url, 'POST', '/portone/v2/manual-confirm', body, { headers: { authorization: `Bearer ${token}` } });

describe('a refused manual confirmation', () => {
  it('leaves the hold PortOne\'s signed confirm took for the same attempt: the buyer gets the seat, nobody else', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['R-1-1'], portone_api: 'v2' });
    // Buyer A pays through the confirm webhook; the PG takes 3 s to approve after dropgate's 200.
    const paying = sim.payV2({
      payment_id: a.merchant_uid, amount: a.amount, confirm_url: `${stack.url}/portone/v2/confirm`,
      webhook_url: `${stack.url}/portone/v2/webhook`, buyer_delay_ms: 3_000,
    });
    await waitFor(async () => (await stack.store.orderState(id, a.merchant_uid))?.status === 'held', 10_000, 'A held');
    // Meanwhile a manual confirmation of A's order (its token's holder) with a token PortOne refuses.
    const refused = await manualConfirm(a.order_token, { payment_id: a.merchant_uid, payment_token: 'ptk_not_the_right_one', total_amount: a.amount });
    expect(refused.status, refused.text).toBe(400);
    expect(refused.body.code).toBe('PAYMENT_TOKEN_INVALID');
    expect((await availability(id)).seats).toMatchObject({ held: 1, available: 0 });
    // Another buyer finds the seat taken.
    const b = await order(id, { buyer_id: 'b', seats: ['R-1-1'], portone_api: 'v2' });
    const wb = await sim.payV2({ payment_id: b.merchant_uid, amount: b.amount, mode: 'manual' });
    const rb = await manualConfirm(b.order_token, { payment_id: b.merchant_uid, payment_token: wb.payment_token, total_amount: b.amount });
    expect(rb.status, rb.text).toBe(409);
    expect((await paying).payment.status).toBe('paid');
    const d = await orderIs(a.merchant_uid, 'paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'R-1-1' })]);
    expect(sim.ledger({ merchant_uid: a.merchant_uid }).cancels).toEqual([]);
  });
});
