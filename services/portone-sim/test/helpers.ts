/**
 * Test helpers: a local HTTP endpoint that plays the merchant (confirm or webhook receiver) and a
 * raw REST caller, so the simulator is checked against PortOne's shapes without our own client.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Simulator } from '../src/index.ts';

/** A request the local endpoint received. */
export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** When it arrived (performance.now()). */
  at: number;
}

/** What the endpoint answers; `delayMs` sleeps before answering. */
export interface Answer {
  status?: number;
  body?: unknown;
  delayMs?: number;
}

export interface Endpoint {
  url: string;
  requests: Received[];
  /** Resolves once `n` requests arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
  /**
   * Resolves once `n` answers are done: sent, or found unwanted (the caller had hung up by the time
   * a delayed answer was due). Rejects after `timeoutMs`.
   */
  waitAnswered(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a local merchant endpoint on 127.0.0.1, port 0. `answer` sees the request and its index. */
export async function startEndpoint(answer: (req: Received, index: number) => Answer = () => ({})): Promise<Endpoint> {
  const requests: Received[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let answered = 0;
  const answerWaiters: { n: number; resolve: () => void }[] = [];
  const done = (): void => {
    answered++;
    for (const w of answerWaiters.filter((w) => answered >= w.n)) w.resolve();
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      const index = requests.push(received) - 1;
      for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve();
      const a = answer(received, index);
      // 'close' comes once the answer is sent, or when the caller hung up first.
      res.once('close', done);
      const send = (): void => {
        if (res.destroyed) return;
        const body = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
        res.writeHead(a.status ?? 200, { 'content-type': typeof a.body === 'string' ? 'text/plain' : 'application/json' });
        res.end(body);
      };
      if (a.delayMs !== undefined) setTimeout(send, a.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    waitFor(n, timeoutMs = 5000) {
      if (requests.length >= n) return Promise.resolve(requests.slice());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${n} requests, got ${requests.length}`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(requests.slice());
          },
        });
      });
    },
    waitAnswered(n, timeoutMs = 5000) {
      if (answered >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${n} answers, ${answered} done`)), timeoutMs);
        answerWaiters.push({ n, resolve: () => { clearTimeout(timer); resolve(); } });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A REST answer: HTTP status and parsed body. */
export interface RestAnswer {
  status: number;
  body: { code: number; message: string | null; response: Record<string, unknown> | null };
}

/** Calls the simulator's REST API as a merchant would, without our client. */
export async function rest(sim: Simulator, method: string, path: string, opts: { body?: unknown; token?: string } = {}): Promise<RestAnswer> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  const res = await fetch(sim.url + path, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  return { status: res.status, body: (await res.json()) as RestAnswer['body'] };
}

/** A fresh access token. */
export async function token(sim: Simulator, impKey = 'key', impSecret = 'secret'): Promise<string> {
  const res = await rest(sim, 'POST', '/users/getToken', { body: { imp_key: impKey, imp_secret: impSecret } });
  const accessToken = res.body.response?.['access_token'];
  if (typeof accessToken !== 'string') throw new Error(`getToken failed: ${JSON.stringify(res.body)}`);
  return accessToken;
}

/** Calls a `/sim/*` route. */
export async function simCall(sim: Simulator, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(sim.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Asserts the PortOne envelope shape. */
export function isEnvelope(body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return typeof b['code'] === 'number' && 'message' in b && 'response' in b;
}
