/**
 * An oversell Postgres prevents (Redis had lost a sale), whose refund's first cancel at PortOne fails
 * (attack round 27A). The first try stopped before it queued the forced rebuild; the retry finished the
 * decided refund, whose close voided in Redis the sale Redis had let through: the seat, sold to the
 * first buyer in the record, read available in Redis, and nothing rebuilt it (each later buyer of it
 * approved, charged and refunded). Now the rebuild is queued before the refund. The API, a worker,
 * real Redis and Postgres, the simulator failing the first cancel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { forgetSeatSale } from '@dropgate/redis';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'oversellretry', portoneUrl: sim.url });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});
const { confirmUrl, noticeUrl, event, order, detail, queuesIdle, orderIs } = shop(() => stack, { prefix: 'ov', section: 'O' });

describe('an oversell Postgres prevents, whose refund needs a second try', () => {
  it('Redis is put back in line with the record all the same', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'first', seats: ['O-1-1'] });
    await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(a.merchant_uid, 'paid');
    await queuesIdle();
    // Redis loses the sale (the record keeps it): a second buyer is approved on the same seat.
    await forgetSeatSale(stack.redis, id, 'O-1-1');
    // PortOne refuses the first cancels (503s, more than the client retries at once): the refund job is tried again.
    sim.setFaults({ webhook_retry_ms: 50, cancel_failures: 4 });
    const b = await order(id, { buyer_id: 'second', seats: ['O-1-1'] });
    const paid = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    await orderIs(b.merchant_uid, 'refunded');
    expect(sim.getFaults().cancel_failures).toBe(0);
    await sim.settled();
    await queuesIdle();
    // The first buyer keeps the seat, and Redis says so again (the rebuild ran).
    expect((await detail(a.merchant_uid)).tickets).toHaveLength(1);
    await waitFor(async () => (await stack.store.seatStates(id, ['O-1-1']))[0] === 'sold', 15_000, 'the seat sold again in Redis');
    await queuesIdle();
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
