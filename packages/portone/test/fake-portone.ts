/**
 * A tiny scripted PortOne on node:http, for failure modes the simulator does not produce on demand
 * (a 503 exactly twice, a body that is not JSON, a server that never answers, a skewed clock).
 * getToken is answered by default so each test scripts only the endpoint it is about.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** What to answer: a status and a body (objects are sent as JSON), optionally after a delay; `hang` never answers. */
export interface FakeAnswer {
  status?: number;
  body?: unknown;
  delayMs?: number;
  hang?: boolean;
}

export interface FakePortOne {
  url: string;
  /** Every request, getToken included. */
  requests: FakeRequest[];
  /** Requests to one path. */
  to(path: string): FakeRequest[];
  close(): Promise<void>;
}

/** A success envelope, as PortOne sends it. */
export const ok = (response: unknown): FakeAnswer => ({ status: 200, body: { code: 0, message: null, response } });

/** A token answer that lives `ttl` seconds by the server's own clock `nowSeconds`. */
export const tokenAnswer = (accessToken: string, ttl = 1800, nowSeconds = Math.floor(Date.now() / 1000)): FakeAnswer =>
  ok({ access_token: accessToken, expired_at: nowSeconds + ttl, now: nowSeconds });

/** A payment body with the fields the client reads. */
export function paymentBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    imp_uid: 'imp_123456789012',
    merchant_uid: 'order-1',
    amount: 1000,
    cancel_amount: 0,
    currency: 'KRW',
    status: 'paid',
    fail_reason: null,
    paid_at: 1_700_000_000,
    failed_at: 0,
    cancelled_at: 0,
    pay_method: 'card',
    pg_provider: 'html5_inicis',
    ...overrides,
  };
}

/**
 * Starts the fake on 127.0.0.1, port 0. `answer` gets each non-getToken request and how many
 * requests to that path came before it; `tokens` overrides the getToken answer the same way.
 */
export async function startFakePortOne(
  answer: (req: FakeRequest, n: number) => FakeAnswer,
  tokens: (req: FakeRequest, n: number) => FakeAnswer = (_req, n) => tokenAnswer(`token-${n + 1}`),
): Promise<FakePortOne> {
  const requests: FakeRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      const received: FakeRequest = {
        method: req.method ?? '',
        path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      const n = requests.filter((r) => r.path === path).length;
      requests.push(received);
      const a = path === '/users/getToken' ? tokens(received, n) : answer(received, n);
      if (a.hang === true) return;
      const send = (): void => {
        if (res.destroyed) return;
        const text = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
        res.writeHead(a.status ?? 200, { 'content-type': typeof a.body === 'string' ? 'text/html' : 'application/json' });
        res.end(text);
      };
      if (a.delayMs !== undefined) setTimeout(send, a.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    to: (path) => requests.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
