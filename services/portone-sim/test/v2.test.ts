/**
 * The simulator's PortOne V2 mode over real HTTP, checked with our V2 client (@portone/server-sdk's
 * PaymentClient underneath) and the SDK's own signature verifier: signed confirm calls and webhooks
 * in both webhook versions, REST get / cancel with currentCancellableAmount / pre-register / manual
 * confirmation, and REST faults. Also: V1 REST takes the access token bare, as PortOne does, checked
 * with an unmodified third-party V1 client (iamporter).
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortOneApiError, PortOneUnavailableError, PortOneV2Client, verifyWebhook } from '@dropgate/portone';
import { startSimulator, type Simulator } from '../src/index.ts';
import { simCall, startEndpoint, type Endpoint } from './helpers.ts';

let sim: Simulator;
let merchant: Endpoint;
let client: PortOneV2Client;
let n = 0;
const V2_API_SECRET = randomBytes(16).toString('hex');
const paymentId = (): string => `v2sim-${process.pid}-${++n}`;

beforeAll(async () => {
  merchant = await startEndpoint((req) => (req.url.endsWith('/refuse') ? { status: 409, body: { errorMessage: '매진', code: 'SOLD_OUT' } } : { status: 200, body: {} }));
  sim = await startSimulator({ v2ApiSecret: V2_API_SECRET, storeId: 'store-test', v2WebhookUrl: `${merchant.url}/webhook` });
  client = new PortOneV2Client({ baseUrl: sim.url, secret: V2_API_SECRET, storeId: 'store-test', backoffMs: 5, retries: 1, timeoutMs: 1000 });
});
afterAll(async () => {
  await sim.close();
  await merchant.close();
});

describe('V2 confirm-webhook flow', () => {
  it('signs the confirm call and the Paid webhook (2024-04-25), verifiable with the SDK on the raw body', async () => {
    const id = paymentId();
    const before = merchant.requests.length;
    const r = await sim.payV2({ payment_id: id, amount: 5000, confirm_url: `${merchant.url}/confirm` });
    expect(r.confirm?.status).toBe(200);
    expect(r.payment).toMatchObject({ imp_uid: `v2.${r.transaction_id}`, merchant_uid: id, status: 'paid' });
    await sim.settled();
    const mine = merchant.requests.slice(before);
    const confirm = mine.find((q) => q.url.endsWith('/confirm'))!;
    const webhook = mine.find((q) => q.url.endsWith('/webhook'))!;
    const verifiedConfirm = await verifyWebhook([sim.webhookSecret], confirm.body, confirm.headers);
    expect(verifiedConfirm).toMatchObject({ ok: true, payload: { type: 'Transaction.Confirm', data: { paymentId: id, transactionId: r.transaction_id, totalAmount: 5000, storeId: 'store-test' } } });
    const verifiedWebhook = await verifyWebhook([sim.webhookSecret], webhook.body, webhook.headers);
    expect(verifiedWebhook).toMatchObject({ ok: true, payload: { type: 'Transaction.Paid', data: { paymentId: id, transactionId: r.transaction_id } } });
    // Another secret does not verify it.
    expect((await verifyWebhook(['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], webhook.body, webhook.headers)).ok).toBe(false);
  });

  it('sends the 2024-01-01 shapes when the store uses that version', async () => {
    const id = paymentId();
    const before = merchant.requests.length;
    const r = await sim.payV2({ payment_id: id, amount: 700, confirm_url: `${merchant.url}/confirm`, webhook_version: '2024-01-01' });
    await sim.settled();
    const mine = merchant.requests.slice(before);
    expect(JSON.parse(mine.find((q) => q.url.endsWith('/confirm'))!.body)).toEqual({ payment_id: id, tx_id: r.transaction_id, total_amount: 700 });
    expect(JSON.parse(mine.find((q) => q.url.endsWith('/webhook'))!.body)).toEqual({ payment_id: id, tx_id: r.transaction_id, status: 'Paid' });
  });

  it('a refusal stops the payment with the merchant\'s errorMessage and sends a Failed webhook', async () => {
    const r = await sim.payV2({ payment_id: paymentId(), amount: 700, confirm_url: `${merchant.url}/refuse` });
    expect(r.payment.status).toBe('failed');
    expect(r.payment.fail_reason).toContain('매진');
    expect(sim.ledger({ imp_uid: r.payment.imp_uid }).confirms[0]).toMatchObject({ http_status: 409, reason: '매진' });
  });
});

describe('the V2 payment window', () => {
  it('takes a buyer who spends no time in it (buyer_delay_ms 0), as V1\'s does', async () => {
    // The drop draws each buyer's time in the window as floor(random * --buyer-delay-ms): one window in
    // about a thousand draws 0, which this answered 400 (attack round 23B: 6-16 windows a drop).
    const id = paymentId();
    const res = await simCall(sim, 'POST', '/sim/v2/payments', { payment_id: id, amount: 5000, confirm_url: `${merchant.url}/confirm`, buyer_delay_ms: 0 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body['payment']).toMatchObject({ merchant_uid: id, status: 'paid' });
    const refused = await simCall(sim, 'POST', '/sim/v2/payments', { payment_id: paymentId(), amount: 5000, buyer_delay_ms: -1 });
    expect(refused).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
  });
});

describe('V2 REST through our client', () => {
  it('gets the latest attempt, with V2 statuses and amounts', async () => {
    const id = paymentId();
    const first = await sim.payV2({ payment_id: id, amount: 3000, outcome: 'failed' });
    expect((await client.getPayment(id))).toMatchObject({ id, transactionId: first.transaction_id, status: 'FAILED', total: 3000 });
    const second = await sim.payV2({ payment_id: id, amount: 3000 });
    expect(await client.getPayment(id)).toMatchObject({ transactionId: second.transaction_id, status: 'PAID', total: 3000, cancelled: 0 });
    expect(await client.getPayment('v2sim-unknown')).toBeNull();
  });

  it('cancels only with the right currentCancellableAmount, partially then fully', async () => {
    const id = paymentId();
    await sim.payV2({ payment_id: id, amount: 3000 });
    await expect(client.cancelPayment({ paymentId: id, currentCancellableAmount: 2999, reason: 'test' })).rejects.toMatchObject({
      name: 'PortOneApiError', errorType: 'CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN', transient: false,
    });
    await client.cancelPayment({ paymentId: id, currentCancellableAmount: 3000, amount: 1000, reason: 'test' });
    expect(await client.getPayment(id)).toMatchObject({ status: 'PARTIAL_CANCELLED', cancelled: 1000 });
    await client.cancelPayment({ paymentId: id, currentCancellableAmount: 2000, reason: 'test' });
    expect(await client.getPayment(id)).toMatchObject({ status: 'CANCELLED', cancelled: 3000 });
    const cancels = sim.ledger({ merchant_uid: id }).cancels;
    expect(cancels.map((c) => c.ok)).toEqual([false, true, true]);
  });

  it('lists the store\'s paid payments by the time their status changed, a page at a time, oldest first', async () => {
    const from = Date.now() - 1_000;
    const paid = await sim.payV2({ payment_id: paymentId(), amount: 1100 });
    const failed = await sim.payV2({ payment_id: paymentId(), amount: 1200, outcome: 'failed' });
    const partly = await sim.payV2({ payment_id: paymentId(), amount: 1300 });
    await client.cancelPayment({ paymentId: partly.payment.merchant_uid, currentCancellableAmount: 1300, amount: 300, reason: 'test' });
    const until = Date.now() + 1_000;
    const page = await client.listPaidPayments(from, until, 0);
    const ids = page.payments.map((p) => p.id);
    expect(ids).toEqual(expect.arrayContaining([paid.payment.merchant_uid, partly.payment.merchant_uid]));
    expect(ids).not.toContain(failed.payment.merchant_uid);
    expect(page.payments.find((p) => p.id === partly.payment.merchant_uid)).toMatchObject({ status: 'PARTIAL_CANCELLED', cancelled: 300 });
    // A window that ended before they were paid lists none of them.
    const before = await client.listPaidPayments(from - 60_000, from - 30_000, 0);
    expect(before.payments.map((p) => p.id)).not.toContain(paid.payment.merchant_uid);
    expect(before.more).toBe(false);
  });

  it('pre-registers the amount: a window with another amount fails before any confirm call', async () => {
    const id = paymentId();
    await client.preRegisterPayment(id, 4000, 'KRW');
    const before = merchant.requests.length;
    const tampered = await sim.payV2({ payment_id: id, amount: 40, confirm_url: `${merchant.url}/confirm` });
    expect(tampered.payment.status).toBe('failed');
    expect(merchant.requests.length).toBe(before);
    expect((await sim.payV2({ payment_id: id, amount: 4000 })).payment.status).toBe('paid');
  });

  it('manual confirmation: approved with the right token and fields; each refusal named', async () => {
    const id = paymentId();
    const r = await sim.payV2({ payment_id: id, amount: 2500, mode: 'manual' });
    expect(r.payment.status).toBe('ready');
    expect(r.payment_token).toMatch(/^ptk_/);
    const base = { paymentId: id, paymentToken: r.payment_token!, txId: r.transaction_id, totalAmount: 2500, currency: 'KRW' };
    expect(await client.confirmPayment({ ...base, paymentToken: 'ptk_forged' })).toMatchObject({ kind: 'refused', refusal: 'INVALID_PAYMENT_TOKEN' });
    expect(await client.confirmPayment({ ...base, totalAmount: 25 })).toMatchObject({ kind: 'refused', refusal: 'INFORMATION_MISMATCH' });
    expect(await client.confirmPayment({ ...base, txId: 'another' })).toMatchObject({ kind: 'refused', refusal: 'INFORMATION_MISMATCH' });
    expect(await client.confirmPayment(base)).toMatchObject({ kind: 'approved' });
    expect(await client.confirmPayment(base)).toMatchObject({ kind: 'refused', refusal: 'ALREADY_PAID' });
    expect((await client.getPayment(id))?.status).toBe('PAID');

    const declined = await sim.payV2({ payment_id: paymentId(), amount: 2500, mode: 'manual', outcome: 'failed' });
    expect(await client.confirmPayment({ ...base, paymentId: declined.payment.merchant_uid, paymentToken: declined.payment_token!, txId: declined.transaction_id }))
      .toMatchObject({ kind: 'refused', refusal: 'PG_PROVIDER' });
  });

  it('manual confirmation that answers late: PortOne decided, the client gave up (unavailable)', async () => {
    const id = paymentId();
    const r = await sim.payV2({ payment_id: id, amount: 900, mode: 'manual', faults: { manual_confirm_latency_ms: 1500 } });
    await expect(client.confirmPayment({ paymentId: id, paymentToken: r.payment_token!, totalAmount: 900, currency: 'KRW', timeoutMs: 200 }))
      .rejects.toBeInstanceOf(PortOneUnavailableError);
    expect((await client.getPayment(id))?.status).toBe('PAID');
  });

  it('REST faults: down is transient (retried, then unavailable); a wrong secret is refused', async () => {
    sim.setFaults({ rest_down: true });
    try {
      await expect(client.getPayment('anything')).rejects.toBeInstanceOf(PortOneUnavailableError);
    } finally {
      sim.setFaults({});
    }
    const wrong = new PortOneV2Client({ baseUrl: sim.url, secret: 'not-it', retries: 0 });
    await expect(wrong.getPayment('anything')).rejects.toMatchObject({ code: 'PORTONE_AUTH_FAILED' });
    expect(PortOneApiError).toBeDefined();
  });
});

describe('V1 REST takes the access token bare (iamporter, unmodified)', () => {
  it('iamporter gets a token and reads a payment and an order through the simulator', async () => {
    const v1 = await startSimulator({ impKey: 'key-1', impSecret: 'secret-1' });
    try {
      const { Iamporter } = createRequire(import.meta.url)('iamporter') as { Iamporter: new (o: { apiKey: string; secret: string; host: string }) => {
        findByImpUid(id: string): Promise<{ status: number; data: { imp_uid: string; status: string; amount: number } }>;
        findByMerchantUid(id: string): Promise<{ status: number; data: { imp_uid: string } }>;
      } };
      const { payment } = await v1.pay({ merchant_uid: `iamporter-${process.pid}`, amount: 1200 });
      const iamporter = new Iamporter({ apiKey: 'key-1', secret: 'secret-1', host: v1.url });
      const found = await iamporter.findByImpUid(payment.imp_uid);
      expect(found.data).toMatchObject({ imp_uid: payment.imp_uid, status: 'paid', amount: 1200 });
      expect((await iamporter.findByMerchantUid(`iamporter-${process.pid}`)).data.imp_uid).toBe(payment.imp_uid);
      // Bare or Bearer, an unknown token is still refused.
      for (const authorization of ['not-a-token', 'Bearer not-a-token']) {
        const res = await fetch(`${v1.url}/payments/${payment.imp_uid}`, { headers: { authorization } });
        expect(res.status).toBe(401);
      }
    } finally {
      await v1.close();
    }
  });
});
