/**
 * Slow clients cannot hold connections open: a request must arrive whole (headers and body) within
 * REQUEST_TIMEOUT_MS, or the API answers 408 and closes the connection. Trickling a byte at a time
 * (slow loris) does not reset that clock. Normal requests are served meanwhile.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

const REQUEST_TIMEOUT_MS = 1_000;
let stack: ApiStack;
let port: number;

beforeAll(async () => {
  stack = await startApiStack({ label: 'timeouts', env: { REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) } });
  port = Number(new URL(stack.url).port);
});
afterAll(async () => { await stack?.close(); });

interface SlowClient {
  socket: Socket;
  received: () => string;
  /** Resolves when the server closes the connection; rejects if it is still open after `ms`. */
  closedWithin(ms: number): Promise<void>;
  stop(): void;
}

/** A raw connection that sends `head` at once, then one byte every `everyMs` (never the whole body). */
async function slowClient(head: string, everyMs: number | null): Promise<SlowClient> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  socket.on('error', () => undefined);
  let data = '';
  socket.on('data', (chunk) => { data += chunk.toString(); });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(head);
  const timer = everyMs === null ? null : setInterval(() => { if (!socket.destroyed) socket.write('x'); }, everyMs);
  const stop = () => { if (timer) clearInterval(timer); socket.destroy(); };
  void closed.then(() => { if (timer) clearInterval(timer); });
  return {
    socket,
    received: () => data,
    stop,
    closedWithin: (ms) => {
      let t: NodeJS.Timeout;
      return Promise.race([
        closed.finally(() => clearTimeout(t)),
        new Promise<void>((_, reject) => { t = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms); }),
      ]);
    },
  };
}

const bodyHead = (length: number) =>
  `POST /events/slow-loris/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n{`;

describe('request timeouts', () => {
  it('closes a connection that sent its headers and one byte of a body, with a 408', async () => {
    const c = await slowClient(bodyHead(100), null);
    try {
      await c.closedWithin(REQUEST_TIMEOUT_MS + 4_000);
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      c.stop();
    }
  });

  it('closes connections that trickle a body byte by byte, while serving everyone else', async () => {
    // A byte every 200 ms keeps each connection busy: only the whole-request deadline can end them.
    const clients = await Promise.all(Array.from({ length: 50 }, () => slowClient(bodyHead(10_000), 200)));
    try {
      const health = await http(stack.url, 'GET', '/healthz');
      expect(health.status).toBe(200);
      await Promise.all(clients.map((c) => c.closedWithin(REQUEST_TIMEOUT_MS + 4_000)));
      for (const c of clients) expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      for (const c of clients) c.stop();
    }
  });

  it('closes a connection that trickles its headers', async () => {
    const c = await slowClient('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 200);
    try {
      await c.closedWithin(REQUEST_TIMEOUT_MS + 4_000);
    } finally {
      c.stop();
    }
  });

  it('still answers a request that takes its time within the deadline', async () => {
    const c = await slowClient('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', null);
    try {
      c.socket.write('Connection: close\r\n\r\n');
      await c.closedWithin(REQUEST_TIMEOUT_MS + 4_000);
      expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      c.stop();
    }
  });
});
