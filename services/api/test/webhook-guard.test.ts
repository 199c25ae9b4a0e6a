/** Optional webhook protection: a secret token in the URL and a source-address allowlist behind a proxy. */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, newOrder } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { requestLogSerializer } from '../src/app.ts';

let stack: ApiStack;
let merchantUid: string;
const TOKEN = 'webhook-token-0123456789abcdef';
beforeAll(async () => {
  stack = await startApiStack({
    label: 'whguard',
    env: { WEBHOOK_TOKEN: TOKEN, WEBHOOK_ALLOWED_IPS: '52.78.100.19,52.78.48.223,52.78.5.241', TRUST_PROXY: '127.0.0.1' },
  });
  const id = eventId('wh');
  await http(stack.url, 'POST', '/admin/events', { id, name: 'Guard', pools: [{ id: 'p', name: 'P', capacity: 5, price: 100 }] }, { admin: true });
  merchantUid = (await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'b', items: [{ pool: 'p', quantity: 1 }] })).body.merchant_uid;
});
afterAll(async () => { await stack?.close(); });

const post = (query: string, forwardedFor?: string) =>
  http(stack.url, 'POST', `/portone/v1/webhook${query}`, { imp_uid: impUid(), merchant_uid: merchantUid, status: 'paid' }, {
    headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
  });

describe('webhook protection', () => {
  it('accepts a webhook with the token from an allowed address behind the trusted proxy', async () => {
    const res = await post(`?token=${TOKEN}`, '52.78.48.223');
    expect(res.status).toBe(200);
    expect(res.body.received).toBe(true);
  });

  it('refuses a missing or wrong token', async () => {
    for (const q of ['', '?token=wrong']) {
      const res = await post(q, '52.78.48.223');
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('WEBHOOK_FORBIDDEN');
    }
  });

  it('refuses an address outside the allowlist, and one spoofed without the trusted proxy hop', async () => {
    const outside = await post(`?token=${TOKEN}`, '203.0.113.7');
    expect(outside.status).toBe(403);
    // The client claims an allowed address, but the hop in front of it (203.0.113.7) is not trusted.
    const spoofed = await post(`?token=${TOKEN}`, '52.78.48.223, 203.0.113.7');
    expect(spoofed.status).toBe(403);
    const queued = await stack.api.deps.queues.payments.getJobCounts('waiting', 'delayed');
    expect((queued.waiting ?? 0) + (queued.delayed ?? 0)).toBe(1);
  });
});

describe('webhook token hygiene (issue 8, defect 7)', () => {
  it('answers a wrong token and a wrong address with the same message, so neither check leaks', async () => {
    const badToken = await post('?token=wrong', '52.78.48.223');
    const badAddress = await post(`?token=${TOKEN}`, '203.0.113.7');
    expect(badToken.status).toBe(403);
    expect(badAddress.status).toBe(403);
    expect(badToken.body).toEqual(badAddress.body);
    expect(badToken.text).not.toContain('203.0.113.7');
  });

  it('never writes the token to the access log', () => {
    const logged = requestLogSerializer({ method: 'POST', url: `/portone/v1/webhook?token=${TOKEN}&x=1`, ip: '127.0.0.1' });
    expect(JSON.stringify(logged)).not.toContain(TOKEN);
    expect(logged.url).toBe('/portone/v1/webhook?token=REDACTED&x=1');
  });
});

describe('confirm source allowlist (issue 8, defect 3)', () => {
  let guarded: ApiStack;
  let order: { merchant_uid: string; amount: number };
  beforeAll(async () => {
    guarded = await startApiStack({ label: 'cfguard', env: { CONFIRM_ALLOWED_IPS: '52.78.100.19', TRUST_PROXY: '127.0.0.1' } });
    const id = eventId('cg');
    await http(guarded.url, 'POST', '/admin/events', { id, name: 'Guard', pools: [{ id: 'p', name: 'P', capacity: 5, price: 100 }] }, { admin: true });
    order = await newOrder(guarded.url, id, { buyer_id: 'b', items: [{ pool: 'p', quantity: 1 }] });
  });
  afterAll(async () => { await guarded?.close(); });

  it('refuses a confirm from outside the allowlist with FORBIDDEN and holds nothing; approves one from inside', async () => {
    const body = { imp_uid: impUid(), merchant_uid: order.merchant_uid, amount: order.amount };
    const outside = await http(guarded.url, 'POST', '/portone/v1/confirm', body, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(outside.status).toBe(403);
    expect(outside.body.code).toBe('FORBIDDEN');
    expect(await guarded.store.orderState(order.merchant_uid.split('.')[0]!, order.merchant_uid)).toMatchObject({ status: 'pending' });
    const inside = await http(guarded.url, 'POST', '/portone/v1/confirm', body, { headers: { 'x-forwarded-for': '52.78.100.19' } });
    expect(inside.status, inside.text).toBe(200);
  });

  it('refuses a source outside the allowlist on its headers, before its body is read (attack round 23A)', async () => {
    // Headers announcing a body that never comes: the refusal must not wait for it (a slow upload from
    // anywhere used to count as a late confirm, and a deadline miss).
    const url = new URL(guarded.url);
    const answer = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(`POST /portone/v1/confirm HTTP/1.1\r\nHost: ${url.host}\r\nX-Forwarded-For: 203.0.113.7\r\n`
          + 'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"imp_uid"');
      });
      socket.on('data', (d: Buffer) => {
        received += d.toString('utf8');
        if (received.includes('\r\n\r\n') && received.includes('}')) { socket.destroy(); resolve(received); }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(received));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'FORBIDDEN' });
  });
});
