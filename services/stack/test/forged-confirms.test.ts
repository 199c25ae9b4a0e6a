/**
 * Forged V1 confirms (unsigned, from the internet) against the buyer they aim at: a wrong amount is
 * refused every time and uses up none of the order's payments, and a payment that turns out not to be
 * real never costs a reserved buyer the places (hold_at "order"): the reservation stays theirs, as a
 * declined card leaves it. PortOne is our simulator over HTTP; Redis, Postgres and the worker are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { http, impUid, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { eventKeys } from '@dropgate/redis';
import { shop } from './support/shop.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'forged', portoneUrl: sim.url });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, orderIs, availability } = shop(() => stack, { prefix: 'fc', section: 'S' });
const confirm = (imp: string, merchantUid: string, amount: number) =>
  http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: imp, merchant_uid: merchantUid, amount });
const extend = (muid: string, token: string) =>
  http(stack.url, 'POST', `/orders/${muid}/extend`, undefined, { headers: { authorization: `Bearer ${token}` } });

/** Until no payment rides on the order's hold in Redis (the worker asked PortOne and took them off), or the hold ended. */
async function paymentsOff(id: string, muid: string) {
  return waitFor(async () => {
    const s = await stack.store.orderState(id, muid);
    return s !== null && (s.status !== 'held' || s.impUids.length === 0) ? s : null;
  }, 15_000, `the payments on ${muid} taken off`);
}

describe('a wrong amount uses up nothing', () => {
  it('three times the per-order bound of wrong-amount confirms, then the genuine one is approved', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const bound = stack.config.orderLimits.maxPaymentsPerOrder;
    const wrong = await Promise.all(Array.from({ length: 3 * bound }, (_, i) => confirm(impUid(), a.merchant_uid, a.amount - 1 - i)));
    expect(wrong.map((r) => r.body.code)).toEqual(wrong.map(() => 'AMOUNT_MISMATCH'));
    // Nothing remembered, nothing held.
    expect(await stack.redis.hlen(eventKeys(id).answers(a.merchant_uid))).toBe(0);
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    await orderIs(a.merchant_uid, 'paid');
  });
});

describe('a reservation outlives payments that are not real', () => {
  it('a forged confirm on a reserved order: the places stay the buyer\'s, nobody else gets them, the buyer extends and pays', async () => {
    const id = await event({ seats: 1, reservation: 120 });
    const victim = await order(id, { buyer_id: 'victim', seats: ['S-1-1'] });
    const forged = await confirm(impUid(), victim.merchant_uid, victim.amount);
    // Approved on the live reservation: PortOne's V1 confirm is unsigned, so only the worker's
    // question to PortOne can tell this payment is made up.
    expect(forged.status, forged.text).toBe(200);
    const after = await paymentsOff(id, victim.merchant_uid);
    expect(after.status).toBe('held');
    expect((await availability(id)).seats).toMatchObject({ held: 1, available: 0 });
    const other = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'other', seats: ['S-1-1'] });
    expect(other.status).toBe(409);
    expect(other.body.code).toBe('SOLD_OUT');
    // No payment on it any more: its buyer may extend it, and pay.
    const extended = await extend(victim.merchant_uid, victim.order_token);
    expect(extended.status, extended.text).toBe(200);
    const paid = await sim.pay({ merchant_uid: victim.merchant_uid, amount: victim.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    const d = await orderIs(victim.merchant_uid, 'paid');
    expect(d.tickets).toHaveLength(1);
  });

  it('a declined card keeps the reservation, and the buyer pays again on it', async () => {
    const id = await event({ pool: 2, reservation: 120 });
    const buyer = await order(id, { buyer_id: 'b', items: [{ pool: 'ga', quantity: 2 }] });
    const declined = await sim.pay({ merchant_uid: buyer.merchant_uid, amount: buyer.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'failed' });
    expect(declined.confirm?.status).toBe(200);
    const after = await paymentsOff(id, buyer.merchant_uid);
    expect(after.status).toBe('held');
    expect((await availability(id)).pools[0]).toMatchObject({ held: 2, available: 0 });
    // Nothing recorded it as released either.
    const row = await stack.api.deps.db.selectFrom('orders').select('status').where('merchant_uid', '=', buyer.merchant_uid).executeTakeFirstOrThrow();
    expect(row.status).not.toBe('released');
    const paid = await sim.pay({ merchant_uid: buyer.merchant_uid, amount: buyer.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    await orderIs(buyer.merchant_uid, 'paid');
  });

  it('a confirm-time hold still ends when its only payment is made up (no reservation to go back to)', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    expect((await confirm(impUid(), a.merchant_uid, a.amount)).status).toBe(200);
    const after = await paymentsOff(id, a.merchant_uid);
    expect(after.status).toBe('released');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
  });
});
