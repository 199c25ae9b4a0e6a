/**
 * Made-up V1 confirms while PortOne's REST API is down (attack round 27B). Nothing can tell a made-up
 * payment from a real one then, so a confirm's hold stands until its expiry gives up on PortOne. Made-up
 * confirms used to renew that hold each time it was half gone, then take a new one once the expiry
 * ended it: about 43 minutes of places kept from buyers at the defaults, at no cost. Now an unsigned
 * confirm takes or renews no hold while the last one such a confirm took is unchecked with PortOne;
 * a genuine buyer's retry still rides on the live hold. PortOne is our simulator over HTTP; Redis,
 * Postgres and the worker are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { http, impUid, waitFor, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { eventKeys } from '@dropgate/redis';
import { shop } from './support/shop.ts';

let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'forged_outage', portoneUrl: sim.url, clock, env: { EXPIRY_GRACE_SECONDS: '2' } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, orderIs, availability } = shop(() => stack, { prefix: 'fo', section: 'S' });
const confirm = (imp: string, merchantUid: string, amount: number) =>
  http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: imp, merchant_uid: merchantUid, amount });
const PORTONE_DOWN = { webhook_retry_ms: 50, rest_down: true };
const PORTONE_UP = { webhook_retry_ms: 50 };

describe('made-up confirms while PortOne cannot be asked', () => {
  it('keep a hold once: no renewal, no new hold after it ends, the place goes to a paying buyer; once PortOne answers the order is decided as any other', async () => {
    const id = await event({ seats: 1, ttl: 10 });
    const m = await order(id, { buyer_id: 'mallory', seats: ['S-1-1'] });
    sim.setFaults(PORTONE_DOWN);
    try {
      const first = await confirm(impUid(), m.merchant_uid, m.amount);
      expect(first.status, first.text).toBe(200);
      const held = (await stack.store.orderState(id, m.merchant_uid))!;
      expect(held).toMatchObject({ status: 'held', seq: 1 });
      // 4 s of 10 left: a payment would renew the hold for the PG to approve in. Not on a made-up one's word.
      clock.advance(6_000);
      const renew = await confirm(impUid(), m.merchant_uid, m.amount);
      expect(renew.status, renew.text).toBe(409);
      expect(renew.body.code).toBe('PAYMENT_UNCHECKED');
      expect(await stack.store.orderState(id, m.merchant_uid)).toMatchObject({ status: 'held', seq: 1, expiresAt: held.expiresAt });
      // The hold runs out; the expiry gives up on PortOne after the grace (2 s here) and ends it.
      clock.advance(7_000);
      await waitFor(async () => (await stack.store.orderState(id, m.merchant_uid))?.status === 'expired', 20_000, 'the hold to end while PortOne is down');
      const again = await confirm(impUid(), m.merchant_uid, m.amount);
      expect(again.status, again.text).toBe(409);
      expect(again.body.code).toBe('PAYMENT_UNCHECKED');
      expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
      // A buyer who pays gets the place, PortOne down or not.
      const b = await order(id, { buyer_id: 'bob', seats: ['S-1-1'] });
      const paid = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
      expect(paid.confirm?.status).toBe(200);
      sim.setFaults(PORTONE_UP);
      await orderIs(b.merchant_uid, 'paid', 40_000);
    } finally {
      sim.setFaults(PORTONE_UP);
    }
    // PortOne answers again: the worker's verification finds the made-up payment unknown, and the
    // order's confirms are decided as any order's (the place is sold now).
    await waitFor(async () => (await stack.redis.hexists(eventKeys(id).order(m.merchant_uid), 'uh')) === 0, 40_000, 'the made-up payment checked with PortOne');
    const late = await confirm(impUid(), m.merchant_uid, m.amount);
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('SOLD_OUT');
  });

  it('a buyer retrying a declined card while PortOne is down rides on the live hold, and pays once PortOne answers', async () => {
    const id = await event({ seats: 1, ttl: 60 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    sim.setFaults(PORTONE_DOWN);
    try {
      const declined = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'failed' });
      expect(declined.confirm?.status).toBe(200);
      const retry = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
      expect(retry.confirm?.status, JSON.stringify(retry.confirm)).toBe(200);
      expect(await stack.store.orderState(id, a.merchant_uid)).toMatchObject({ status: 'held', seq: 1 });
    } finally {
      sim.setFaults(PORTONE_UP);
    }
    const d = await orderIs(a.merchant_uid, 'paid', 40_000);
    expect(d.tickets).toHaveLength(1);
  });
});
