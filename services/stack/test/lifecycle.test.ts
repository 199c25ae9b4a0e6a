/**
 * Issue 3's lifecycle: every hold ends correctly whatever PortOne and the network do. PortOne is our
 * simulator over HTTP on loopback; Redis and Postgres are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { waitFor, TestClock } from '@dropgate/testkit';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';
import { startStack, type TestStack } from '@dropgate/stack';
import { forgetSeatSale } from '@dropgate/redis';
import { lifecycle } from '@dropgate/db';
import { sql } from 'kysely';

let sim: Simulator;
let stack: TestStack;
// Holds expire by this clock: tests move it past a hold's TTL instead of waiting it out.
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'lifecycle', portoneUrl: sim.url, clock, env: { EXPIRY_GRACE_SECONDS: '60' } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, availability, queuesIdle, orderIs, redisStatusIs } = shop(() => stack, { prefix: 'lc', section: 'L' });
/** Until the order's hold is taken in Redis (the buyer is in the payment window). */
const heldInRedis = (id: string, muid: string) => redisStatusIs(id, muid, 'held');
/** The invariants (no oversell, money and tickets match, ...) of the event, as the checker finds them broken. */
const broken = (id: string) => brokenInvariants(stack, sim, id);

describe('payment outcomes', () => {
  it('a paid payment becomes tickets, its order paid, its seats sold', async () => {
    const id = await event({ seats: 3, pool: 10 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'], items: [{ pool: 'ga', quantity: 2 }] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toHaveLength(3);
    expect(d.tickets.filter((t: { seat: string | null }) => t.seat === 'L-1-1')).toHaveLength(1);
    expect(d.tickets.filter((t: { pool: string | null }) => t.pool === 'ga').map((t: { serial: number }) => t.serial).sort()).toEqual([1, 2]);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'paid', amount: o.amount })]);
    const a = await availability(id);
    expect(a.seats).toMatchObject({ sold: 1, held: 0 });
    expect(a.pools[0]).toMatchObject({ sold: 2, held: 0, available: 8 });
    // The hold is recorded by the worker from its hand-off; if the payment beat it, it is recorded as committed.
    const hold = await waitFor(() => stack.api.deps.db.selectFrom('holds').select('status').where('merchant_uid', '=', o.merchant_uid).executeTakeFirst());
    expect(hold.status).toBe('committed');
  });

  it('duplicate webhooks are applied once', async () => {
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1', 'L-1-2'] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_duplicates: 4 } });
    await orderIs(o.merchant_uid, 'paid');
    await sim.sendWebhook(paid.payment.imp_uid, 'paid');
    await sim.settled();
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d.tickets).toHaveLength(2);
    const log = await stack.api.deps.db.selectFrom('order_events').select('type').where('merchant_uid', '=', o.merchant_uid).where('type', '=', 'paid').execute();
    expect(log).toHaveLength(1);
    expect(sim.ledger({ merchant_uid: o.merchant_uid }).webhooks.filter((w) => w.delivered).length).toBeGreaterThanOrEqual(5);
  });

  it('follows REST, not the webhook body: a "paid" webhook for a failed payment releases the hold', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    const failed = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'failed' });
    expect(failed.payment.status).toBe('failed');
    expect((await availability(id)).seats.held).toBe(1);
    await sim.sendWebhook(failed.payment.imp_uid, 'paid');
    const d = await orderIs(o.merchant_uid, 'released');
    expect(d.tickets).toEqual([]);
    expect((await availability(id)).seats).toMatchObject({ available: 1, held: 0, sold: 0 });
  });

  it('out of order (cancelled before paid): the state follows REST, applied once', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    // Paid, but its webhook is lost; the payment is then cancelled at PortOne and the stale "paid"
    // webhook arrives after the "cancelled" one.
    // (The loss is switched on globally for the payment window only: per-payment faults would also
    // swallow the later webhooks of that payment.)
    sim.setFaults({ webhook_retry_ms: 50, webhook_loss: 1 });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    sim.setFaults({ webhook_retry_ms: 50 });
    sim.cancelPayment(paid.payment.imp_uid, { reason: 'buyer asked' });
    await sim.settled();
    await sim.sendWebhook(paid.payment.imp_uid, 'paid');
    const d = await orderIs(o.merchant_uid, 'released');
    expect(d.tickets).toEqual([]);
    expect((await availability(id)).seats).toMatchObject({ available: 1, held: 0, sold: 0 });
    expect(sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.filter((c) => c.source === 'api')).toEqual([]);
  });

  it('a paid order cancelled at PortOne voids its tickets and returns its seats', async () => {
    const id = await event({ pool: 3 });
    const o = await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 2 }] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(o.merchant_uid, 'paid');
    const last = await order(id, { buyer_id: 'b2', items: [{ pool: 'ga', quantity: 1 }] });
    await sim.pay({ merchant_uid: last.merchant_uid, amount: last.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect((await orderIs(last.merchant_uid, 'paid')).tickets.map((t: { serial: number }) => t.serial)).toEqual([3]);
    sim.cancelPayment(paid.payment.imp_uid, { reason: 'console' });
    const d = await orderIs(o.merchant_uid, 'refunded');
    expect(d.tickets).toEqual([]);
    expect((await availability(id)).pools[0]).toMatchObject({ available: 2, sold: 1 });
    // The voided serials 1 and 2 are free again, below the highest one in use.
    const next = await order(id, { buyer_id: 'b3', items: [{ pool: 'ga', quantity: 2 }] });
    await sim.pay({ merchant_uid: next.merchant_uid, amount: next.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    const again = await orderIs(next.merchant_uid, 'paid');
    expect(again.tickets.map((t: { serial: number }) => t.serial).sort()).toEqual([1, 2]);
  });

  it('refunds a paid payment in another currency (in V1 the buyer\'s browser names it), and leaves the order open', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    // ₩10,000 paid as 10,000 of another currency through confirm: the amount matches, the price does not.
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, currency: 'USD', confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.payment.currency).toBe('USD');
    const cancels = await waitFor(async () => {
      const c = sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.filter((x) => x.source === 'api');
      return c.length > 0 ? c : null;
    }, 20_000, 'the refund');
    expect(cancels).toEqual([expect.objectContaining({ ok: true, checksum: o.amount })]);
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d.tickets).toEqual([]);
    expect(['pending', 'released']).toContain(d.status);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'cancelled', cancel_amount: o.amount })]);
    expect((await availability(id)).seats).toMatchObject({ available: 1, held: 0, sold: 0 });
    expect(await broken(id)).toEqual([]);
  });

  it('a paid order partly cancelled at PortOne: the rest is refunded and its tickets voided (money and tickets match)', async () => {
    const id = await event({ pool: 3 });
    const o = await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 2 }] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect((await orderIs(o.merchant_uid, 'paid')).tickets).toHaveLength(2);
    sim.cancelPayment(paid.payment.imp_uid, { amount: 5_000, reason: 'console: one ticket' });
    expect((await orderIs(o.merchant_uid, 'refunded')).tickets).toEqual([]);
    // The tickets are voided first (the order is refunded then), the rest is cancelled at PortOne after
    // (attack round 28A): the record shows the payment cancelled once that is done. One CI run read it
    // between the two.
    await waitFor(async () => sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.some((c) => c.source === 'api'), 20_000, 'the refund of the rest');
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('refunded');
    expect(d.tickets).toEqual([]);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'cancelled', cancel_amount: o.amount })]);
    // The rest went back once, through the cancel API, with the checksum of what was left.
    expect(sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.filter((c) => c.source === 'api')).toEqual([
      expect.objectContaining({ ok: true, amount: o.amount - 5_000, checksum: o.amount - 5_000 }),
    ]);
    expect((await availability(id)).pools[0]).toMatchObject({ available: 3, sold: 0, held: 0 });
    expect(await broken(id)).toEqual([]);
  });

  it('a payment partly cancelled before it was settled gets no tickets: the rest is refunded', async () => {
    const id = await event({ pool: 3 });
    const o = await order(id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 2 }] });
    // A PG that skips confirm, its webhook late; the merchant cancels part of it meanwhile.
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_delay_ms: 1_500 } });
    sim.cancelPayment(paid.payment.imp_uid, { amount: 4_000, reason: 'console' });
    await waitFor(async () => sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.some((c) => c.source === 'api' && c.ok) || null, 20_000, 'the refund');
    await sim.settled();
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d.tickets).toEqual([]);
    expect(d.status).toBe('pending');
    expect(d.payments).toEqual([expect.objectContaining({ status: 'cancelled', cancel_amount: o.amount })]);
    expect((await availability(id)).pools[0]).toMatchObject({ available: 3, sold: 0, held: 0 });
    expect(await broken(id)).toEqual([]);
  });

  it('a refund decided and not done (its cancel failed and its job is gone) is asked about again and finished', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(o.merchant_uid, 'paid');
    // A second payment of the paid order (a PG without confirm), its webhook lost. dropgate decided to
    // refund it a while ago; then its cancel failed, and its job waits out a long backoff or is gone.
    const second = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, outcome: 'paid', faults: { webhook_loss: 1 } });
    const imp = second.payment.imp_uid;
    const db = stack.api.deps.db;
    expect(await lifecycle.claimRefund(db, { impUid: imp, merchantUid: o.merchant_uid, eventId: id, amount: o.amount, reason: 'duplicate_payment' })).toBe(true);
    expect(await stack.worker!.retryRefunds()).not.toContain(imp);
    await sql`update refunds set created_at = now() - interval '2 minutes' where imp_uid = ${imp}`.execute(db);
    // PortOne still down: the ask is one try, which fails and leaves nothing to retry on a backoff of
    // its own (one more would pile up every minute while PortOne refuses); asked again within the
    // minute, its id is taken and nothing is added (two tries a minute otherwise).
    const retries = async (states: ('waiting' | 'active' | 'delayed' | 'prioritized' | 'failed')[]) =>
      (await stack.api.deps.queues.payments.getJobs(states)).filter((j) => j.id?.includes(`-refund-${imp}-`));
    // The retry's job id carries its minute (its round, by the stack's clock): the calls below start at
    // the top of a minute, so they share one (a minute's boundary between them, a second or two under
    // load, made a second job and failed the test once).
    clock.advance(60_000 - (clock.now() % 60_000));
    sim.setFaults({ webhook_retry_ms: 50, rest_down: true });
    try {
      expect(await stack.worker!.retryRefunds()).toContain(imp);
      await waitFor(async () => (await retries(['failed'])).length === 1 || null, 20_000, 'the retry failed');
      expect(await retries(['waiting', 'active', 'delayed', 'prioritized'])).toEqual([]);
      expect((await lifecycle.findRefund(db, imp))?.status).toBe('requested');
      await stack.worker!.retryRefunds();
      expect(await retries(['waiting', 'active', 'delayed', 'prioritized'])).toEqual([]);
      expect(await retries(['failed'])).toHaveLength(1);
    } finally {
      sim.setFaults({ webhook_retry_ms: 50 });
    }
    // The next minute's round asks again, and PortOne answers.
    clock.advance(60_000);
    expect(await stack.worker!.retryRefunds()).toContain(imp);
    await waitFor(async () => (await lifecycle.findRefund(db, imp))?.status === 'done', 20_000, 'the refund done');
    expect(sim.ledger({ imp_uid: imp }).cancels.filter((c) => c.source === 'api')).toEqual([expect.objectContaining({ ok: true, checksum: o.amount })]);
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('paid');
    expect(d.tickets).toHaveLength(1);
    expect(await stack.worker!.retryRefunds()).not.toContain(imp);
    expect(await broken(id)).toEqual([]);
  });

  it('refunds a paid payment whose amount differs from the order, and leaves the order open', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    // A PG that never calls confirm, and a tampered amount.
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount - 9_000, notice_url: noticeUrl(), outcome: 'paid' });
    const cancels = await waitFor(async () => {
      const c = sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.filter((x) => x.source === 'api');
      return c.length > 0 ? c : null;
    }, 20_000, 'the refund');
    expect(cancels).toEqual([expect.objectContaining({ ok: true, checksum: o.amount - 9_000 })]);
    await queuesIdle();
    // It could never pay the order: the order is not its to close.
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('pending');
    expect(d.tickets).toEqual([]);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'cancelled', cancel_amount: o.amount - 9_000 })]);
    expect((await availability(id)).seats).toMatchObject({ available: 1, sold: 0 });
  });
});

describe('expiry and late payments', () => {
  it('a failure without a webhook: the hold expires at its TTL and the seats go back on sale', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect((await availability(id)).seats.held).toBe(1);
    clock.advance(5_000);
    const d = await orderIs(o.merchant_uid, 'expired', 15_000);
    expect(d.tickets).toEqual([]);
    expect((await availability(id)).seats).toMatchObject({ available: 1, held: 0 });
    // Recorded live and then expired, or (when the expiry came first) recorded as ended: either way expired.
    const hold = await waitFor(() => stack.api.deps.db.selectFrom('holds').select('status').where('merchant_uid', '=', o.merchant_uid).executeTakeFirst(), 10_000, 'the hold row');
    expect(hold.status).toBe('expired');
  });

  it('a lost paid webhook: the expiry check finds the payment paid and commits it', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    clock.advance(5_000);
    const d = await orderIs(o.merchant_uid, 'paid', 15_000);
    expect(d.tickets).toHaveLength(1);
    expect((await availability(id)).seats).toMatchObject({ sold: 1, held: 0 });
  });

  it('a payment without confirm and without webhook: the expiry asks PortOne for every payment of the order and commits it', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    // The buyer's first window takes the hold and is abandoned; a second attempt goes through a PG
    // that cannot use confirm, is paid, and its webhook is lost: nothing told dropgate about it.
    await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    await heldInRedis(id, o.merchant_uid);
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    expect(paid.confirm).toBeNull();
    clock.advance(5_000);
    const d = await orderIs(o.merchant_uid, 'paid', 15_000);
    expect(d.tickets).toHaveLength(1);
    expect(d.payments).toEqual(expect.arrayContaining([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'paid' })]));
    expect(sim.ledger({ merchant_uid: o.merchant_uid }).cancels).toEqual([]);
  });

  it('paid after expiry with the seats still free: sold', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const o = await order(id, { buyer_id: 'b1', seats: ['L-1-1'] });
    // The buyer takes 4 s in the payment window; the hold's 5 s pass at once on the clock meanwhile.
    const late = sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid', buyer_delay_ms: 4_000 });
    await heldInRedis(id, o.merchant_uid);
    clock.advance(5_000);
    await orderIs(o.merchant_uid, 'expired', 15_000);
    await late;
    const d = await orderIs(o.merchant_uid, 'paid', 15_000);
    expect(d.tickets).toHaveLength(1);
    expect((await availability(id)).seats).toMatchObject({ sold: 1, held: 0, available: 0 });
  });

  it('paid after expiry with the seats resold: refunded once through the cancel API with the right checksum', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const a = await order(id, { buyer_id: 'slow', seats: ['L-1-1'] });
    const late = sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid', buyer_delay_ms: 4_000, faults: { webhook_duplicates: 2 } });
    await heldInRedis(id, a.merchant_uid);
    clock.advance(5_000);
    await orderIs(a.merchant_uid, 'expired', 15_000);
    const b = await order(id, { buyer_id: 'fast', seats: ['L-1-1'] });
    const bPaid = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(bPaid.confirm?.status).toBe(200);
    await orderIs(b.merchant_uid, 'paid');
    const aPaid = await late;
    const d = await orderIs(a.merchant_uid, 'refunded', 15_000);
    expect(d.tickets).toEqual([]);
    expect(d.status_reason).toMatch(/sold/);
    await sim.settled();
    await queuesIdle();
    const cancels = sim.ledger({ imp_uid: aPaid.payment.imp_uid }).cancels;
    expect(cancels).toHaveLength(1);
    expect(cancels[0]).toMatchObject({ ok: true, checksum: a.amount, source: 'api' });
    expect(sim.getPayment(aPaid.payment.imp_uid)).toMatchObject({ status: 'cancelled', cancel_amount: a.amount });
    expect((await detail(b.merchant_uid)).tickets).toHaveLength(1);
  });
});

/** Failed attempts of expiry jobs so far (the worker's own metric). */
async function expiryFailures(): Promise<number> {
  const m = await stack.worker!.ctx.metrics.jobFailures.get();
  return m.values.filter((v) => v.labels.queue === 'expiry').reduce((n, v) => n + v.value, 0);
}

describe('PortOne REST down for a while', () => {
  it('retries, decides nothing on a guess, and ends right once PortOne is back', async () => {
    const id = await event({ seats: 2, ttl: 5 });
    const paidOrder = await order(id, { buyer_id: 'p', seats: ['L-1-1'] });
    const abandoned = await order(id, { buyer_id: 'a', seats: ['L-1-2'] });
    sim.setFaults({ webhook_retry_ms: 50, rest_down: true });
    try {
      await sim.pay({ merchant_uid: paidOrder.merchant_uid, amount: paidOrder.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
      await sim.pay({ merchant_uid: abandoned.merchant_uid, amount: abandoned.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
      // Past both holds' expiry, with PortOne unreachable: the expiry jobs run and fail (no guess),
      // nothing is released, nothing ticketed.
      const failuresBefore = await expiryFailures();
      clock.advance(5_000);
      await waitFor(async () => (await expiryFailures()) >= failuresBefore + 2, 20_000, 'both expiry jobs to fail while PortOne is down');
      expect((await detail(paidOrder.merchant_uid)).status).toBe('held');
      expect((await detail(abandoned.merchant_uid)).status).toBe('held');
      expect((await availability(id)).seats).toMatchObject({ held: 2, sold: 0 });
    } finally {
      sim.setFaults({ webhook_retry_ms: 50 });
    }
    const d = await orderIs(paidOrder.merchant_uid, 'paid', 30_000);
    expect(d.tickets).toHaveLength(1);
    await orderIs(abandoned.merchant_uid, 'expired', 30_000);
    expect((await availability(id)).seats).toMatchObject({ held: 0, sold: 1, available: 1 });
  });
});

describe('Postgres as the last guard', () => {
  it('refuses a ticket Redis wrongly sold, refunds it once, counts it and rebuilds the event', async () => {
    const id = await event({ seats: 1, pool: 1 });
    const a = await order(id, { buyer_id: 'first', seats: ['L-1-1'], items: [{ pool: 'ga', quantity: 1 }] });
    await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(a.merchant_uid, 'paid');
    // Redis loses track of the sale (a stale replica after failover, a manual edit): the seat looks free.
    await forgetSeatSale(stack.redis, id, 'L-1-1');
    const b = await order(id, { buyer_id: 'second', seats: ['L-1-1'] });
    const paid = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    const d = await orderIs(b.merchant_uid, 'refunded');
    expect(d.tickets).toEqual([]);
    await sim.settled();
    expect(sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels).toEqual([expect.objectContaining({ ok: true, checksum: b.amount, source: 'api' })]);
    const metrics = await stack.worker!.ctx.metrics.oversellsPrevented.get();
    expect(metrics.values.find((v) => v.labels.event === id)?.value).toBe(1);
    // The forced rebuild puts Redis back in line with the record (GET /events answers 503 while it runs): the seat is sold to the first buyer.
    await waitFor(async () => (await stack.store.seatStates(id, ['L-1-1']))[0] === 'sold' && (await availability(id))?.seats.sold === 1, 15_000, 'the rebuild');
    expect((await detail(a.merchant_uid)).tickets).toHaveLength(2);
  });
});
