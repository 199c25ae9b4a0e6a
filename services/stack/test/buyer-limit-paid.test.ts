/**
 * max_per_buyer against payments that arrive without a live hold (attack round 26B). With hold_at
 * "confirm" a pending order holds nothing, so a buyer could make several orders within the limit and
 * pay each without a confirm (the payment window's confirm_url is the buyer's browser's to leave out);
 * the worker took the places again with no limit check: six paid tickets against a limit of two. With
 * hold_at "order" a lapsed reservation paid late, after a new one took its count, did the same. Now a
 * place taken again past the limit is refused, and that payment refunded with its order closed. The
 * API, a worker, real Redis and Postgres, and the simulator over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { waitFor, http, eventId, TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
// Reservations lapse by this clock: the test moves it past one instead of waiting.
const clock = new TestClock();
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  stack = await startStack({ label: 'limitpaid', portoneUrl: sim.url, clock });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { noticeUrl, order, detail } = shop(() => stack, { prefix: 'lp', section: 'L' });

async function limitedEvent(extra: Record<string, unknown> = {}): Promise<string> {
  const id = eventId('lp');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Limit', max_per_buyer: 2, pools: [{ id: 'ga', name: 'GA', capacity: 20, price: 5_000 }], ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** Each order once PortOne's payment of it is settled: paid, or refunded. */
async function settled(merchantUids: string[]) {
  const finals = [];
  for (const muid of merchantUids) {
    finals.push(await waitFor(async () => {
      const d = await detail(muid);
      return d.status === 'paid' || d.status === 'refunded' ? d : null;
    }, 30_000, `order ${muid} settled`));
  }
  return finals;
}

/** The reasons of the refunds dropgate made for these orders (the record's, with the order's cause). */
async function refundReasons(merchantUids: string[]) {
  const db = stack.api.deps.db;
  const refunds = await db.selectFrom('refunds').select(['merchant_uid', 'reason']).where('merchant_uid', 'in', merchantUids).execute();
  const causes = await db.selectFrom('order_events').select(['merchant_uid', 'data']).where('merchant_uid', 'in', merchantUids).where('type', '=', 'status').orderBy('id').execute();
  for (const r of refunds) {
    const last = causes.filter((c) => c.merchant_uid === r.merchant_uid).at(-1);
    expect(last?.data, r.merchant_uid).toMatchObject({ to: 'refunded', cause: `refund_${r.reason}` });
  }
  return refunds.map((r) => r.reason).sort();
}

describe('max_per_buyer and payments without a live hold', () => {
  it('three pending orders paid without a confirm: two tickets, the third payment refunded', async () => {
    const id = await limitedEvent();
    // Each order passes the limit at creation: the pending ones before it hold nothing.
    const orders = [];
    for (let i = 0; i < 3; i++) orders.push(await order(id, { buyer_id: 'greedy', items: [{ pool: 'ga', quantity: 2 }] }));
    for (const o of orders) {
      const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid' });
      expect(paid.confirm).toBeNull();
    }
    const finals = await settled(orders.map((o) => o.merchant_uid));
    expect(finals.reduce((n, d) => n + d.tickets.length, 0)).toBe(2);
    expect(finals.map((d) => d.status).sort()).toEqual(['paid', 'refunded', 'refunded']);
    // The money of the refused ones went back in full, refunded for the buyer limit.
    for (const [i, d] of finals.entries()) {
      const cancels = sim.ledger({ merchant_uid: orders[i]!.merchant_uid }).cancels.filter((c) => c.ok);
      expect(cancels.length, d.status).toBe(d.status === 'refunded' ? 1 : 0);
    }
    expect(await refundReasons(orders.map((o) => o.merchant_uid))).toEqual(['buyer_limit', 'buyer_limit']);
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });

  it('hold_at "order": a lapsed reservation paid late, after a new one took its count, is refunded', async () => {
    const id = await limitedEvent({ hold_at: 'order', reservation_ttl_seconds: 5 });
    const first = await order(id, { buyer_id: 'late', items: [{ pool: 'ga', quantity: 2 }] });
    // Within the limit, a second reservation is refused while the first is live.
    const refused = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'late', items: [{ pool: 'ga', quantity: 2 }] });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('BUYER_LIMIT');
    clock.advance(6_000);
    await waitFor(async () => (await detail(first.merchant_uid)).status === 'expired', 20_000, 'the first reservation to lapse');
    const second = await order(id, { buyer_id: 'late', items: [{ pool: 'ga', quantity: 2 }] });
    for (const o of [first, second]) await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, notice_url: noticeUrl(), outcome: 'paid' });
    const [late, live] = await settled([first.merchant_uid, second.merchant_uid]);
    expect(live!.status).toBe('paid');
    expect(live!.tickets).toHaveLength(2);
    expect(late!.status).toBe('refunded');
    expect(late!.tickets).toEqual([]);
    expect(await refundReasons([first.merchant_uid])).toEqual(['buyer_limit']);
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
