/**
 * Issue 8: the money path against forged, replayed, foreign and racing input. Every case here was a
 * way to make money and tickets disagree (or to cost dropgate unbounded state) before the fix. PortOne
 * is our simulator over HTTP; Redis and Postgres are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { http, impUid, waitFor, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { eventKeys } from '@dropgate/redis';

let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'integrity', portoneUrl: sim.url, clock, env: { EXPIRY_GRACE_SECONDS: '2' } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, orderIs, availability, queuesIdle } = shop(() => stack, { prefix: 'ig', section: 'S' });
const confirm = (imp: string, merchantUid: string, amount?: number) =>
  http(stack.url, 'POST', '/portone/v1/confirm', amount === undefined ? { imp_uid: imp, merchant_uid: merchantUid } : { imp_uid: imp, merchant_uid: merchantUid, amount });
const webhook = (body: Record<string, unknown>) => http(stack.url, 'POST', '/portone/v1/webhook', body);
const redisStatus = async (id: string, muid: string) => (await stack.store.orderState(id, muid))?.status;

describe('forged webhooks cannot stop the genuine one (defect 1)', () => {
  it('a forged "cancelled" naming a real payment and a made-up or foreign order does not swallow PortOne\'s real cancel', async () => {
    const id = await event({ seats: 3 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const b = await order(id, { buyer_id: 'b', seats: ['S-1-2'] });
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(a.merchant_uid, 'paid');
    const imp = paid.payment.imp_uid;
    // A made-up order is refused outright; another (real) order's job finds the payment is not its own.
    const madeUp = await webhook({ imp_uid: imp, merchant_uid: `${id}.AAAAAAAAAAA`, status: 'cancelled' });
    expect(madeUp.status).toBe(404);
    expect((await webhook({ imp_uid: imp, merchant_uid: b.merchant_uid, status: 'cancelled' })).status).toBe(200);
    expect((await webhook({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'cancelled' })).status).toBe(200);
    // Let those forged jobs finish: afterwards they must not make the genuine webhook a "duplicate".
    await waitFor(async () => {
      const c = await stack.api.deps.queues.payments.getJobCounts('waiting', 'active', 'delayed');
      return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0;
    }, 20_000, 'the forged webhooks to be processed');
    expect((await detail(a.merchant_uid)).status).toBe('paid');
    expect(await redisStatus(id, b.merchant_uid)).toBe('pending');

    sim.cancelPayment(imp, { reason: 'buyer asked the PG' });
    const d = await orderIs(a.merchant_uid, 'refunded');
    expect(d.tickets).toEqual([]);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: imp, status: 'cancelled', cancel_amount: a.amount })]);
  });

  it('a forged "paid" naming another order does not delay the real paid webhook', async () => {
    const id = await event({ seats: 2 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const b = await order(id, { buyer_id: 'b', seats: ['S-1-2'] });
    const paid = await sim.pay({
      merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid',
      faults: { webhook_delay_ms: 300 },
    });
    // Before PortOne's webhook arrives, a forger claims the payment as paid for order b.
    expect((await webhook({ imp_uid: paid.payment.imp_uid, merchant_uid: b.merchant_uid, status: 'paid' })).status).toBe(200);
    // The hold lasts 300 s: the real webhook must settle it long before that.
    await orderIs(a.merchant_uid, 'paid', 10_000);
    expect((await detail(b.merchant_uid)).status).toBe('pending');
  });
});

describe('confirm answers are replayed only for the same request (defect 2)', () => {
  it('an imp_uid approved for one order is decided afresh for another, and verification releases that hold', async () => {
    const id = await event({ seats: 2 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const b = await order(id, { buyer_id: 'b', seats: ['S-1-2'] });
    const real = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), outcome: 'abandoned' });
    expect(real.confirm?.status).toBe(200);
    const aExpiry = (real.confirm?.body as { hold_expires_at: string }).hold_expires_at;
    const foreign = await confirm(real.payment.imp_uid, b.merchant_uid, 1);
    expect(foreign.status).toBe(409);
    expect(foreign.body.code).toBe('AMOUNT_MISMATCH');
    const reused = await confirm(real.payment.imp_uid, b.merchant_uid, b.amount);
    // Its own decision, not a's replayed answer...
    expect(reused.status).toBe(200);
    expect(reused.body.hold_expires_at).not.toBe(aExpiry);
    // ...and PortOne says the payment is a's: b's hold is released within seconds.
    await waitFor(async () => (await redisStatus(id, b.merchant_uid)) === 'released', 10_000, 'b to be released');
    expect((await availability(id)).seats).toMatchObject({ held: 1, available: 1 });
    expect(await redisStatus(id, a.merchant_uid)).toBe('held');
  });

  it('a refusal for a made-up order or a wrong amount does not poison the genuine confirm', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const imp = impUid();
    expect((await confirm(imp, `${id}.BBBBBBBBBBB`, a.amount)).body.code).toBe('ORDER_NOT_FOUND');
    expect((await confirm(imp, a.merchant_uid, a.amount + 1)).body.code).toBe('AMOUNT_MISMATCH');
    const genuine = await confirm(imp, a.merchant_uid, a.amount);
    expect(genuine.status).toBe(200);
    // The genuine request replays its own answer; the tampered one keeps being refused.
    expect((await confirm(imp, a.merchant_uid, a.amount)).body).toEqual(genuine.body);
    expect((await confirm(imp, a.merchant_uid)).body).toEqual(genuine.body);
    expect((await confirm(imp, a.merchant_uid, 7)).body.code).toBe('AMOUNT_MISMATCH');
    // Nothing was stored for the made-up order.
    expect(await stack.redis.exists(eventKeys(id).answers(`${id}.BBBBBBBBBBB`), eventKeys(id).order(`${id}.BBBBBBBBBBB`))).toBe(0);
  });
});

describe('what a caller can make dropgate store or call is bounded (defect 3)', () => {
  it('a made-up imp_uid holds seats only until the worker asks PortOne (seconds, not the hold TTL)', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const forged = await confirm(impUid(), a.merchant_uid, a.amount);
    expect(forged.status).toBe(200);
    expect(Date.parse(forged.body.hold_expires_at)).toBeGreaterThan(Date.now() + 200_000);
    await waitFor(async () => (await redisStatus(id, a.merchant_uid)) === 'released', 10_000, 'the forged hold to be released');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
    // The genuine buyer can then pay.
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    await orderIs(a.merchant_uid, 'paid');
  });

  it('a payment PortOne knows for another amount releases the hold it took', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    // The confirm body carries no amount (the old documented shape), the payment is for 100 less.
    const cheap = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount - 100, confirm_url: confirmUrl(), confirm_body: { amount: null }, outcome: 'abandoned' });
    expect(cheap.confirm?.status).toBe(200);
    await waitFor(async () => (await redisStatus(id, a.merchant_uid)) === 'released', 10_000, 'the hold to be released');
    expect((await availability(id)).seats.available).toBe(1);
  });

  it('thousands of forged confirms on one order store and call at most the per-order bound', async () => {
    const id = await event({ seats: 2 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const before = sim.ledger().confirms.length;
    const restCallsBefore = await restCalls();
    const answers = await Promise.all(Array.from({ length: 400 }, () => confirm(impUid(), a.merchant_uid, a.amount)));
    const approved = answers.filter((r) => r.status === 200).length;
    expect(approved).toBeGreaterThan(0);
    expect(approved).toBeLessThanOrEqual(stack.config.orderLimits.maxPaymentsPerOrder);
    expect(answers.filter((r) => r.status === 429).every((r) => r.body.code === 'TOO_MANY_ATTEMPTS')).toBe(true);
    expect(await stack.redis.hlen(eventKeys(id).answers(a.merchant_uid))).toBeLessThanOrEqual(stack.config.orderLimits.maxPaymentsPerOrder);
    // Made-up orders store nothing at all.
    await Promise.all(Array.from({ length: 200 }, (_, i) => confirm(impUid(), `${id}.C${String(i).padStart(10, '0')}`, 1)));
    let cursor = '0';
    const keys: string[] = [];
    do {
      const [next, found] = await stack.redis.scan(cursor, 'MATCH', `{ev:${id}}:o:${id}.C*`, 'COUNT', 1000);
      cursor = next;
      // The genuine order's own keys match too when its random id happens to start with C.
      keys.push(...found.filter((k) => !k.includes(a.merchant_uid)));
    } while (cursor !== '0');
    // Named, with their contents, so a failure says what was stored and by whom.
    const stored = await Promise.all(keys.map(async (k) => `${k} (${await stack.redis.type(k)}): ${JSON.stringify(await stack.redis.hgetall(k).catch(() => null))}`));
    expect(stored).toEqual([]);
    // Every approved forgery is verified once and taken off the hold; the REST calls are bounded too.
    await waitFor(async () => (await redisStatus(id, a.merchant_uid)) !== 'held', 15_000, 'the forged holds to end');
    expect(sim.ledger().confirms.length).toBe(before);
    const calls = (await restCalls()) - restCallsBefore;
    expect(calls).toBeLessThanOrEqual(stack.config.orderLimits.maxPaymentsPerOrder * stack.config.orderLimits.maxHoldsPerOrder * 3);
  });
});

/** PortOne payment lookups the worker made so far, alone or shared (its own metric). */
async function restCalls(): Promise<number> {
  const metric = await stack.worker!.ctx.metrics.portoneRequests.get();
  return metric.values.filter((v) => v.labels.endpoint === 'getPayment' || v.labels.endpoint === 'getPayments').reduce((n, v) => n + v.value, 0);
}

describe('webhook metric labels come from a closed set (defect 4)', () => {
  it('junk statuses do not make new series', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    await Promise.all(Array.from({ length: 50 }, (_, i) => webhook({ imp_uid: impUid(), merchant_uid: a.merchant_uid, status: `junk_${String.fromCharCode(97 + (i % 26))}${i}`.replace(/\d/g, 'x') })));
    await Promise.all(Array.from({ length: 20 }, (_, i) => webhook({ imp_uid: impUid(), merchant_uid: `${id}.D${String(i).padStart(10, '0')}`, status: `zz_${'q'.repeat(i + 1)}` })));
    const metric = await stack.api.deps.metrics.webhooks.get();
    const statuses = new Set(metric.values.map((v) => v.labels.status));
    for (const s of statuses) expect(['ready', 'paid', 'failed', 'cancelled', 'other']).toContain(s);
  });
});

describe('a refunded order is closed (defect 5)', () => {
  it('a bare confirm cannot hold a refunded order again, and its refund is kept', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(a.merchant_uid, 'paid');
    sim.cancelPayment(paid.payment.imp_uid);
    await orderIs(a.merchant_uid, 'refunded');
    const again = await confirm(impUid(), a.merchant_uid, a.amount);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('ORDER_CLOSED');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
    expect((await detail(a.merchant_uid)).status).toBe('refunded');
  });
});

describe('a refund is recorded as a refund (defect 6)', () => {
  it('paid with a wrong amount while PortOne REST is down: refunded once, the payment row shows the cancel, the order stays open', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    sim.setFaults({ webhook_retry_ms: 50, rest_down: true });
    try {
      const paid = await sim.pay({
        merchant_uid: a.merchant_uid, amount: a.amount - 500, confirm_url: confirmUrl(), confirm_body: { amount: null }, notice_url: noticeUrl(), outcome: 'paid',
      });
      expect(paid.confirm?.status).toBe(200);
      // The hold runs out and the expiry gives up on PortOne after the grace period (2 s here).
      clock.advance(8_000);
      await waitFor(async () => (await redisStatus(id, a.merchant_uid)) !== 'held', 20_000, 'the hold to end while PortOne is down');
    } finally {
      sim.setFaults({ webhook_retry_ms: 50 });
    }
    const d = await waitFor(async () => {
      const x = await detail(a.merchant_uid);
      return x.payments.some((p: { status: string }) => p.status === 'cancelled') ? x : null;
    }, 30_000, 'the refund in the record');
    // The hold ended at its expiry; a payment of another amount could never pay the order, so its
    // refund leaves the order as the expiry left it (open for a payment of its own amount).
    expect(d.status).toBe('expired');
    expect(d.tickets).toEqual([]);
    expect(d.payments).toEqual([expect.objectContaining({ status: 'cancelled', cancel_amount: a.amount - 500 })]);
    const cancels = sim.ledger({ merchant_uid: a.merchant_uid }).cancels.filter((c) => c.ok);
    expect(cancels).toHaveLength(1);
    // And nothing moves it again: the late-payment watch and the expiry leave it alone.
    await queuesIdle();
    expect(sim.ledger({ merchant_uid: a.merchant_uid }).cancels.filter((c) => c.ok)).toHaveLength(1);
    const log = await stack.api.deps.db.selectFrom('order_events').select(['type', 'data']).where('merchant_uid', '=', a.merchant_uid).where('type', '=', 'status').execute();
    expect(log.at(-1)?.data).toMatchObject({ to: 'expired', cause: 'hold_expired' });
  });
});

describe('form-encoded confirm (defect 10)', () => {
  it('reads a digit-only amount as a number: the right one approves, a wrong one is a mismatch, junk is a 400', async () => {
    const id = await event({ seats: 2 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const form = (amount: string) => http(stack.url, 'POST', '/portone/v1/confirm', undefined, {
      raw: `imp_uid=${impUid()}&merchant_uid=${encodeURIComponent(a.merchant_uid)}&amount=${amount}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const wrong = await form(String(a.amount + 1));
    expect(wrong.status).toBe(409);
    expect(wrong.body.code).toBe('AMOUNT_MISMATCH');
    const junk = await form('12abc');
    expect(junk.status).toBe(400);
    const right = await form(String(a.amount));
    expect(right.status, right.text).toBe(200);
  });
});

describe('Redis losing its data (found by npm run chaos, seed 1016835795)', () => {
  it('asks PortOne for every payment of a pending order, not only the latest: a paid one whose webhook was lost behind a later failed one', async () => {
    const id = await event({ seats: 2 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    // A PG that cannot use confirm takes the money, and its webhook never arrives.
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    // A second attempt on the same order then fails: the latest payment PortOne's `find` would return.
    const failed = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, notice_url: noticeUrl(), outcome: 'failed' });
    expect([paid.payment.status, failed.payment.status]).toEqual(['paid', 'failed']);
    await sim.settled();
    expect((await detail(a.merchant_uid)).status).toBe('pending');
    // Redis loses the event (and whatever jobs it queued); the worker rebuilds it from Postgres and
    // asks PortOne about every pending order.
    await stack.store.deleteEvent(id);
    const d = await orderIs(a.merchant_uid, 'paid', 30_000);
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    expect(d.payments).toEqual(expect.arrayContaining([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'paid' })]));
    expect(sim.ledger({ merchant_uid: a.merchant_uid }).cancels).toEqual([]);
  });

  it('asks PortOne about the payments of paid orders too: a second payment whose webhooks never got through is refunded (found by npm run chaos, seed 852966458)', async () => {
    const id = await event({ seats: 2 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const first = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(a.merchant_uid, 'paid');
    // The buyer pays again through a PG that cannot confirm; every webhook of it is lost.
    const second = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    await sim.settled();
    await stack.store.deleteEvent(id);
    // The rebuild's reconciliation finds it and refunds it as a duplicate; the order keeps its first payment.
    await waitFor(async () => sim.ledger({ imp_uid: second.payment.imp_uid }).cancels.find((c) => c.ok) ?? null, 30_000, 'the duplicate to be refunded');
    const d = await waitFor(async () => {
      const x = await detail(a.merchant_uid);
      return x.payments.some((p: { imp_uid: string; status: string }) => p.imp_uid === second.payment.imp_uid && p.status === 'cancelled') ? x : null;
    }, 15_000, 'the refund in the record');
    expect(d.status).toBe('paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    expect(sim.ledger({ imp_uid: first.payment.imp_uid }).cancels).toEqual([]);
    expect(sim.ledger({ imp_uid: second.payment.imp_uid }).cancels.filter((c) => c.ok)).toHaveLength(1);
  });
});
