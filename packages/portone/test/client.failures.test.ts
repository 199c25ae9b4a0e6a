/**
 * The client against small scripted PortOne servers (node:http), for exact failure sequences:
 * retries with backoff, what is never retried, timeouts, network errors, token sharing and skew.
 */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PortOneApiError,
  PortOneAuthError,
  PortOneClient,
  PortOneProtocolError,
  PortOneUnavailableError,
  backoffDelay,
  type PortOneClientOptions,
} from '../src/index.ts';
import { ok, paymentBody, startFakePortOne, tokenAnswer, type FakeAnswer, type FakePortOne, type FakeRequest } from './fake-portone.ts';

const PAYMENT = '/payments/imp_123456789012';
const open: FakePortOne[] = [];

async function fake(answer: (req: FakeRequest, n: number) => FakeAnswer, tokens?: (req: FakeRequest, n: number) => FakeAnswer): Promise<FakePortOne> {
  const server = await startFakePortOne(answer, tokens);
  open.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

const client = (server: { url: string }, opts: Partial<PortOneClientOptions> = {}): PortOneClient =>
  new PortOneClient({ baseUrl: server.url, impKey: 'k', impSecret: 's', backoffMs: 10, ...opts });

describe('retries', () => {
  it('retries 503 with exponential backoff, then succeeds', async () => {
    const server = await fake((_req, n) => (n < 2 ? { status: 503, body: 'Service Unavailable' } : ok(paymentBody())));
    const payment = await client(server, { backoffMs: 100 }).getPayment('imp_123456789012');
    expect(payment?.status).toBe('paid');
    const attempts = server.to(PAYMENT);
    expect(attempts).toHaveLength(3);
    const [a, b, c] = attempts.map((r) => r.at);
    // Equal jitter: retry 1 waits 50..100 ms, retry 2 waits 100..200 ms.
    expect((b ?? 0) - (a ?? 0)).toBeGreaterThanOrEqual(45);
    expect((c ?? 0) - (b ?? 0)).toBeGreaterThanOrEqual(95);
  });

  it('gives up after `retries` and throws PortOneUnavailableError', async () => {
    const server = await fake(() => ({ status: 502, body: 'Bad Gateway' }));
    const err = await client(server, { retries: 2 }).getPayment('imp_123456789012').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneUnavailableError);
    expect(err).toMatchObject({ transient: true, attempts: 3, httpStatus: 502, lastFailure: 'http_error', endpoint: 'getPayment' });
    expect(server.to(PAYMENT)).toHaveLength(3);
  });

  it('retries a 2xx that is not an envelope (a proxy page), and a 429', async () => {
    const server = await fake((_req, n) =>
      n === 0 ? { status: 200, body: '<html>maintenance</html>' } : n === 1 ? { status: 429, body: { code: -1, message: 'slow down' } } : ok(paymentBody()),
    );
    expect(await client(server).getPayment('imp_123456789012')).toMatchObject({ imp_uid: 'imp_123456789012' });
    expect(server.to(PAYMENT)).toHaveLength(3);
  });

  it('never retries an error envelope', async () => {
    const server = await fake(() => ({ status: 200, body: { code: 1, message: '이미 전액취소된 주문입니다.', response: null } }));
    const results: string[] = [];
    const err = await client(server, { onRequest: (endpoint, result) => results.push(`${endpoint}:${result}`) })
      .cancelPayment({ impUid: 'imp_123456789012', checksum: 0, reason: 'x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneApiError);
    expect(err).toMatchObject({ envelopeCode: 1, portoneMessage: '이미 전액취소된 주문입니다.', message: '이미 전액취소된 주문입니다.', transient: false });
    expect(server.to('/payments/cancel')).toHaveLength(1);
    expect(results).toEqual(['getToken:ok', 'cancelPayment:api_error']);
  });

  it('never retries a 4xx other than 401/404, with or without an envelope', async () => {
    const server = await fake((req) =>
      req.path === '/payments/prepare' ? { status: 400, body: { code: -1, message: '잘못된 요청', response: null } } : { status: 403, body: 'Forbidden' },
    );
    const c = client(server);
    await expect(c.preparePayment('order-1', 1000)).rejects.toMatchObject({ httpStatus: 400, envelopeCode: -1, code: 'PORTONE_API_ERROR' });
    const err = await c.getPayment('imp_123456789012').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneApiError);
    expect(err).toMatchObject({ httpStatus: 403, envelopeCode: null });
    expect(server.to('/payments/prepare')).toHaveLength(1);
    expect(server.to(PAYMENT)).toHaveLength(1);
  });
});

describe('timeouts and network errors', () => {
  it('a server that never answers: each attempt times out, then PortOneUnavailableError', async () => {
    const server = await fake(() => ({ hang: true }));
    const started = performance.now();
    const err = await client(server, { timeoutMs: 100, retries: 1 }).getPayment('imp_123456789012').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneUnavailableError);
    expect(err).toMatchObject({ lastFailure: 'timeout', attempts: 2, httpStatus: null });
    expect(server.to(PAYMENT)).toHaveLength(2);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('a body that arrives too late counts as a timeout', async () => {
    const server = await fake(() => ({ ...ok(paymentBody()), delayMs: 300 }));
    const err = await client(server, { timeoutMs: 100, retries: 0 }).getPayment('imp_123456789012').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PORTONE_UNAVAILABLE', lastFailure: 'timeout', attempts: 1 });
  });

  it('connection refused: PortOneUnavailableError with lastFailure network_error', async () => {
    // Reserve a free port, then close it: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as { port: number };
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await client({ url: `http://127.0.0.1:${port}` }, { retries: 1 }).getPayment('imp_1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneUnavailableError);
    expect(err).toMatchObject({ lastFailure: 'network_error', attempts: 2, endpoint: 'getToken' });
  });
});

describe('tokens', () => {
  it('concurrent callers share one token request', async () => {
    const server = await fake(
      () => ok(paymentBody()),
      () => ({ ...tokenAnswer('shared'), delayMs: 100 }),
    );
    const c = client(server);
    await Promise.all(Array.from({ length: 8 }, () => c.getPayment('imp_123456789012')));
    expect(server.to('/users/getToken')).toHaveLength(1);
    expect(server.to(PAYMENT).every((r) => r.headers.authorization === 'Bearer shared')).toBe(true);
  });

  it('trusts the token lifetime from the server\'s clock, not ours (skew)', async () => {
    // PortOne's clock is three hours behind ours: expired_at is in our past, yet the token lives 30 min.
    const skewedNow = Math.floor(Date.now() / 1000) - 3 * 3600;
    const server = await fake(() => ok(paymentBody()), () => tokenAnswer('skewed', 1800, skewedNow));
    const c = client(server);
    await c.getPayment('imp_123456789012');
    await c.getPayment('imp_123456789012');
    expect(server.to('/users/getToken')).toHaveLength(1);
  });

  it('a token failure is not cached: the next call asks again', async () => {
    const server = await fake(
      () => ok(paymentBody()),
      (_req, n) => (n === 0 ? { status: 500, body: 'boom' } : tokenAnswer('second')),
    );
    const c = client(server, { retries: 0 });
    await expect(c.getPayment('imp_123456789012')).rejects.toBeInstanceOf(PortOneUnavailableError);
    expect(await c.getPayment('imp_123456789012')).toMatchObject({ status: 'paid' });
    expect(server.to(PAYMENT)[0]?.headers.authorization).toBe('Bearer second');
  });

  it('a 401 on a fresh token too: PortOneAuthError after exactly one renewal', async () => {
    const server = await fake(() => ({ status: 401, body: { code: -1, message: 'Unauthorized', response: null } }));
    const err = await client(server).getPayment('imp_123456789012').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortOneAuthError);
    expect(err).toMatchObject({ transient: false, endpoint: 'getPayment' });
    expect(server.requests.map((r) => r.path)).toEqual(['/users/getToken', PAYMENT, '/users/getToken', PAYMENT]);
  });

  it('getToken answered with an error envelope is a PortOneAuthError', async () => {
    const server = await fake(
      () => ok(paymentBody()),
      () => ({ status: 200, body: { code: -1, message: '인증 정보가 올바르지 않습니다.', response: null } }),
    );
    await expect(client(server).getPayment('imp_123456789012')).rejects.toMatchObject({
      code: 'PORTONE_AUTH_FAILED',
      portoneMessage: '인증 정보가 올바르지 않습니다.',
    });
  });
});

describe('requests', () => {
  it('cancelPayment always sends checksum, with imp_uid, merchant_uid, amount, reason and the bearer token', async () => {
    const server = await fake(() => ok(paymentBody({ cancel_amount: 300 })));
    const c = client(server);
    const result = await c.cancelPayment({ impUid: 'imp_123456789012', merchantUid: 'order-1', amount: 300, checksum: 1000, reason: '좌석 없음' });
    expect(result.cancel_amount).toBe(300);
    await c.cancelPayment({ impUid: 'imp_123456789012', checksum: 0, reason: '전액' });
    const [first, second] = server.to('/payments/cancel');
    expect(first?.method).toBe('POST');
    expect(first?.headers['content-type']).toBe('application/json');
    expect(first?.headers.authorization).toBe('Bearer token-1');
    expect(JSON.parse(first?.body ?? '{}')).toEqual({ imp_uid: 'imp_123456789012', merchant_uid: 'order-1', amount: 300, checksum: 1000, reason: '좌석 없음' });
    // checksum 0 is still sent: falsy is not absent.
    expect(JSON.parse(second?.body ?? '{}')).toEqual({ imp_uid: 'imp_123456789012', checksum: 0, reason: '전액' });
    await expect(c.cancelPayment({ impUid: 'x', checksum: Number.NaN, reason: 'x' })).rejects.toThrow(/checksum/);
  });

  it('encodes path segments and sends getToken credentials', async () => {
    const server = await fake(() => ok(paymentBody({ merchant_uid: 'a/b c' })));
    await client(server).findPaymentByMerchantUid('a/b c');
    expect(server.requests[1]?.path).toBe('/payments/find/a%2Fb%20c');
    expect(JSON.parse(server.requests[0]?.body ?? '{}')).toEqual({ imp_key: 'k', imp_secret: 's' });
  });

  it('refuses a payment it cannot trust with PortOneProtocolError', async () => {
    const server = await fake(() => ok(paymentBody({ status: 'weird' })));
    await expect(client(server).getPayment('imp_123456789012')).rejects.toBeInstanceOf(PortOneProtocolError);
  });

  it('a throwing onRequest does not fail the call', async () => {
    const server = await fake(() => ok(paymentBody()));
    const c = client(server, {
      onRequest: () => {
        throw new Error('metrics broke');
      },
    });
    expect(await c.getPayment('imp_123456789012')).toMatchObject({ status: 'paid' });
  });

  it('reports each attempt to onRequest with its duration in seconds', async () => {
    const server = await fake((_req, n) => (n === 0 ? { status: 503, body: 'x' } : { ...ok(paymentBody()), delayMs: 50 }));
    const seen: [string, string, number][] = [];
    await client(server, { onRequest: (e, r, s) => seen.push([e, r, s]) }).getPayment('imp_123456789012');
    expect(seen.map(([e, r]) => `${e}:${r}`)).toEqual(['getToken:ok', 'getPayment:http_error', 'getPayment:ok']);
    expect(seen[2]?.[2]).toBeGreaterThanOrEqual(0.045);
    expect(seen[2]?.[2]).toBeLessThan(5);
  });
});

describe('backoffDelay', () => {
  it('doubles per attempt, jittered within the upper half', () => {
    for (let i = 0; i < 200; i++) {
      for (const [attempt, lo, hi] of [
        [1, 100, 200],
        [2, 200, 400],
        [3, 400, 800],
      ] as const) {
        const d = backoffDelay(200, attempt);
        expect(d).toBeGreaterThanOrEqual(lo);
        expect(d).toBeLessThanOrEqual(hi);
      }
    }
  });
});
