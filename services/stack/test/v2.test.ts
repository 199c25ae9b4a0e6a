/**
 * PortOne V2 end to end: the API, a worker, real Redis and Postgres, and the simulator's V2 mode over
 * HTTP (signed confirm calls and webhooks, V2 REST). The confirm-webhook flow and manual confirmation
 * each sell, refuse and settle with V1's guarantees: a sold-out race decided by the same script,
 * tickets only for money PortOne vouches for, each PortOne refusal of a manual confirmation releasing
 * the hold without blocking the genuine request, PortOne not answering keeping the hold until the
 * worker learns the truth, money for seats that are gone refunded with currentCancellableAmount.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Simulator } from '@dropgate/portone-sim';
import { http, impUid, rand, signWebhook, waitFor, TestClock } from '@dropgate/testkit';
import { eventKeys } from '@dropgate/redis';
import { loadSnapshot } from '@dropgate/db';
import type { TestStack } from '@dropgate/stack';
import { startApi } from '@dropgate/api';
import { shop } from './support/shop.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

const keys = v2Keys('v2');
const SECRET = keys.secret;
const STORE = keys.storeId;
let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(keys, { label: 'v2', clock, env: { PORTONE_V2_CONFIRM_TIMEOUT_MS: '400', EXPIRY_GRACE_SECONDS: '2' } }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { event, order, detail, orderIs, availability, queuesIdle } = shop(() => stack, { prefix: 'v2e', section: 'V' });
const confirmUrl = () => `${stack.url}/portone/v2/confirm`;
const webhookUrl = () => `${stack.url}/portone/v2/webhook`;
/** Order tokens by merchant_uid: the buyer's browser confirms with its order's token. */
const tokens = new Map<string, string>();
const v2Order = async (id: string, body: Record<string, unknown>) => {
  const o = await order(id, { ...body, portone_api: 'v2' });
  tokens.set(o.merchant_uid, o.order_token);
  return o;
};
const manualConfirm = (body: { payment_id: string } & Record<string, unknown>) =>
  http(stack.url, 'POST', '/portone/v2/manual-confirm', body, { headers: { authorization: `Bearer ${tokens.get(body.payment_id) ?? ''}` } });

describe('confirm-webhook flow', () => {
  it('sells through a signed confirm and a signed Paid webhook, in either webhook version', async () => {
    const id = await event({ seats: 2 });
    for (const [i, version] of (['2024-04-25', '2024-01-01'] as const).entries()) {
      const o = await v2Order(id, { buyer_id: `b${i}`, seats: [`V-1-${i + 1}`] });
      const r = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl(), webhook_version: version });
      expect(r.confirm?.status).toBe(200);
      const d = await orderIs(o.merchant_uid, 'paid');
      expect(d.tickets).toHaveLength(1);
      expect(d.payments).toEqual([expect.objectContaining({ imp_uid: `v2.${r.transaction_id}`, status: 'paid', amount: o.amount })]);
    }
    // The order's amount was pre-registered with PortOne when it was created.
    expect((await stack.api.deps.db.selectFrom('orders').select('portone_api').where('event_id', '=', id).execute()).map((r) => r.portone_api)).toEqual(['v2', 'v2']);
  });

  it('a sold-out race over HTTP: signed confirms decided by the same script, exactly the inventory approved', async () => {
    const id = await event({ seats: 5, pool: 10 });
    const orders = [];
    for (let i = 0; i < 30; i++) {
      orders.push(await v2Order(id, i % 2 === 0 ? { buyer_id: `r${i}`, seats: [`V-1-${(i % 5) + 1}`] } : { buyer_id: `r${i}`, items: [{ pool: 'ga', quantity: 1 + (i % 3) }] }));
    }
    const answers = await Promise.all(orders.map(async (o, i) => {
      const body = JSON.stringify({ type: 'Transaction.Confirm', timestamp: new Date().toISOString(), data: { paymentId: o.merchant_uid, transactionId: `race-${i}-${o.merchant_uid.slice(-6)}`, totalAmount: o.amount, storeId: STORE } });
      const res = await http(stack.url, 'POST', '/portone/v2/confirm', undefined, { raw: body, headers: { 'content-type': 'application/json', ...signWebhook(SECRET, body) } });
      return { o, i, res };
    }));
    const approved = answers.filter((a) => a.res.status === 200);
    for (const a of answers.filter((x) => x.res.status !== 200)) expect(a.res.body).toEqual({ errorMessage: '선택하신 좌석이 이미 판매되었습니다', code: 'SOLD_OUT' });
    const seats = approved.filter((a) => a.i % 2 === 0).map((a) => a.i % 5);
    expect(new Set(seats).size).toBe(seats.length);
    expect(seats.length).toBe(5);
    const places = approved.filter((a) => a.i % 2 === 1).reduce((n, a) => n + 1 + (a.i % 3), 0);
    expect(places).toBeLessThanOrEqual(10);
    const av = await availability(id);
    expect(av.seats).toMatchObject({ held: 5, available: 0 });
    expect(av.pools[0].held).toBe(places);
    // PortOne never heard of these attempts: the workers verify each with V2 REST and release them.
    await waitFor(async () => {
      const now = await availability(id);
      return now.seats.held === 0 && now.pools[0].held === 0;
    }, 20_000, 'unverified V2 holds to be released');
  });

  it('money paid after the hold ended, for seats sold meanwhile, goes back through V2 cancel with currentCancellableAmount', async () => {
    const id = await event({ seats: 1, ttl: 5 });
    const late = await v2Order(id, { buyer_id: 'late', seats: ['V-1-1'] });
    // The buyer lingers in the window (4 s: the expiry must find the payment still unpaid, also when the
    // machine is busy; with 1.5 s it once found it paid and committed it); PortOne's Paid webhook is lost.
    const slow = sim.payV2({ payment_id: late.merchant_uid, amount: late.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl(), buyer_delay_ms: 4_000, faults: { webhook_loss: 1 } });
    await waitFor(async () => (await stack.store.orderState(id, late.merchant_uid))?.status === 'held', 10_000, 'the late buyer to hold');
    clock.advance(6_000);
    await orderIs(late.merchant_uid, 'expired');
    const other = await v2Order(id, { buyer_id: 'other', seats: ['V-1-1'] });
    await sim.payV2({ payment_id: other.merchant_uid, amount: other.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl() });
    await orderIs(other.merchant_uid, 'paid');
    const lateResult = await slow;
    expect(lateResult.payment.status).toBe('paid');
    // The late-payment watch asks V2 REST, finds the money, and refunds it: the seat is someone else's.
    clock.advance(60_000);
    const d = await orderIs(late.merchant_uid, 'refunded', 30_000);
    expect(d.tickets).toEqual([]);
    const cancels = sim.ledger({ merchant_uid: late.merchant_uid }).cancels.filter((c) => c.ok);
    expect(cancels).toEqual([expect.objectContaining({ imp_uid: `v2.${lateResult.transaction_id}`, amount: late.amount, source: 'api' })]);
  });
});

describe('Redis losing the event', () => {
  it('reconciliation asks the order\'s own API (V2) and tickets a payment dropgate never heard of', async () => {
    const id = await event({ seats: 1 });
    const o = await v2Order(id, { buyer_id: 'lost', seats: ['V-1-1'] });
    // A payment without a confirm call (a PG that cannot use it) whose webhook is lost: only PortOne knows.
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, webhook_url: webhookUrl(), faults: { webhook_loss: 1 } });
    expect(w.payment.status).toBe('paid');
    expect((await detail(o.merchant_uid)).status).toBe('pending');
    // Redis loses the event: the worker rebuilds it from Postgres and asks PortOne about every pending
    // order, through the API the order was made for.
    await stack.store.deleteEvent(id);
    const d = await orderIs(o.merchant_uid, 'paid', 30_000);
    expect(d.tickets).toHaveLength(1);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: `v2.${w.transaction_id}`, status: 'paid' })]);
  });

  it('a signed webhook pairing a paymentId with another payment\'s or a made-up transactionId writes no payment row (found by the chaos campaign)', async () => {
    const id = await event({ seats: 2 });
    const a = await v2Order(id, { buyer_id: 'a', seats: ['V-1-1'] });
    const b = await v2Order(id, { buyer_id: 'b', seats: ['V-1-2'] });
    const pb = await sim.payV2({ payment_id: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl() });
    await orderIs(b.merchant_uid, 'paid');
    const aWindow = await sim.payV2({ payment_id: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl(), outcome: 'failed' });
    await waitFor(async () => ((await detail(a.merchant_uid)).payments.length === 1 ? true : null), 15_000, 'order a\'s failed attempt in the record');
    for (const transactionId of [pb.transaction_id, `made-up-${rand(6)}`]) {
      const body = JSON.stringify({ type: 'Transaction.Paid', timestamp: new Date().toISOString(), data: { paymentId: a.merchant_uid, transactionId, storeId: STORE } });
      const res = await http(stack.url, 'POST', '/portone/v2/webhook', undefined, { raw: body, headers: { 'content-type': 'application/json', ...signWebhook(SECRET, body) } });
      expect(res.status, res.text).toBe(200);
    }
    await queuesIdle();
    const d = await detail(a.merchant_uid);
    expect(d.status).not.toBe('paid');
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: `v2.${aWindow.transaction_id}`, status: 'failed', amount: a.amount })]);
    expect((await detail(b.merchant_uid)).payments).toEqual([expect.objectContaining({ imp_uid: `v2.${pb.transaction_id}`, status: 'paid', amount: b.amount })]);
  });
});

describe('V1 confirms naming a V2 order', () => {
  it('are refused ORDER_NOT_FOUND and change nothing, before and after a rebuild and with a reservation, so they cannot use up the order\'s holds; the buyer then pays', async () => {
    for (const reservation of [undefined, 60]) {
      const id = await event({ seats: 1, ...(reservation ? { reservation } : {}) });
      const o = await v2Order(id, { buyer_id: `v1x-${reservation ?? 0}`, seats: ['V-1-1'] });
      const k = eventKeys(id);
      expect(await stack.redis.hget(k.order(o.merchant_uid), 'api')).toBe('v2');
      /** Twelve V1 confirms at once, right amount, made-up imp_uids: each refused, the order's state as it was. */
      const v1ConfirmsChangeNothing = async () => {
        const before = await stack.redis.hgetall(k.order(o.merchant_uid));
        const answers = await Promise.all(Array.from({ length: 12 }, () =>
          http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.merchant_uid, amount: o.amount })));
        for (const res of answers) {
          expect(res.status, res.text).toBe(404);
          expect(res.body.code).toBe('ORDER_NOT_FOUND');
        }
        expect(await stack.redis.hgetall(k.order(o.merchant_uid))).toEqual(before);
        expect(await stack.redis.exists(k.answers(o.merchant_uid))).toBe(0);
      };
      await v1ConfirmsChangeNothing();
      // A rebuild from the record keeps the order's API.
      await stack.store.loadEvent((await loadSnapshot(stack.api.deps.db, id))!, `v1x-${rand(4)}`);
      expect(await stack.redis.hget(k.order(o.merchant_uid), 'api')).toBe('v2');
      await v1ConfirmsChangeNothing();
      // The buyer's own payment goes through.
      const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, mode: 'manual', faults: { webhook_loss: 1 } });
      const res = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount });
      expect(res.status, res.text).toBe(200);
      expect((await orderIs(o.merchant_uid, 'paid')).tickets).toHaveLength(1);
    }
  });
});

describe('manual confirmation', () => {
  it('approved: 200 {status: paid}, and the worker tickets it without any webhook', async () => {
    const id = await event({ seats: 1 });
    const o = await v2Order(id, { buyer_id: 'm', seats: ['V-1-1'] });
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, mode: 'manual', faults: { webhook_loss: 1 } });
    const res = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'paid' });
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toHaveLength(1);
    // A second confirmation of the paid order is refused, and changes nothing.
    const again = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('ALREADY_PAID');
  });

  it('a refusal that may leave the payment going through (ALREADY_PAID_OR_WAITING), or one not in the table, keeps the hold and answers {code, message}, never 500 (attack round 20A)', async () => {
    const id = await event({ pool: 2 });
    const waiting = await v2Order(id, { buyer_id: 'w1', items: [{ pool: 'ga', quantity: 1 }] });
    const w = await sim.payV2({ payment_id: waiting.merchant_uid, amount: waiting.amount, mode: 'manual', faults: { manual_confirm_refusal: 'ALREADY_PAID_OR_WAITING' } });
    const r1 = await manualConfirm({ payment_id: waiting.merchant_uid, payment_token: w.payment_token, total_amount: waiting.amount });
    expect(r1.status).toBe(409);
    expect(r1.body).toEqual({ code: 'PAYMENT_PENDING', message: expect.any(String) });
    const other = await v2Order(id, { buyer_id: 'w2', items: [{ pool: 'ga', quantity: 1 }] });
    const x = await sim.payV2({ payment_id: other.merchant_uid, amount: other.amount, mode: 'manual', faults: { manual_confirm_refusal: 'MAX_TRANSACTION_COUNT_REACHED' } });
    const r2 = await manualConfirm({ payment_id: other.merchant_uid, payment_token: x.payment_token, total_amount: other.amount });
    expect(r2.status).toBe(502);
    expect(r2.body).toEqual({ code: 'PORTONE_REFUSED', message: expect.any(String) });
    // Both holds stay until PortOne says what became of the payments (both still READY here).
    await queuesIdle();
    expect((await availability(id)).pools[0]).toMatchObject({ held: 2, sold: 0 });
    expect((await detail(waiting.merchant_uid)).status).toBe('held');
  });

  it('each PortOne refusal (token, mismatch, PG decline) releases the hold and tells the buyer why; a forged token does not block the genuine one', async () => {
    const id = await event({ seats: 1 });
    const o = await v2Order(id, { buyer_id: 'r', seats: ['V-1-1'] });
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, mode: 'manual' });
    const forged = await manualConfirm({ payment_id: o.merchant_uid, payment_token: 'ptk_forged', total_amount: o.amount });
    expect(forged.status).toBe(400);
    expect(forged.body).toMatchObject({ code: 'PAYMENT_TOKEN_INVALID', message: expect.any(String) });
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
    // The amount the browser claims must be the order's (and the payment's): refused before any hold.
    const tampered = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount - 1 });
    expect(tampered.status).toBe(409);
    expect(tampered.body.code).toBe('AMOUNT_MISMATCH');
    const genuine = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount });
    expect(genuine.status).toBe(200);
    await orderIs(o.merchant_uid, 'paid');

    // PortOne's own verification refuses (INFORMATION_MISMATCH: here the window's currency is not the
    // order's): 409 AMOUNT_MISMATCH, the hold released.
    const idc = await event({ pool: 1 });
    const oc = await v2Order(idc, { buyer_id: 'cur', items: [{ pool: 'ga', quantity: 1 }] });
    const usd = await sim.payV2({ payment_id: oc.merchant_uid, amount: oc.amount, mode: 'manual', currency: 'USD' });
    const mismatch = await manualConfirm({ payment_id: oc.merchant_uid, payment_token: usd.payment_token, total_amount: oc.amount });
    expect(mismatch.status).toBe(409);
    expect(mismatch.body.code).toBe('AMOUNT_MISMATCH');
    expect((await availability(idc)).pools[0]).toMatchObject({ held: 0, sold: 0 });

    // The PG declines: 402 with its reason, the places back on sale, the order free to pay again.
    const id2 = await event({ pool: 2 });
    const o3 = await v2Order(id2, { buyer_id: 'r3', items: [{ pool: 'ga', quantity: 1 }] });
    const declined = await sim.payV2({ payment_id: o3.merchant_uid, amount: o3.amount, mode: 'manual', outcome: 'failed' });
    const d1 = await manualConfirm({ payment_id: o3.merchant_uid, payment_token: declined.payment_token, total_amount: o3.amount });
    expect(d1.status).toBe(402);
    expect(d1.body.code).toBe('PAYMENT_DECLINED');
    expect((await availability(id2)).pools[0]).toMatchObject({ held: 0, sold: 0 });
    // Confirming a payment PortOne already failed is refused without a hold.
    const d2 = await manualConfirm({ payment_id: o3.merchant_uid, payment_token: declined.payment_token, total_amount: o3.amount });
    expect(d2.status).toBe(409);
    expect(d2.body.code).toBe('PAYMENT_NOT_CONFIRMABLE');
    // A new attempt of the same order goes through.
    const retry = await sim.payV2({ payment_id: o3.merchant_uid, amount: o3.amount, mode: 'manual' });
    expect((await manualConfirm({ payment_id: o3.merchant_uid, payment_token: retry.payment_token, total_amount: o3.amount })).status).toBe(200);
    const d = await orderIs(o3.merchant_uid, 'paid');
    expect(d.payments.find((p: { imp_uid: string }) => p.imp_uid === `v2.${retry.transaction_id}`)?.status).toBe('paid');
    await queuesIdle();
  });

  it('a payment PortOne does not know (no window opened) is refused without a hold', async () => {
    const id = await event({ pool: 1 });
    const o = await v2Order(id, { buyer_id: 'n', items: [{ pool: 'ga', quantity: 1 }] });
    const res = await manualConfirm({ payment_id: o.merchant_uid, payment_token: 'ptk_whatever', total_amount: o.amount });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('PAYMENT_NOT_FOUND');
    expect((await availability(id)).pools[0].held).toBe(0);
  });

  it('PortOne not answering in time: 504, the hold stays, and the worker learns from V2 REST that it was paid', async () => {
    const id = await event({ seats: 1 });
    const o = await v2Order(id, { buyer_id: 't', seats: ['V-1-1'] });
    // PortOne approves at once but answers after 1.5 s (dropgate waits 400 ms); its webhook is lost.
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, mode: 'manual', faults: { manual_confirm_latency_ms: 1_500, webhook_loss: 1 } });
    const res = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount });
    expect(res.status).toBe(504);
    expect(res.body.code).toBe('PAYMENT_PENDING');
    expect(['held', 'paid']).toContain((await stack.store.orderState(id, o.merchant_uid))?.status);
    const d = await orderIs(o.merchant_uid, 'paid');
    expect(d.tickets).toHaveLength(1);
    expect((await detail(o.merchant_uid)).payments).toEqual([expect.objectContaining({ imp_uid: `v2.${w.transaction_id}`, status: 'paid' })]);
  });

  it('PortOne not answering and the payment not completing: 504, the hold stays, and ends once PortOne says it failed', async () => {
    const id = await event({ seats: 1 });
    const o = await v2Order(id, { buyer_id: 'x', seats: ['V-1-1'] });
    const w = await sim.payV2({ payment_id: o.merchant_uid, amount: o.amount, mode: 'manual', outcome: 'failed', faults: { manual_confirm_latency_ms: 1_000, webhook_loss: 1 } });
    const res = await manualConfirm({ payment_id: o.merchant_uid, payment_token: w.payment_token, total_amount: o.amount });
    expect(res.status).toBe(504);
    expect(res.body.code).toBe('PAYMENT_PENDING');
    // Never a guess: the order ends only from what V2 REST says (the payment failed), without tickets.
    const d = await waitFor(async () => { const x = await detail(o.merchant_uid); return ['released', 'expired'].includes(x.status) ? x : null; }, 20_000, 'the order to end');
    expect(d.tickets).toEqual([]);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: `v2.${w.transaction_id}`, status: 'failed' })]);
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
  });
});

describe('waiting list offers with PORTONE_DEFAULT_API=v2', () => {
  it('offer orders through V2, their amounts pre-registered with PortOne like any V2 order', async () => {
    // A second API process of the same stack whose orders default to V2 (the stack's own defaults to V1).
    const v2Api = await startApi({ ...stack.config, portone: { ...stack.config.portone, defaultApi: 'v2' } }, { logger: false, queuePrefix: stack.prefix, clock });
    try {
      const id = `v2wl-${rand(6).toLowerCase()}`;
      const created = await http(v2Api.url, 'POST', '/admin/events', {
        id, name: 'V2 waiting list', hold_at: 'order', reservation_ttl_seconds: 5, waitlist: { offer_ttl_seconds: 30 },
        pools: [{ id: 'ga', name: 'GA', capacity: 1, price: 4_000 }],
      }, { admin: true });
      expect(created.status, created.text).toBe(201);
      const holder = await http(v2Api.url, 'POST', `/events/${id}/orders`, { buyer_id: 'holder', items: [{ pool: 'ga', quantity: 1 }] });
      expect(holder.status, holder.text).toBe(201);
      const joined = await http(v2Api.url, 'POST', `/events/${id}/waitlist`, { buyer_id: 'listed', items: [{ pool: 'ga', quantity: 1 }] });
      expect(joined.status, joined.text).toBe(201);
      // The holder's reservation lapses; the place goes to the list.
      clock.advance(6_000);
      const offer = await waitFor(async () => {
        const r = await http(v2Api.url, 'GET', `/events/${id}/waitlist/${joined.body.waitlist_token}`);
        return r.body?.state === 'offered' ? r.body : null;
      }, 20_000, 'the waiting-list offer');
      const apis = await stack.api.deps.db.selectFrom('orders').select(['merchant_uid', 'portone_api']).where('event_id', '=', id).execute();
      expect(Object.fromEntries(apis.map((r) => [r.merchant_uid, r.portone_api]))).toEqual({ [holder.body.merchant_uid]: 'v2', [offer.merchant_uid]: 'v2' });
      // Pre-registered: a payment window with another amount fails at PortOne; the right one is paid.
      expect((await sim.payV2({ payment_id: offer.merchant_uid, amount: 400 })).payment.status).toBe('failed');
      const paid = await sim.payV2({ payment_id: offer.merchant_uid, amount: 4_000, confirm_url: `${v2Api.url}/portone/v2/confirm`, webhook_url: `${v2Api.url}/portone/v2/webhook` });
      expect(paid.confirm?.status).toBe(200);
      await orderIs(offer.merchant_uid, 'paid');
    } finally {
      await v2Api.close();
    }
  });
});
