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

  it('goes back with its own expiry, not the one the confirm pushed out, lapses on time, and a later forged hold is not kept as one', async () => {
    // A 5 s reservation on an event whose holds last 300 s: each approval pushes the expiry out by minutes.
    const id = await event({ seats: 1, reservation: 5 });
    const victim = await order(id, { buyer_id: 'victim', seats: ['S-1-1'] });
    const reservedUntil = (await stack.store.orderState(id, victim.merchant_uid))!.expiresAt!;
    for (let i = 0; i < 2; i++) {
      const forged = await confirm(impUid(), victim.merchant_uid, victim.amount);
      expect(forged.status, forged.text).toBe(200);
      expect(Date.parse(forged.body.hold_expires_at)).toBeGreaterThan(reservedUntil + 200_000);
      const after = await paymentsOff(id, victim.merchant_uid);
      expect(after).toMatchObject({ status: 'held', expiresAt: reservedUntil });
      // The record follows: the live hold row and the order (what its reader is shown) end then too.
      await waitFor(async () => {
        const db = stack.api.deps.db;
        const hold = await db.selectFrom('holds').select('expires_at').where('merchant_uid', '=', victim.merchant_uid).where('status', '=', 'live').executeTakeFirst();
        const row = await db.selectFrom('orders').select('hold_expires_at').where('merchant_uid', '=', victim.merchant_uid).executeTakeFirstOrThrow();
        return hold?.expires_at.getTime() === reservedUntil && row.hold_expires_at?.getTime() === reservedUntil;
      }, 10_000, 'the record to show the reservation\'s own expiry');
    }
    // It lapses when the reservation would have: the sweep expires it and the seat is on sale again.
    await waitFor(async () => (await stack.store.orderState(id, victim.merchant_uid))?.status === 'expired', 20_000, 'the reservation to expire');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
    // A forged confirm now takes a hold of its own (not a reservation's): released once PortOne is asked.
    expect((await confirm(impUid(), victim.merchant_uid, victim.amount)).status).toBe(200);
    expect((await paymentsOff(id, victim.merchant_uid)).status).toBe('released');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
  });

  it('a reservation whose payment was still open when it expired leaves no mark: a later forged hold is released', async () => {
    const id = await event({ seats: 1, reservation: 5, ttl: 5 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    // A genuine payment the buyer never finishes rides on the reservation until the hold expires.
    const open = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect(open.confirm?.status).toBe(200);
    await waitFor(async () => (await stack.store.orderState(id, a.merchant_uid))?.status === 'expired', 30_000, 'the hold to expire');
    expect((await confirm(impUid(), a.merchant_uid, a.amount)).status).toBe(200);
    expect((await paymentsOff(id, a.merchant_uid)).status).toBe('released');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
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
