/**
 * MAX_CONNECTIONS (lib/connection-limit.ts): one client holding idle connections used up the API
 * process's open files, and the next file anything opened threw EMFILE and ended the process. An API
 * process keeps at most MAX_CONNECTIONS client connections (by default four fifths of its open-files
 * limit) and closes the ones beyond as they come; the ones it keeps are served.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, waitFor } from '@dropgate/testkit';
import { connectionLimit, openFilesLimit } from '../src/lib/connection-limit.ts';
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
  // A process of its own: the other test's refusals and closing connections do not mix in.
  let own: ApiStack;
  beforeAll(async () => { own = await startApiStack({ label: 'conns-idle', env: { MAX_CONNECTIONS: '20' } }); });
  afterAll(async () => { await own?.close(); });

  it('a refused connection closes the idle ones, so a buyer gets in on their next try', async () => {
    const url = new URL(own.url);
    const held: Socket[] = [];
    let closed = 0;
    /** A connection that sends `request` (if any); resolves true once answered, false if closed first. */
    const open = (request: string | null) => new Promise<boolean>((resolve) => {
      const s = connect(Number(url.port), url.hostname);
      held.push(s);
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => { if (d.toString('utf8').includes('\r\n\r\n')) resolve(true); });
      s.once('close', () => { closed++; resolve(false); });
      s.once('connect', () => { if (request) s.write(request); else setTimeout(() => resolve(!s.destroyed), 200); });
    });
    try {
      // 19 connections that make one request each and then sit idle (kept alive).
      for (let i = 0; i < 19; i++) await open(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
      // Silent connections until one is refused: the process is at its limit.
      let refused = false;
      for (let i = 0; i < 5 && !refused; i++) refused = !(await open(null));
      expect(refused).toBe(true);
      // A buyer gets in within seconds, long before the idle connections would time out (fastify
      // keeps them 72 s): the refusal closed them.
      await waitFor(async () => (await http(own.url, 'GET', '/healthz').catch(() => null))?.status === 200, 5_000, 'the buyer served');
      // More closed than the refused one: the idle ones (their close may land just after the buyer's answer).
      await waitFor(async () => closed > 1, 2_000, 'the idle connections closed');
      expect(closed).toBeGreaterThan(1);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
