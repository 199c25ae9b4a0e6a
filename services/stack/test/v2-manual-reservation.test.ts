/**
 * A V2 manual confirmation PortOne refuses (a wrong payment_token) on a reservation (hold_at "order")
 * or a waiting-list offer (attack round 27B). placeHold approves a reservation's first payment with
 * code 4 and pushes its expiry out to cover the PG's approval; the refusal's release undid only a new
 * hold (code 1), so the reservation stayed held a hold TTL from the refusal instead of its own expiry,
 * and repeated near its end it was renewed: an offer, which cannot be extended, was kept far past its
 * offer_ttl_seconds with nothing approved. Now it goes back to the reservation's own expiry, as a
 * declined card does. The API, a worker, real Redis and Postgres, the simulator's V2 mode over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Simulator } from '@dropgate/portone-sim';
import { http } from '@dropgate/testkit';
import type { TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(v2Keys('manualresv'), { label: 'manualresv' }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { event, order, queuesIdle } = shop(() => stack, { prefix: 'mv', section: 'R' });

describe('a refused manual confirmation on a reservation', () => {
  it('goes back to the reservation\'s own expiry, as a declined card does', async () => {
    const id = await event({ seats: 1, reservation: 20, ttl: 300 });
    const a = await order(id, { buyer_id: 'a', seats: ['R-1-1'], portone_api: 'v2' });
    const reservedUntil = (await stack.store.orderState(id, a.merchant_uid))!.expiresAt!;
    await sim.payV2({ payment_id: a.merchant_uid, amount: a.amount, mode: 'manual' });
    const refused = await http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: a.merchant_uid, payment_token: 'ptk_wrong', total_amount: a.amount }, { headers: { authorization: `Bearer ${a.order_token}` } });
    expect(refused.status, refused.text).toBe(400);
    expect(refused.body.code).toBe('PAYMENT_TOKEN_INVALID');
    // The attempt's outcome and verification done, the reservation is the buyer's as before the payment.
    await queuesIdle();
    expect(await stack.store.orderState(id, a.merchant_uid)).toMatchObject({ status: 'held', expiresAt: reservedUntil, impUids: [] });
  });
});
