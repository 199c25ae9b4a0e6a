/**
 * Our PortOne client (@dropgate/portone) against the simulator, over real HTTP: tokens, payments, cancel with
 * checksum, prepare, typed errors, and PortOne being down.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSimulator, type Simulator } from '../src/index.ts';
import { rest, token } from './helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PortOneApiError,
  PortOneAuthError,
  PortOneClient,
  PortOneUnavailableError,
  type PortOneClientOptions,
  type PortOneRequestResult,
} from '@dropgate/portone';

let sim: Simulator;
let uid = 0;
const order = (): string => `client-${process.pid}-${++uid}`;

beforeAll(async () => {
  sim = await startSimulator({ impKey: 'test-key', impSecret: 'test-secret' });
});
afterAll(async () => {
  await sim.close();
});

/** A client plus the log of what it reported to metrics. */
function clientFor(target: Simulator, opts: Partial<PortOneClientOptions> = {}) {
  const calls: { endpoint: string; result: PortOneRequestResult }[] = [];
  const client = new PortOneClient({
    baseUrl: target.url,
    impKey: 'test-key',
    impSecret: 'test-secret',
    backoffMs: 10,
    onRequest: (endpoint, result) => calls.push({ endpoint, result }),
    ...opts,
  });
  const count = (endpoint: string, result?: PortOneRequestResult): number =>
    calls.filter((c) => c.endpoint === endpoint && (result === undefined || c.result === result)).length;
  return { client, calls, count };
}

describe('tokens', () => {
  it('gets one token and reuses it across calls, concurrent ones included', async () => {
    const { client, count } = clientFor(sim);
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000 });
    await Promise.all(Array.from({ length: 10 }, () => client.getPayment(payment.imp_uid)));
    await client.getPayment(payment.imp_uid);
    expect(count('getToken')).toBe(1);
    expect(count('getPayment', 'ok')).toBe(11);
  });

  it('renews the token before it expires (short tokenTtlSeconds)', async () => {
    const shortLived = await startSimulator({ tokenTtlSeconds: 2 });
    try {
      const { client, count } = clientFor(shortLived);
      await client.getPayment('imp_000000000000');
      await client.getPayment('imp_000000000000');
      expect(count('getToken')).toBe(1);
      // Renewal happens at 3/4 of a short token's life (1.5 s), before the simulator expires it at 2 s.
      await new Promise((resolve) => setTimeout(resolve, 1600));
      await client.getPayment('imp_000000000000');
      expect(count('getToken')).toBe(2);
      // Never a 401: the expired token was not used.
      expect(count('getPayment', 'http_error')).toBe(0);
      expect(count('getPayment', 'not_found')).toBe(3);
    } finally {
      await shortLived.close();
    }
  });

  it('on a 401 drops the token and retries once with a fresh one', async () => {
    const other = await startSimulator();
    try {
      const { client, calls } = clientFor(other);
      expect(await client.getPayment('imp_000000000000')).toBeNull();
      other.reset(); // forgets every token the simulator issued
      expect(await client.getPayment('imp_000000000000')).toBeNull();
      expect(calls.map((c) => `${c.endpoint}:${c.result}`)).toEqual([
        'getToken:ok',
        'getPayment:not_found',
        'getPayment:http_error',
        'getToken:ok',
        'getPayment:not_found',
      ]);
    } finally {
      await other.close();
    }
  });

  it('throws PortOneAuthError when PortOne refuses the credentials', async () => {
    const { client } = clientFor(sim, { impSecret: 'wrong' });
    const err = await client.getPayment('imp_000000000000').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneAuthError);
    expect(err).toMatchObject({ code: 'PORTONE_AUTH_FAILED', transient: false, httpStatus: 401, endpoint: 'getToken' });
  });
});

describe('payments', () => {
  it('reads a payment with the V1 fields', async () => {
    const { client } = clientFor(sim);
    const merchantUid = order();
    const { payment } = await sim.pay({ merchant_uid: merchantUid, amount: 150000 });
    const fetched = await client.getPayment(payment.imp_uid);
    expect(fetched).toEqual({
      imp_uid: payment.imp_uid,
      merchant_uid: merchantUid,
      amount: 150000,
      cancel_amount: 0,
      currency: 'KRW',
      status: 'paid',
      fail_reason: null,
      paid_at: payment.paid_at,
      failed_at: 0,
      cancelled_at: 0,
      pay_method: 'card',
      pg_provider: 'html5_inicis',
    });
  });

  it('resolves null for an unknown imp_uid or an order without payments', async () => {
    const { client, count } = clientFor(sim);
    expect(await client.getPayment('imp_000000000000')).toBeNull();
    expect(await client.findPaymentByMerchantUid(order())).toBeNull();
    expect(count('getPayment', 'not_found')).toBe(1);
    expect(count('findPayment', 'not_found')).toBe(1);
  });

  it('reads several payments in one call, only those PortOne knows and was asked for', async () => {
    const { client, count } = clientFor(sim);
    const a = (await sim.pay({ merchant_uid: order(), amount: 1000 })).payment;
    const b = (await sim.pay({ merchant_uid: order(), amount: 2000, outcome: 'abandoned' })).payment;
    const found = await client.getPayments([a.imp_uid, 'imp_000000000000', b.imp_uid]);
    expect([...found.keys()].sort()).toEqual([a.imp_uid, b.imp_uid].sort());
    expect(found.get(a.imp_uid)).toEqual(await client.getPayment(a.imp_uid));
    expect(found.get(b.imp_uid)).toMatchObject({ status: 'ready', amount: 2000 });
    expect(count('getPayments', 'ok')).toBe(1);
    // None known: PortOne's 404, an empty answer.
    expect((await client.getPayments(['imp_000000000001', 'imp_000000000002'])).size).toBe(0);
    expect(count('getPayments', 'not_found')).toBe(1);
    expect((await client.getPayments([])).size).toBe(0);
    await expect(client.getPayments(Array.from({ length: 101 }, (_, i) => `imp_${i}`))).rejects.toThrow(RangeError);
  });

  it('leaves out of a list answer an entry it cannot read, and keeps the others', async () => {
    // A local PortOne whose list answer carries one unreadable payment beside a good one.
    const good = { imp_uid: 'imp_good', merchant_uid: 'm-1', amount: 1000, cancel_amount: 0, currency: 'KRW', status: 'paid', paid_at: 1, failed_at: 0, cancelled_at: 0 };
    const server = createServer((req, res) => {
      req.resume();
      const now = Math.floor(Date.now() / 1000);
      const body = req.url === '/users/getToken'
        ? { code: 0, message: null, response: { access_token: 't', expired_at: now + 3600, now } }
        : { code: 0, message: null, response: [good, { ...good, imp_uid: 'imp_bad', status: 'made-up' }] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = new PortOneClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, impKey: 'k', impSecret: 's', backoffMs: 10 });
      const found = await client.getPayments(['imp_good', 'imp_bad']);
      expect([...found.keys()]).toEqual(['imp_good']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('finds the latest payment of an order', async () => {
    const { client } = clientFor(sim);
    const merchantUid = order();
    await sim.pay({ merchant_uid: merchantUid, amount: 1000, outcome: 'failed' });
    const { payment: second } = await sim.pay({ merchant_uid: merchantUid, amount: 1000, outcome: 'abandoned' });
    const found = await client.findPaymentByMerchantUid(merchantUid);
    expect(found).toMatchObject({ imp_uid: second.imp_uid, status: 'ready' });
  });

  it('finds every payment of an order, oldest first, across pages of 20', async () => {
    const { client, count } = clientFor(sim);
    expect(await client.findAllPaymentsByMerchantUid(order())).toEqual([]);
    expect(count('findAllPayments', 'not_found')).toBe(1);
    const merchantUid = order();
    const made: string[] = [];
    for (let i = 0; i < 23; i++) {
      const { payment } = await sim.pay({ merchant_uid: merchantUid, amount: 1000, outcome: i === 3 ? 'paid' : 'failed' });
      made.push(payment.imp_uid);
    }
    await sim.pay({ merchant_uid: order(), amount: 1000 });
    const all = await client.findAllPaymentsByMerchantUid(merchantUid);
    expect(all.map((p) => p.imp_uid)).toEqual(made);
    expect(all.filter((p) => p.status === 'paid').map((p) => p.imp_uid)).toEqual([made[3]]);
    expect(count('findAllPayments', 'ok')).toBe(2);
    // At most `maxPages` pages are read.
    expect(await client.findAllPaymentsByMerchantUid(merchantUid, 1)).toHaveLength(20);
  });
});

describe('the store\'s paid payments', () => {
  it('lists payments paid in a window, oldest first, 100 a page, and never other statuses', async () => {
    const own = await startSimulator({ impKey: 'test-key', impSecret: 'test-secret' });
    try {
      const { client, count } = clientFor(own);
      const from = Math.floor(Date.now() / 1000) - 1;
      const made: string[] = [];
      for (let i = 0; i < 103; i++) made.push((await own.pay({ merchant_uid: order(), amount: 1000 + i })).payment.imp_uid);
      const failed = await own.pay({ merchant_uid: order(), amount: 1000, outcome: 'failed' });
      const to = Math.ceil(Date.now() / 1000) + 1;
      const first = await client.listPaidPayments(from, to, 1);
      expect(first.payments).toHaveLength(100);
      expect(first.next).toBe(2);
      const second = await client.listPaidPayments(from, to, 2);
      expect(second.next).toBeNull();
      const listed = [...first.payments, ...second.payments].map((p) => p.imp_uid);
      expect(new Set(listed)).toEqual(new Set(made));
      expect(listed).not.toContain(failed.payment.imp_uid);
      const paidAt = [...first.payments, ...second.payments].map((p) => p.paid_at);
      expect(paidAt).toEqual([...paidAt].sort((a, b) => a - b));
      // A window that ended before they were paid: nothing.
      expect(await client.listPaidPayments(from - 120, from - 60, 1)).toEqual({ payments: [], next: null });
      expect(count('listPaidPayments', 'ok')).toBe(3);
    } finally {
      await own.close();
    }
  });
});

describe('the store\'s cancelled payments', () => {
  it('lists payments cancelled in full in a window by their cancel time, oldest cancel first, whenever they were paid', async () => {
    // PortOne's clock moved by hand: payments paid an hour apart, cancelled in the other order.
    let offsetMs = -3_600_000;
    const clock = { now: () => Date.now() + offsetMs, advance: (ms: number) => { offsetMs += ms; } };
    const own = await startSimulator({ impKey: 'test-key', impSecret: 'test-secret', clock });
    try {
      const { client, count } = clientFor(own);
      const early = (await own.pay({ merchant_uid: order(), amount: 1000 })).payment.imp_uid;
      clock.advance(1_800_000);
      const late = (await own.pay({ merchant_uid: order(), amount: 1000 })).payment.imp_uid;
      const part = (await own.pay({ merchant_uid: order(), amount: 1000 })).payment.imp_uid;
      clock.advance(1_800_000);
      const from = Math.floor(clock.now() / 1000);
      own.cancelPayment(late);
      clock.advance(5_000);
      own.cancelPayment(early);
      own.cancelPayment(part, { amount: 400 });
      const to = Math.floor(clock.now() / 1000);
      const page = await client.listCancelledPayments(from, to, 1);
      // By cancel time, not paid time (`sorting=updated`); a partly cancelled payment is still paid.
      expect(page.payments.map((p) => p.imp_uid)).toEqual([late, early]);
      expect(page.payments.every((p) => p.status === 'cancelled' && p.cancelled_at >= from && p.cancelled_at <= to)).toBe(true);
      expect(page.next).toBeNull();
      // The window is of cancel times: one that ends before the cancels lists nothing, though both were paid in it.
      expect(await client.listCancelledPayments(from - 7_200, from - 1, 1)).toEqual({ payments: [], next: null });
      expect((await client.listCancelledPayments(from + 1, to, 1)).payments.map((p) => p.imp_uid)).toEqual([early]);
      expect(count('listCancelledPayments', 'ok')).toBe(3);
      // As PortOne, the list is sorted by what `sorting` names, not by the time it is filtered by: by
      // paid time, the other order (a sweep paging by cancel time must ask `updated`).
      const byPaid = await rest(own, 'GET', `/payments/status/cancelled?from=${from}&to=${to}&sorting=paid`, { token: await token(own, 'test-key', 'test-secret') });
      expect((byPaid.body.response as { list: { imp_uid: string }[] }).list.map((p) => p.imp_uid)).toEqual([early, late]);
    } finally {
      await own.close();
    }
  });
});

describe('cancel', () => {
  it('cancels partially then fully, sending the expected balance as checksum', async () => {
    const { client } = clientFor(sim);
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000 });
    const partial = await client.cancelPayment({ impUid: payment.imp_uid, amount: 400, checksum: 1000, reason: '부분 환불' });
    expect(partial).toMatchObject({ status: 'paid', cancel_amount: 400 });
    const full = await client.cancelPayment({ impUid: payment.imp_uid, merchantUid: payment.merchant_uid, checksum: 600, reason: '전액 환불' });
    expect(full).toMatchObject({ status: 'cancelled', cancel_amount: 1000 });
    expect(full.cancelled_at).toBeGreaterThan(0);
    const cancels = sim.ledger({ imp_uid: payment.imp_uid }).cancels;
    expect(cancels.map((c) => [c.amount, c.checksum, c.ok])).toEqual([
      [400, 1000, true],
      [600, 600, true],
    ]);
  });

  it('a stale checksum is a PortOneApiError with PortOne\'s Korean message, not retried, and refunds nothing', async () => {
    const { client, count } = clientFor(sim);
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000 });
    await client.cancelPayment({ impUid: payment.imp_uid, amount: 1000, checksum: 1000, reason: '환불' });
    // A retried refund (its first answer lost) carries the old checksum: PortOne refuses it.
    const err = await client
      .cancelPayment({ impUid: payment.imp_uid, amount: 1000, checksum: 1000, reason: '환불' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneApiError);
    expect(err).toMatchObject({ code: 'PORTONE_API_ERROR', envelopeCode: 1, httpStatus: 200, transient: false, endpoint: 'cancelPayment' });
    expect((err as PortOneApiError).message).toMatch(/[가-힣]/);
    expect(count('cancelPayment', 'api_error')).toBe(1);
    expect(sim.getPayment(payment.imp_uid)?.cancel_amount).toBe(1000);
    expect(sim.ledger({ imp_uid: payment.imp_uid }).cancels.filter((c) => c.ok)).toHaveLength(1);
  });
});

describe('prepare', () => {
  it('pre-registers an amount so a tampered payment window fails', async () => {
    const { client } = clientFor(sim);
    const merchantUid = order();
    await client.preparePayment(merchantUid, 80000);
    const tampered = await sim.pay({ merchant_uid: merchantUid, amount: 800 });
    expect(tampered.payment.status).toBe('failed');
    const honest = await sim.pay({ merchant_uid: merchantUid, amount: 80000 });
    expect(honest.payment.status).toBe('paid');
    await expect(client.preparePayment(merchantUid, 80000)).rejects.toBeInstanceOf(PortOneApiError);
  });
});

describe('PortOne unavailable', () => {
  it('rest_down: retries, then PortOneUnavailableError (transient)', async () => {
    const down = await startSimulator({ faults: { rest_down: true } });
    try {
      const { client, count } = clientFor(down, { retries: 2 });
      const err = await client.getPayment('imp_000000000000').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortOneUnavailableError);
      expect(err).toMatchObject({ code: 'PORTONE_UNAVAILABLE', transient: true, attempts: 3, httpStatus: 503, lastFailure: 'http_error' });
      expect(count('getToken', 'http_error')).toBe(3);
    } finally {
      await down.close();
    }
  });

  it('rest_latency_ms beyond timeoutMs: PortOneUnavailableError with lastFailure timeout', async () => {
    const slow = await startSimulator({ faults: { rest_latency_ms: 300 } });
    try {
      const { client, count } = clientFor(slow, { timeoutMs: 100, retries: 1 });
      const err = await client.getPayment('imp_000000000000').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortOneUnavailableError);
      expect(err).toMatchObject({ lastFailure: 'timeout', attempts: 2 });
      expect(count('getToken', 'timeout')).toBe(2);
    } finally {
      await slow.close();
    }
  });

  it('recovers when PortOne comes back', async () => {
    const flaky = await startSimulator();
    try {
      const { client } = clientFor(flaky, { retries: 5, backoffMs: 50 });
      flaky.setFaults({ rest_down: true });
      setTimeout(() => flaky.setFaults({}), 150);
      expect(await client.getPayment('imp_000000000000')).toBeNull();
    } finally {
      await flaky.close();
    }
  });
});
