/**
 * MAX_CONNECTIONS (lib/connection-limit.ts): one client holding idle connections used up the API
 * process's open files, and the next file anything opened threw EMFILE and ended the process. An API
 * process keeps at most MAX_CONNECTIONS client connections (by default four fifths of its open-files
 * limit) and closes the ones beyond as they come; the ones it keeps are served.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, waitFor } from '@dropgate/testkit';
import { connectionLimit, limitConnections, openFilesLimit } from '../src/lib/connection-limit.ts';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

describe('connectionLimit', () => {
  it('is MAX_CONNECTIONS when set, else four fifths of the open-files limit (keeping 64 files), else 10,000', () => {
    expect(connectionLimit(500, 20_000)).toBe(500);
    expect(connectionLimit(0, 20_000)).toBe(16_000);
    expect(connectionLimit(0, 1_024)).toBe(819);
    expect(connectionLimit(0, 100)).toBe(36);
    expect(connectionLimit(0, null)).toBe(10_000);
    const dir = mkdtempSync(join(tmpdir(), 'limits-'));
    writeFileSync(join(dir, 'limits'), 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            4096                 524288               files\n');
    expect(openFilesLimit(join(dir, 'limits'))).toBe(4_096);
    expect(openFilesLimit(join(dir, 'none'))).toBeNull();
  });
});

let stack: ApiStack;
beforeAll(async () => { stack = await startApiStack({ label: 'conns', env: { MAX_CONNECTIONS: '20' } }); });
afterAll(async () => { await stack?.close(); });

describe('an API process with MAX_CONNECTIONS 20', () => {
  it('closes the connections beyond 20 as they come, serves the ones it keeps, and goes on serving', async () => {
    const url = new URL(stack.url);
    const sockets: Socket[] = [];
    let closed = 0;
    try {
      for (let i = 0; i < 40; i++) {
        const s = connect(Number(url.port), url.hostname);
        s.on('error', () => undefined);
        s.on('close', () => { closed++; });
        sockets.push(s);
        await new Promise<void>((resolve) => { s.once('connect', () => resolve()); s.once('close', () => resolve()); });
      }
      await waitFor(async () => closed >= 20, 5_000, 'the connections beyond the limit closed');
      expect(closed).toBe(20);
      // A kept connection is served.
      const kept = sockets.find((s) => !s.destroyed && s.readyState === 'open')!;
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        kept.on('data', (d: Buffer) => {
          text += d.toString('utf8');
          if (text.includes('\r\n\r\n')) resolve(text);
        });
        kept.write(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const s of sockets) s.destroy();
    }
    // Once they are gone, new connections are served again.
    await waitFor(async () => (await http(stack.url, 'GET', '/healthz').catch(() => null))?.status === 200, 5_000, 'a new connection served');
  });
});

describe('when the allowed connections are held idle', () => {
  // A process of its own: the other test's closing connections do not mix in.
  let own: ApiStack;
  beforeAll(async () => { own = await startApiStack({ label: 'conns-idle', env: { MAX_CONNECTIONS: '20' } }); });
  afterAll(async () => { await own?.close(); });

  it('a connection at the bound closes the oldest idle one and is served at once', async () => {
    const url = new URL(own.url);
    const held: Socket[] = [];
    const closed = new Set<number>();
    /** Connection `n` sends `request`; resolves true once answered, false if closed first. */
    const open = (n: number, request: string) => new Promise<boolean>((resolve) => {
      const s = connect(Number(url.port), url.hostname);
      held.push(s);
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => { if (d.toString('utf8').includes('\r\n\r\n')) resolve(true); });
      s.once('close', () => { closed.add(n); resolve(false); });
      s.once('connect', () => s.write(request));
    });
    const request = `GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`;
    try {
      // 20 connections that make one request each and then sit idle (kept alive): the bound.
      for (let n = 0; n < 20; n++) expect(await open(n, request)).toBe(true);
      // A buyer's connection is served at once, long before the idle ones would time out (fastify
      // keeps them 72 s): the oldest idle one made room, and only it.
      expect(await open(20, request)).toBe(true);
      await waitFor(async () => closed.size > 0 || null, 2_000, 'the oldest idle connection closed');
      expect([...closed]).toEqual([0]);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});

describe('when connections that never finish a request fill the bound', () => {
  // A process of its own, as above.
  let own: ApiStack;
  beforeAll(async () => { own = await startApiStack({ label: 'conns-silent', env: { MAX_CONNECTIONS: '20' } }); });
  afterAll(async () => { await own?.close(); });

  /** One request on a fresh connection: the status line, or 'refused' when the connection closed unanswered. */
  const fresh = (port: number, request: string, rest?: { later: string; afterMs: number }) => new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('error', () => undefined);
    s.on('connect', () => {
      s.write(request);
      if (rest) setTimeout(() => { if (!s.destroyed) s.write(rest.later); }, rest.afterMs);
    });
    s.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      if (text.includes('\r\n')) { resolve(text.split('\r\n')[0]!); s.destroy(); }
    });
    s.once('close', () => resolve('refused'));
  });

  it('a client that sends its request as it connects is served (its body may follow), while silent, half-headed, half-bodied and answered-then-half-headed connections are held open (and reopened)', async () => {
    const url = new URL(own.url);
    const port = Number(url.port);
    const host = `Host: ${url.host}\r\n`;
    const held: Socket[] = [];
    let stop = false;
    /** A connection that sends `start` (maybe nothing) and then nothing more; reopened when closed, until the end. */
    const hold = (start: string) => {
      // A reopening scheduled before the end opens nothing after it (it would be left open).
      if (stop) return;
      const s = connect(port, url.hostname);
      held.push(s);
      s.on('error', () => undefined);
      s.on('connect', () => { if (start) s.write(start); });
      s.once('close', () => { if (!stop) setTimeout(() => hold(start), 5); });
    };
    /** A connection that makes one whole request, and once answered sends half of its next request's head. */
    const holdAfterAnswer = () => {
      if (stop) return;
      const s = connect(port, url.hostname);
      held.push(s);
      s.on('error', () => undefined);
      s.on('connect', () => s.write(`GET /healthz HTTP/1.1\r\n${host}\r\n`));
      s.once('data', () => s.write(`GET /healthz HTTP/1.1\r\n${host}`));
      s.once('close', () => { if (!stop) setTimeout(holdAfterAnswer, 5); });
    };
    const body = JSON.stringify({ imp_uid: 'imp_flood', merchant_uid: 'nope.x', amount: 1000 });
    const confirmHead = `POST /portone/v1/confirm HTTP/1.1\r\n${host}content-type: application/json\r\ncontent-length: ${body.length}\r\nConnection: close\r\n\r\n`;
    try {
      for (let i = 0; i < 10; i++) hold('');
      for (let i = 0; i < 10; i++) hold(`POST /portone/v1/confirm HTTP/1.1\r\n${host}`);
      for (let i = 0; i < 10; i++) hold(`POST /portone/v1/confirm HTTP/1.1\r\n${host}content-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
      for (let i = 0; i < 10; i++) holdAfterAnswer();
      await waitFor(async () => held.length >= 40 || null, 5_000, 'the flood open');
      await new Promise((r) => setTimeout(r, 200));
      // PortOne's confirm and a health check, each on a fresh connection, five times over: answered;
      // and a confirm whose body comes 100 ms after its head.
      for (let i = 0; i < 5; i++) {
        expect(await fresh(port, `GET /healthz HTTP/1.1\r\n${host}Connection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200/);
        expect(await fresh(port, `${confirmHead}${body}`)).toMatch(/^HTTP\/1\.1 (4\d\d)/);
        expect(await fresh(port, confirmHead, { later: body, afterMs: 100 })).toMatch(/^HTTP\/1\.1 (4\d\d)/);
      }
    } finally {
      stop = true;
      for (const s of held) s.destroy();
    }
  });
});

describe('limitConnections on a server of its own', () => {
  it('never closes a connection with a request being answered, pipelined behind one already answered', async () => {
    const server = createServer((req, res) => {
      // /slow answers after 300 ms: long enough for a flood to come while it is under way.
      setTimeout(() => res.end('ok'), req.url === '/slow' ? 300 : 0);
    });
    limitConnections(server, 5);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    const flood: Socket[] = [];
    try {
      // One connection pipelines a quick request and a slow one.
      const piped = connect(port, '127.0.0.1');
      let text = '';
      const both = new Promise<boolean>((resolve) => {
        piped.on('data', (d: Buffer) => {
          text += d.toString('utf8');
          if ((text.match(/HTTP\/1\.1 200/g) ?? []).length === 2) resolve(true);
        });
        piped.once('close', () => resolve(false));
      });
      piped.on('error', () => undefined);
      piped.on('connect', () => piped.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n'));
      // Once the quick answer is out, silent connections flood the bound of 5 many times over.
      await waitFor(async () => text.includes('HTTP/1.1 200') || null, 5_000, 'the quick answer');
      for (let i = 0; i < 20; i++) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        flood.push(s);
      }
      expect(await both).toBe(true);
      piped.destroy();
    } finally {
      for (const s of flood) s.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
