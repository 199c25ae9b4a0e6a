/**
 * The unchecked mark (attack round 27B) after PortOne's REST API comes back (attack round 28C). A V1
 * hold taken while PortOne cannot be asked marks its order unchecked; only a job that gets PortOne's
 * word on the order's payments clears the mark (the hold's verification, a webhook's outcome, the
 * expiry's look). Once the expiry gave up on PortOne and released the hold, the only such job left is
 * the verification, retrying with exponential backoff: after an outage of T it next asks about T
 * later. Until then every V1 payment on the order was refused PAYMENT_UNCHECKED with PortOne up (and
 * for good when the verification had failed for good, e.g. PortOne refusing our credentials for a
 * while). A refused confirm now has the worker ask PortOne about the order at once, so the buyer's
 * next try is decided on PortOne's word. PortOne is our simulator over HTTP; Redis, Postgres and the
 * worker are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { jobIds } from '@dropgate/jobs';
import { waitFor, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { eventKeys } from '@dropgate/redis';
import { shop } from './support/shop.ts';

let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0 });
  stack = await startStack({ label: 'unchecked_rec', portoneUrl: sim.url, clock, env: { EXPIRY_GRACE_SECONDS: '2' } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, event, order, orderIs } = shop(() => stack, { prefix: 'ur', section: 'S' });

describe('an order marked unchecked during an outage', () => {
  it('is decided on PortOne\'s word as soon as the buyer pays again once PortOne is back, not when a backed-off job next asks', async () => {
    const id = await event({ seats: 1, ttl: 10 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    sim.setFaults({ rest_down: true });
    try {
      // The buyer's card is declined while PortOne's REST API is down. No notice URL: no webhook, so
      // the confirm's verification is the only job that would ever ask about the payment.
      const declined = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), outcome: 'failed' });
      expect(declined.confirm?.status).toBe(200);
      const verify = jobIds.verifyPayment(a.merchant_uid, 1, declined.payment.imp_uid);
      // The hold runs out and the expiry gives up on PortOne after the grace: the order is expired,
      // still marked unchecked.
      clock.advance(13_000);
      await waitFor(async () => (await stack.store.orderState(id, a.merchant_uid))?.status === 'expired', 20_000, 'the hold to end while PortOne is down');
      // The outage lasts until the verification's backoff has grown to 16 s (six failed asks).
      await waitFor(async () => {
        const job = await stack.api.deps.queues.payments.getJob(verify);
        return job !== undefined && job.attemptsMade >= 6 && (await job.getState()) === 'delayed';
      }, 60_000, 'the verification to back off');
    } finally {
      sim.setFaults({});
    }
    expect(await stack.redis.hget(eventKeys(id).order(a.merchant_uid), 'uh')).toBe('1');
    // PortOne answers again. The buyer pays again: refused while the order is unchecked, and that
    // refusal has the worker ask PortOne about the order's payments now.
    const refused = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), outcome: 'paid' });
    expect(refused.confirm?.status).toBe(409);
    expect(refused.confirm?.body).toMatchObject({ code: 'PAYMENT_UNCHECKED' });
    // Within seconds (the verification's own next ask is 16 s away), not after the backoff.
    await waitFor(async () => (await stack.redis.hexists(eventKeys(id).order(a.merchant_uid), 'uh')) === 0, 6_000, 'the order checked with PortOne');
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), outcome: 'paid' });
    expect(paid.confirm?.status, JSON.stringify(paid.confirm)).toBe(200);
    // No webhook in this test: the hold's verification finds the payment paid and tickets it.
    const d = await orderIs(a.merchant_uid, 'paid', 20_000);
    expect(d.tickets).toHaveLength(1);
  });
});
