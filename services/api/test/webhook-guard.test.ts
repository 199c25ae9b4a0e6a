/** Optional webhook protection: a secret token in the URL and a source-address allowlist behind a proxy. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, http, eventId, impUid, type TestStack } from '@dropgate/testkit';

let stack: TestStack;
let merchantUid: string;
const TOKEN = 'webhook-token-0123456789abcdef';
beforeAll(async () => {
  stack = await startStack({
    label: 'whguard', worker: false,
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
