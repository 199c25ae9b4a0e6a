/**
 * PortOne V2's signed endpoints over HTTP against real Redis and Postgres: the signature is checked on
 * the raw body before anything is read or stored (tampered body, header, secret, stale or future
 * timestamp, re-serialised JSON, no headers: 401 and nothing held or queued), both payload versions,
 * secret rotation, another store refused, replayed confirms answered the same, webhooks deduplicated by
 * webhook-id and unknown types ignored; manual confirmation's input checked before PortOne is asked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, http, newOrder, newWebhookSecret, rand, signWebhook } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { loadSnapshot } from '@dropgate/db';
import { eventKeys } from '@dropgate/redis';
import { MANUAL_CONFIRMS_PER_ORDER } from '../src/routes/portone-v2.routes.ts';

const OLD = newWebhookSecret();
const NEW = newWebhookSecret();
const STORE = 'store-ours';
let stack: ApiStack;
let ev: string;
beforeAll(async () => {
  stack = await startApiStack({
    label: 'v2api',
    env: {
      PORTONE_WEBHOOK_SECRET: `${OLD}, ${NEW}`, PORTONE_V2_STORE_ID: STORE, PORTONE_V2_API_SECRET: rand(24),
      // Nothing listens there: manual confirmation's input checks must answer without PortOne.
      PORTONE_V2_API_URL: 'http://127.0.0.1:9',
    },
  });
  ev = eventId('v2');
  const res = await http(stack.url, 'POST', '/admin/events', { id: ev, name: 'V2', pools: [{ id: 'p', name: 'P', capacity: 50, price: 1000 }] }, { admin: true });
  expect(res.status).toBe(201);
});
afterAll(async () => { await stack?.close(); });

const order = () => newOrder(stack.url, ev, { buyer_id: `b-${Math.random().toString(36).slice(2, 8)}`, items: [{ pool: 'p', quantity: 1 }], portone_api: 'v2' });
let tx = 0;
const txId = () => `tx-${process.pid}-${++tx}`;
const confirmBody = (paymentId: string, transactionId: string, totalAmount: number | undefined, storeId: string | undefined = STORE) =>
  JSON.stringify({ type: 'Transaction.Confirm', timestamp: new Date().toISOString(), data: { paymentId, transactionId, ...(totalAmount === undefined ? {} : { totalAmount }), ...(storeId ? { storeId } : {}) } });
const post = (path: string, raw: string, headers: Record<string, string>) =>
  http(stack.url, 'POST', path, undefined, { raw, headers: { 'content-type': 'application/json', ...headers } });
const held = async (uid: string) => (await stack.store.orderState(ev, uid))?.status;
const queued = async () => {
  const c = await stack.api.deps.queues.payments.getJobCounts('waiting', 'delayed', 'prioritized');
  return (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
};

describe('POST /portone/v2/confirm', () => {
  it('approves a signed Transaction.Confirm (2024-04-25) with the V1 hold, and replays the same answer', async () => {
    const o = await order();
    const body = confirmBody(o.merchant_uid, txId(), o.amount);
    const res = await post('/portone/v2/confirm', body, signWebhook(OLD, body));
    expect(res.status).toBe(200);
    expect(res.body.approved).toBe(true);
    expect(await held(o.merchant_uid)).toBe('held');
    // PortOne retrying the same attempt gets the same answer (a new signature, same transaction).
    const again = await post('/portone/v2/confirm', body, signWebhook(NEW, body));
    expect(again.body).toEqual(res.body);
  });

  it('approves the 2024-01-01 shape (payment_id, tx_id, total_amount) and one without an amount', async () => {
    const o = await order();
    const legacy = JSON.stringify({ payment_id: o.merchant_uid, tx_id: txId(), total_amount: o.amount });
    expect((await post('/portone/v2/confirm', legacy, signWebhook(NEW, legacy))).status).toBe(200);
    const o2 = await order();
    const noAmount = confirmBody(o2.merchant_uid, txId(), undefined);
    expect((await post('/portone/v2/confirm', noAmount, signWebhook(NEW, noAmount))).status).toBe(200);
  });

  it('answers 401 and holds nothing for every broken signature', async () => {
    const o = await order();
    const body = confirmBody(o.merchant_uid, txId(), o.amount);
    const good = signWebhook(OLD, body);
    const now = Math.floor(Date.now() / 1000);
    const reserialised = JSON.stringify(JSON.parse(body), null, 1);
    const cases: [string, string, Record<string, string>][] = [
      ['tampered body', body.replace(String(o.amount), String(o.amount - 1)), good],
      ['tampered id', body, { ...good, 'webhook-id': 'msg_other' }],
      ['tampered timestamp', body, { ...good, 'webhook-timestamp': String(Number(good['webhook-timestamp']) + 1) }],
      ['another secret', body, signWebhook(newWebhookSecret(), body)],
      ['stale', body, signWebhook(OLD, body, { timestamp: now - 310 })],
      ['future', body, signWebhook(OLD, body, { timestamp: now + 310 })],
      ['re-serialised JSON', reserialised, good],
      ['no headers', body, {}],
      ['no signature', body, { 'webhook-id': good['webhook-id'], 'webhook-timestamp': good['webhook-timestamp'] }],
    ];
    const heldBefore = (await stack.store.availability(ev, [{ id: 'p' }]))!.pools[0]!.held;
    for (const [name, raw, headers] of cases) {
      const res = await post('/portone/v2/confirm', raw, headers);
      expect(res.status, name).toBe(401);
      expect(res.body, name).toEqual({ errorMessage: expect.any(String), code: 'SIGNATURE_INVALID' });
    }
    expect(await held(o.merchant_uid)).toBe('pending');
    expect((await stack.store.availability(ev, [{ id: 'p' }]))!.pools[0]!.held).toBe(heldBefore);
    // The genuine request is still decided afresh afterwards: nothing was remembered for it.
    expect((await post('/portone/v2/confirm', body, good)).status).toBe(200);
  });

  it('refuses with {errorMessage, code}: another store, a wrong amount, an unknown order, a body of neither version', async () => {
    const o = await order();
    const foreign = confirmBody(o.merchant_uid, txId(), o.amount, 'store-theirs');
    const r1 = await post('/portone/v2/confirm', foreign, signWebhook(OLD, foreign));
    expect(r1.status).toBe(403);
    expect(r1.body.code).toBe('FORBIDDEN');
    const wrong = confirmBody(o.merchant_uid, txId(), o.amount + 1);
    const r2 = await post('/portone/v2/confirm', wrong, signWebhook(OLD, wrong));
    expect(r2.status).toBe(409);
    expect(r2.body).toEqual({ errorMessage: '결제 금액이 주문 금액과 다릅니다', code: 'AMOUNT_MISMATCH' });
    expect(await held(o.merchant_uid)).toBe('pending');
    const unknown = confirmBody(`${ev}.AAAAAAAAAAA`, txId(), 1000);
    expect((await post('/portone/v2/confirm', unknown, signWebhook(OLD, unknown))).body.code).toBe('ORDER_NOT_FOUND');
    for (const raw of ['{"type":"Transaction.Paid","data":{}}', '[]', `{"type":"Transaction.Confirm","data":{"paymentId":"${o.merchant_uid}","transactionId":"bad id!"}}`]) {
      const res = await post('/portone/v2/confirm', raw, signWebhook(OLD, raw));
      expect(res.status, raw).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
    }
  });

  it('answers a correctly signed body that is not JSON 400, in V2\'s shape', async () => {
    const raw = 'paymentId=x';
    const res = await post('/portone/v2/confirm', raw, signWebhook(OLD, raw));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ errorMessage: '잘못된 결제 요청입니다', code: 'BAD_REQUEST' });
    const hook = await post('/portone/v2/webhook', raw, signWebhook(OLD, raw));
    expect(hook.status).toBe(400);
    expect(hook.body.code).toBe('INVALID_JSON');
  });

  it('answers an oversized body 413 in V2\'s shape, before any signature work', async () => {
    const raw = JSON.stringify({ pad: 'x'.repeat(20_000) });
    const res = await post('/portone/v2/confirm', raw, signWebhook(OLD, raw));
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ errorMessage: expect.any(String), code: 'PAYLOAD_TOO_LARGE' });
  });
});

describe('POST /portone/v2/webhook', () => {
  const paid = (paymentId: string, transactionId: string) => JSON.stringify({ type: 'Transaction.Paid', timestamp: new Date().toISOString(), data: { paymentId, transactionId, storeId: STORE } });

  it('queues a signed webhook once per webhook-id; a retry of the same delivery is a duplicate', async () => {
    const o = await order();
    const before = await queued();
    const body = paid(o.merchant_uid, txId());
    const headers = signWebhook(NEW, body);
    const first = await post('/portone/v2/webhook', body, headers);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ received: true, duplicate: false });
    expect(await queued()).toBe(before + 1);
    const retry = await post('/portone/v2/webhook', body, signWebhook(NEW, body, { id: headers['webhook-id'] }));
    expect(retry.body).toEqual({ received: true, duplicate: true });
    expect(await queued()).toBe(before + 1);
  });

  it('takes the 2024-01-01 shape; ignores unknown types, other stores and payments that are not our orders (200)', async () => {
    const o = await order();
    const before = await queued();
    const legacy = JSON.stringify({ payment_id: o.merchant_uid, tx_id: txId(), status: 'Paid' });
    expect((await post('/portone/v2/webhook', legacy, signWebhook(OLD, legacy))).body).toEqual({ received: true, duplicate: false });
    expect(await queued()).toBe(before + 1);
    for (const raw of [
      JSON.stringify({ type: 'BillingKey.Issued', timestamp: 'x', data: { billingKey: 'k' } }),
      JSON.stringify({ type: 'Transaction.SomethingNew', data: { paymentId: o.merchant_uid, transactionId: txId() }, extra: { nested: true } }),
      JSON.stringify({ type: 'Transaction.Paid', data: { paymentId: o.merchant_uid, transactionId: txId(), storeId: 'store-theirs' } }),
      paid('someone-elses-payment-001', txId()),
      paid(`${ev}.AAAAAAAAAAA`, txId()),
    ]) {
      const res = await post('/portone/v2/webhook', raw, signWebhook(OLD, raw));
      expect(res.status, raw).toBe(200);
      expect(res.body, raw).toEqual({ received: true, duplicate: false, ignored: true });
    }
    expect(await queued()).toBe(before + 1);
  });

  it('answers 503 NOT_READY to a webhook for an event being loaded, queues nothing, and takes the same delivery once it is loaded', async () => {
    const id = eventId('v2load');
    expect((await http(stack.url, 'POST', '/admin/events', { id, name: 'V2 load', pools: [{ id: 'p', name: 'P', capacity: 5, price: 1000 }] }, { admin: true })).status).toBe(201);
    const o = await newOrder(stack.url, id, { buyer_id: 'loading', items: [{ pool: 'p', quantity: 1 }], portone_api: 'v2' });
    const before = await queued();
    const body = paid(o.merchant_uid, txId());
    const headers = signWebhook(NEW, body);
    await stack.store.markLoading(id);
    const during = await post('/portone/v2/webhook', body, headers);
    expect(during.status, during.text).toBe(503);
    expect(during.body).toMatchObject({ code: 'NOT_READY', message: expect.any(String) });
    expect(await queued()).toBe(before);
    // PortOne's retry of the same delivery (same webhook-id) once the event is back: queued, not a duplicate.
    await stack.store.loadEvent((await loadSnapshot(stack.api.deps.db, id))!, 'reloaded');
    const after = await post('/portone/v2/webhook', body, signWebhook(NEW, body, { id: headers['webhook-id'] }));
    expect(after.status, after.text).toBe(200);
    expect(after.body).toEqual({ received: true, duplicate: false });
    expect(await queued()).toBe(before + 1);
  });

  it('answers 401 to an unsigned or forged webhook and queues nothing', async () => {
    const o = await order();
    const before = await queued();
    const body = paid(o.merchant_uid, txId());
    for (const headers of [{}, signWebhook(newWebhookSecret(), body), { ...signWebhook(OLD, body), 'webhook-timestamp': '1614265330' }]) {
      const res = await post('/portone/v2/webhook', body, headers);
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('SIGNATURE_INVALID');
    }
    expect(await queued()).toBe(before);
  });
});

/** The buyer's manual confirmation: the order's token in the Authorization header. */
const asBuyer = (o: { order_token: string }) => ({ headers: { authorization: `Bearer ${o.order_token}` } });

/** PortOne V2 payment lookups made so far (the API's own metric). */
const portoneAsked = async () => {
  const text = await (await fetch(`${stack.url}/metrics`)).text();
  return [...text.matchAll(/^dropgate_portone_requests_total\{endpoint="v2GetPayment",[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
};

describe('POST /portone/v2/manual-confirm input (from the browser: hostile)', () => {
  it('refuses malformed, oversized and unknown-field bodies with 400, and an unknown order with 404, before PortOne', async () => {
    const o = await order();
    const ok = { payment_id: o.merchant_uid, payment_token: 'ptk_abc', total_amount: o.amount };
    for (const body of [
      {}, { ...ok, payment_id: 'not a uid' }, { ...ok, payment_token: '' }, { ...ok, payment_token: 'x'.repeat(3000) },
      { ...ok, payment_token: 'bad token\n' }, { ...ok, total_amount: -1 }, { ...ok, total_amount: 1.5 }, { ...ok, total_amount: '1000' },
      { ...ok, extra: 1 },
    ]) {
      const res = await http(stack.url, 'POST', '/portone/v2/manual-confirm', body, asBuyer(o));
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.any(String) });
    }
    const big = await http(stack.url, 'POST', '/portone/v2/manual-confirm', undefined, { raw: JSON.stringify({ ...ok, pad: 'x'.repeat(10_000) }), headers: { 'content-type': 'application/json', ...asBuyer(o).headers } });
    expect(big.status).toBe(413);
    for (const paymentId of [`${ev}.AAAAAAAAAAA`, 'nosuchevent-x.AAAAAAAAAAA']) {
      const res = await http(stack.url, 'POST', '/portone/v2/manual-confirm', { ...ok, payment_id: paymentId }, asBuyer(o));
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('ORDER_NOT_FOUND');
    }
    expect(await held(o.merchant_uid)).toBe('pending');
  });

  it(`asks PortOne about one order at most ${MANUAL_CONFIRMS_PER_ORDER} times a minute: then 429 RATE_LIMITED with Retry-After, PortOne not called`, async () => {
    const [o, other] = [await order(), await order()];
    const asked = portoneAsked;
    const confirm = (x: typeof o) => http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: x.merchant_uid, payment_token: `ptk_${rand(8)}`, total_amount: x.amount }, asBuyer(x));
    const before = await asked();
    for (let i = 0; i < MANUAL_CONFIRMS_PER_ORDER; i++) expect((await confirm(o)).body.code).toBe('PORTONE_UNAVAILABLE');
    // Each of those asked PortOne (the client tries a refused connection twice).
    const afterAllowed = await asked();
    expect(afterAllowed).toBeGreaterThanOrEqual(before + MANUAL_CONFIRMS_PER_ORDER);
    for (let i = 0; i < 3; i++) {
      const limited = await confirm(o);
      expect(limited.status).toBe(429);
      expect(limited.body).toEqual({ code: 'RATE_LIMITED', message: expect.any(String) });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    expect(await asked()).toBe(afterAllowed);
    expect(await held(o.merchant_uid)).toBe('pending');
    // Another order of the same event is not affected.
    expect((await confirm(other)).body.code).toBe('PORTONE_UNAVAILABLE');
  });

  it('needs the order\'s token: without one 401, with a wrong one or another order\'s 404; nothing counted or asked, so strangers cannot lock the buyer out', async () => {
    const [o, other] = [await order(), await order()];
    const body = { payment_id: o.merchant_uid, payment_token: 'ptk_abc', total_amount: o.amount };
    const before = await portoneAsked();
    // Far more than the per-order bound, by someone who knows the merchant_uid but not the token.
    for (let i = 0; i < 3 * MANUAL_CONFIRMS_PER_ORDER; i++) {
      const headers = [undefined, { authorization: 'Bearer not-the-token' }, asBuyer(other).headers, { authorization: `Basic ${o.order_token}` }, { authorization: 'Bearer ' }][i % 5];
      const res = await http(stack.url, 'POST', '/portone/v2/manual-confirm', body, headers ? { headers } : {});
      if (headers === undefined || !headers.authorization.startsWith('Bearer ') || headers.authorization === 'Bearer ') {
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.body).toEqual({ code: 'UNAUTHORIZED', message: expect.stringContaining('order token') });
      } else {
        expect(res.status, JSON.stringify(headers)).toBe(404);
        expect(res.body).toEqual({ code: 'ORDER_NOT_FOUND', message: expect.any(String) });
      }
    }
    expect(await portoneAsked()).toBe(before);
    expect(await held(o.merchant_uid)).toBe('pending');
    // The buyer, with the order's token, is asked about as usual (PortOne is down here): not RATE_LIMITED.
    expect((await http(stack.url, 'POST', '/portone/v2/manual-confirm', body, asBuyer(o))).body.code).toBe('PORTONE_UNAVAILABLE');
    // So is the merchant, with the admin token.
    expect((await http(stack.url, 'POST', '/portone/v2/manual-confirm', body, { admin: true })).body.code).toBe('PORTONE_UNAVAILABLE');
    expect(await portoneAsked()).toBeGreaterThan(before);
  });

  it('answers 503 PORTONE_UNAVAILABLE, holding nothing, when PortOne cannot be asked about the payment', async () => {
    const o = await order();
    const res = await http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: o.merchant_uid, payment_token: 'ptk_abc', total_amount: o.amount }, asBuyer(o));
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('PORTONE_UNAVAILABLE');
    expect(await held(o.merchant_uid)).toBe('pending');
  });

  it('has released the order\'s lease when its answer arrives: the buyer\'s retry at once is asked afresh, not told CONFIRM_IN_PROGRESS', async () => {
    const o = await order();
    const lease = eventKeys(ev).manualConfirmLock(o.merchant_uid);
    for (let i = 0; i < 3; i++) {
      const res = await http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: o.merchant_uid, payment_token: `ptk_${i}`, total_amount: o.amount }, asBuyer(o));
      expect(res.body.code).toBe('PORTONE_UNAVAILABLE');
      expect(await stack.redis.exists(lease)).toBe(0);
    }
  });
});
