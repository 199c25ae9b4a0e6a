/**
 * The ledger sweep against a list that is long or moves while it is read (attack round 21A):
 * - a sweep cut short at its page bound went on from its overlap, two minutes back, so a steady stream
 *   of payments made every later sweep read the same pages and the cursor never moved again;
 * - pages asked by number skipped a payment whenever an earlier one left the list meanwhile (refunded,
 *   by the sweep's own jobs among others);
 * - a payment partly cancelled at the console (its webhook lost) was counted as settled;
 * - a cursor saved under a clock that ran ahead hid everything up to it;
 * - one API refusing (a revoked V2 secret) failed the reconcile of every order of the other.
 * The simulator's clock is moved so that payments are paid at the instants a test needs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { TestClock, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import type { PaymentOutcomeJob } from '@dropgate/jobs';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

/**
 * PortOne's clock: an hour back, moved on by hand, so every payment is inside the sweep's window; held
 * at one instant while a test makes the payments of one instant (161 payments over HTTP took over a
 * second on a loaded machine, and the instant a test pages inside was two).
 */
class PortOneClock extends TestClock {
  #held: number | null = null;
  override now(): number {
    return this.#held ?? super.now();
  }
  hold(): void {
    this.#held = super.now();
  }
  release(): void {
    this.#held = null;
  }
}
const portoneClock = new PortOneClock();
portoneClock.advance(-3_600_000);
let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  // A V2 secret of its own, so the stack below that has another is refused.
  sim = await startSimulator({ port: 0, clock: portoneClock, v2ApiSecret: 'the-store-s-real-secret-0000', faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'ledgerpg', portoneUrl: sim.url, timers: false });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, orderIs, queuesIdle } = shop(() => stack, { prefix: 'lp', section: 'P' });
const broken = (id: string) => brokenInvariants(stack, sim, id);
const sweepV1 = async (opts: { pagesPerSweep?: number } = {}) =>
  (await stack.worker!.sweepLedger({ settleDelayMs: 0, ...opts })).find((s) => s.api === 'v1')!;
/**
 * The next sweep reads from PortOne's now on (its cursor set one overlap, two minutes, past it): what a
 * test pays from here is its window, whatever earlier tests left.
 */
const windowFromHere = async () => {
  // A second on, so no payment of an earlier test shares the window's first instant.
  portoneClock.advance(1_000);
  await stack.redis.hset(`${stack.prefix}:ledger`, 'v1', String(portoneClock.now() + 120_000), 'v1:more', '0');
};
/** `n` paid payments of another shop's orders, `gapMs` of PortOne's time apart. */
async function foreign(n: number, gapMs: number, tag: string): Promise<string[]> {
  const imps: string[] = [];
  for (let i = 0; i < n; i++) {
    portoneClock.advance(gapMs);
    imps.push((await sim.pay({ merchant_uid: `other-shop.${tag}${i}`, amount: 1000, outcome: 'paid' })).payment.imp_uid);
  }
  return imps;
}
/** A pending order paid without a confirm, its webhook lost. */
async function lostPayment(id: string, buyer: string, seat: string) {
  const o = await order(id, { buyer_id: buyer, seats: [seat] });
  portoneClock.advance(1_000);
  const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
  await sim.settled();
  return { o, imp: paid.payment.imp_uid };
}

/**
 * In one new second of PortOne's time: 100 payments of another shop, then a pending order's payment
 * without confirm whose webhook is lost (the instant's 101st), then `after` more.
 */
async function lostInsideInstant(id: string, tag: string, after: number) {
  portoneClock.advance(1_000);
  const o = await order(id, { buyer_id: tag, seats: ['P-1-1'] });
  portoneClock.hold();
  try {
    const group = await foreign(100, 0, `${tag}a`);
    const lost = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid', faults: { webhook_loss: 1 } });
    await foreign(after, 0, `${tag}b`);
    await sim.settled();
    return { group, o, imp: lost.payment.imp_uid };
  } finally {
    portoneClock.release();
  }
}

/** The order ends paid (its lost payment found and settled), and every invariant of the event holds. */
async function expectPaidAndWhole(id: string, merchantUid: string): Promise<void> {
  await orderIs(merchantUid, 'paid');
  await queuesIdle();
  expect(await broken(id)).toEqual([]);
}

type PaymentGateway = NonNullable<TestStack['worker']>['ctx']['portone'];

/** Runs `work` with `onPage` called after each page the worker's sweep reads from PortOne (over HTTP, as ever). */
async function afterEachPage<T>(onPage: (args: Parameters<PaymentGateway['listPaidPayments']>, page: Awaited<ReturnType<PaymentGateway['listPaidPayments']>>) => void, work: () => Promise<T>): Promise<T> {
  const gateway = stack.worker!.ctx.portone;
  const list = gateway.listPaidPayments.bind(gateway);
  gateway.listPaidPayments = async (...args: Parameters<typeof list>) => {
    const page = await list(...args);
    onPage(args, page);
    return page;
  };
  try {
    return await work();
  } finally {
    gateway.listPaidPayments = list;
  }
}

describe('the ledger sweep over a long or moving list', () => {
  it('cut short at its page bound, the next sweep goes on from where it stopped: a stream of payments does not stop the cursor', async () => {
    await windowFromHere();
    const id = await event({ seats: 2 });
    // 250 payments a second apart, then 250 within one second, then the lost one: at one page a sweep.
    await foreign(250, 1_000, 'a');
    await foreign(250, 0, 'b');
    const { o, imp } = await lostPayment(id, 'a', 'P-1-1');
    let found = false;
    let sweeps = 0;
    // Seven pages a sweep: the instant of 250 takes three, and three more to read it again.
    for (; sweeps < 8 && !found; sweeps++) found = (await sweepV1({ pagesPerSweep: 7 })).queued.includes(imp);
    expect(found).toBe(true);
    // 501 payments, 100 a page, the shared instant read twice: two sweeps of seven pages, or three.
    expect(sweeps).toBeLessThanOrEqual(3);
    await expectPaidAndWhole(id, o.merchant_uid);
  });

  it('a payment leaving the list while the sweep pages does not make it skip the next one', async () => {
    await windowFromHere();
    const id = await event({ seats: 2 });
    const early = await foreign(100, 1_000, 'c');
    const { o, imp } = await lostPayment(id, 'b', 'P-1-1'); // the 101st of the window
    await foreign(20, 1_000, 'd');
    // Between the first page and the second, the first payment of the window is refunded at PortOne.
    let calls = 0;
    const sweep = await afterEachPage(() => { if (calls++ === 0) sim.cancelPayment(early[0]!, {}); }, () => sweepV1());
    expect(sim.getPayment(early[0]!)?.status).toBe('cancelled');
    expect(sweep.queued).toContain(imp);
    await expectPaidAndWhole(id, o.merchant_uid);
  });

  it('within one instant paged by number, a payment refunded between pages does not make the sweep skip one (attack round 22)', async () => {
    await windowFromHere();
    const id = await event({ seats: 2 });
    const { group, o, imp } = await lostInsideInstant(id, 'g', 20);
    let calls = 0;
    // The instant's first page is read twice (first reached, then asked from the instant itself);
    // after the second, just before its page 2 is asked, one of its payments is refunded at PortOne.
    const sweep = await afterEachPage((args, page) => {
      if (args[3] === 1 && page.payments[0]?.payment.imp_uid === group[0] && calls++ === 1) sim.cancelPayment(group[5]!, {});
    }, () => sweepV1());
    expect(sweep.queued).toContain(imp);
    expect(calls).toBeGreaterThan(1);
    expect(sim.getPayment(group[5]!)?.status).toBe('cancelled');
    await expectPaidAndWhole(id, o.merchant_uid);
  });

  it('a sweep cut short inside an instant goes on from its first page: refunds in between do not make the next one skip (attack round 22)', async () => {
    await windowFromHere();
    const id = await event({ seats: 2 });
    const { group, o, imp } = await lostInsideInstant(id, 'k', 60);
    // Two pages: the instant reached, then its first page asked from the instant itself; cut short
    // before its page 2.
    const cut = await sweepV1({ pagesPerSweep: 2 });
    expect(cut.queued).not.toContain(imp);
    // Ten of the instant's first page refunded before the next sweep: the rest of the instant moves up.
    for (const imp of group.slice(0, 10)) sim.cancelPayment(imp, {});
    let found = false;
    for (let i = 0; i < 4 && !found; i++) found = (await sweepV1({ pagesPerSweep: 2 })).queued.includes(imp);
    expect(found).toBe(true);
    await expectPaidAndWhole(id, o.merchant_uid);
  });

  it('a ticketed payment partly cancelled at the console, its webhook lost: the rest is refunded and the tickets voided', async () => {
    await windowFromHere();
    const id = await event({ seats: 2 });
    const o = await order(id, { buyer_id: 'c', seats: ['P-1-1', 'P-1-2'] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(o.merchant_uid, 'paid');
    await queuesIdle();
    sim.setFaults({ webhook_retry_ms: 50, webhook_loss: 1 });
    try {
      sim.cancelPayment(paid.payment.imp_uid, { amount: 4_000 });
      await sim.settled();
    } finally {
      sim.setFaults({ webhook_retry_ms: 50 });
    }
    expect((await detail(o.merchant_uid)).status).toBe('paid');
    const sweep = await sweepV1();
    expect(sweep.queued).toContain(paid.payment.imp_uid);
    const d = await orderIs(o.merchant_uid, 'refunded');
    expect(d.tickets.filter((t: { status?: string }) => t.status !== 'void')).toHaveLength(0);
    // The tickets are voided first (the order is refunded then), the rest is cancelled at PortOne after
    // (attack round 28A): one CI run read PortOne between the two.
    await waitFor(async () => sim.ledger({ imp_uid: paid.payment.imp_uid }).cancels.some((c) => c.source === 'api'), 20_000, 'the refund of the rest');
    expect(sim.getPayment(paid.payment.imp_uid)).toMatchObject({ status: 'cancelled', cancel_amount: o.amount });
    await queuesIdle();
    expect(await broken(id)).toEqual([]);
  });

  it('a cursor saved ahead of now (a clock that ran ahead) hides nothing', async () => {
    const id = await event({ seats: 2 });
    await stack.redis.hset(`${stack.prefix}:ledger`, 'v1', String(Date.now() + 3_600_000), 'v1:more', '0');
    const { o, imp } = await lostPayment(id, 'd', 'P-1-1');
    // The window ends now; from the cursor (cut back to now) less the overlap.
    const sweep = await sweepV1();
    expect(sweep.from).toBeLessThan(Date.now());
    expect(sweep.sweptUntil).toBeLessThanOrEqual(Date.now());
    // The lost payment was paid an hour back by PortOne's clock: the next sweep from the lookback finds it.
    await stack.redis.hdel(`${stack.prefix}:ledger`, 'v1', 'v1:more');
    expect((await sweepV1()).queued).toContain(imp);
    await expectPaidAndWhole(id, o.merchant_uid);
  });
});

describe('one PortOne API refusing', () => {
  let other: TestStack;
  beforeAll(async () => {
    // V2 configured with a secret PortOne does not know (revoked): every V2 call is refused.
    other = await startStack({
      label: 'ledgerv2off', portoneUrl: sim.url, timers: false,
      env: { PORTONE_V2_API_URL: sim.url, PORTONE_V2_API_SECRET: 'revoked-secret-000000000000' },
    });
  });
  afterAll(async () => {
    await other?.close();
  });

  it('does not keep the other API\'s payments from being settled: by the reconcile, and by the sweep', async () => {
    const s = shop(() => other, { prefix: 'lq', section: 'Q' });
    const id = await s.event({ seats: 2 });
    const o = await s.order(id, { buyer_id: 'e', seats: ['Q-1-1'] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: `${other.url}/portone/v1/webhook`, outcome: 'paid', faults: { webhook_loss: 1 } });
    await sim.settled();
    const data: PaymentOutcomeJob = { eventId: id, merchantUid: o.merchant_uid, impUid: '', hint: null, source: 'reconcile', receivedAt: Date.now() };
    await other.api.deps.queues.payments.add('reconcile', data, { jobId: `rec-${o.merchant_uid}-test` });
    const d = await s.orderIs(o.merchant_uid, 'paid');
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: paid.payment.imp_uid, status: 'paid' })]);
    // The sweep reads V1 to the end and then reports V2's refusal.
    await expect(other.worker!.sweepLedger({ settleDelayMs: 0 })).rejects.toThrow();
    const saved = await other.redis.hget(`${other.prefix}:ledger`, 'v1');
    expect(Number(saved)).toBeGreaterThan(Date.now() - 60_000);
    await waitFor(async () => ((await other.api.deps.queues.payments.getJobCounts('failed')).failed === 0 ? true : null), 5_000, 'no failed job');
  });
});
