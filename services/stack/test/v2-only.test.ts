/**
 * A V2-only store (PORTONE_V2_API_SECRET set, no PORTONE_IMP_KEY, so PORTONE_DEFAULT_API is v2): no V1
 * payment can be asked about, so none may hold places. Attack round 26A: the order body could still
 * name `"portone_api": "v1"`, and an unsigned made-up V1 confirm on such an order was approved; its
 * verification failed for good (PortOne refuses the placeholder V1 credentials), so the hold lasted its
 * TTL plus EXPIRY_GRACE_SECONDS and could be renewed: one client kept a drop sold out at no cost. The
 * simulator plays real PortOne: its V1 API takes only the merchant's real V1 key, never given to dropgate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { http, impUid, newWebhookSecret, rand } from '@dropgate/testkit';
import { orders as ordersRepo } from '@dropgate/db';
import { startStack, type TestStack } from '@dropgate/stack';
import { shop } from './support/shop.ts';

let sim: Simulator;
let stack: TestStack;
const keys = { secret: newWebhookSecret(), storeId: 'store-v2only', apiSecret: rand(24) };

beforeAll(async () => {
  sim = await startSimulator({
    port: 0, webhookSecret: keys.secret, storeId: keys.storeId, v2ApiSecret: keys.apiSecret,
    impKey: 'merchant-real-v1-key', impSecret: 'merchant-real-v1-secret',
    faults: { webhook_retry_ms: 50 },
  } as Parameters<typeof startSimulator>[0]);
  stack = await startStack({
    label: 'v2only', portoneUrl: sim.url,
    env: {
      PORTONE_V2_API_URL: sim.url, PORTONE_V2_API_SECRET: keys.apiSecret, PORTONE_V2_STORE_ID: keys.storeId, PORTONE_WEBHOOK_SECRET: keys.secret,
      // No V1 credentials (testConfig sets test ones otherwise).
      PORTONE_IMP_KEY: undefined as unknown as string, PORTONE_IMP_SECRET: undefined as unknown as string,
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { event, order, availability } = shop(() => stack, { prefix: 'vo', section: 'Z' });

describe('a V2-only store', () => {
  it('refuses V1 orders and unsigned V1 confirms, so nobody holds places with payments nothing can verify', async () => {
    expect(stack.config.portone.impKey).toBeUndefined();
    expect(stack.config.portone.defaultApi).toBe('v2');
    const id = await event({ seats: 3, ttl: 30 });
    // An order naming V1 is refused, and makes nothing.
    const v1 = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'stranger', seats: ['Z-1-1'], portone_api: 'v1' });
    expect(v1.status, v1.text).toBe(400);
    expect(v1.body).toEqual({ code: 'VALIDATION_FAILED', message: expect.stringContaining('PORTONE_IMP_KEY') });
    // A V1 order made before the store went V2-only (as the API wrote it then): an unsigned V1 confirm
    // naming it holds nothing.
    const old = `${id}.v1old000001`;
    await ordersRepo.insertOrder(stack.api.deps.db, { merchantUid: old, eventId: id, buyerId: 'old', amount: 10_000, currency: 'KRW', portoneApi: 'v1', seats: [{ id: 'Z-1-2', price: 10_000 }], items: [] });
    expect(await stack.store.createOrder(id, { merchantUid: old, amount: 10_000, buyerId: 'old', seats: ['Z-1-2'], items: [], tickets: 1 })).toBe('created');
    const forged = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: old, amount: 10_000 });
    expect(forged.status, forged.text).toBe(404);
    expect(forged.body.code).toBe('ORDER_NOT_FOUND');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 3 });
    // A V1 webhook is nobody's news here: refused, nothing queued (its lookup could only fail).
    const waiting = await stack.api.deps.queues.payments.getJobCounts();
    const hook = await http(stack.url, 'POST', '/portone/v1/webhook', { imp_uid: impUid(), merchant_uid: old, status: 'paid' });
    expect(hook.status, hook.text).toBe(404);
    expect(hook.body.code).toBe('ORDER_NOT_FOUND');
    expect(await stack.api.deps.queues.payments.getJobCounts()).toEqual(waiting);
    // A V2 buyer buys as usual.
    const genuine = await order(id, { buyer_id: 'genuine', seats: ['Z-1-2'] });
    const w = await sim.payV2({ payment_id: genuine.merchant_uid, amount: genuine.amount, mode: 'manual' });
    const paid = await http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: genuine.merchant_uid, payment_token: w.payment_token, total_amount: genuine.amount }, { headers: { authorization: `Bearer ${genuine.order_token}` } });
    expect(paid.status, paid.text).toBe(200);
  });
});
