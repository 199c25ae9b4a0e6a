/**
 * The V2 signature check (Standard Webhooks through @portone/server-sdk) on raw bodies: the official
 * test vector, tampering of each signed part, the 5-minute tolerance both ways, re-serialised JSON,
 * and secret rotation.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { verifyWebhook } from '@dropgate/portone';

// Standard Webhooks' own test vector (standard-webhooks spec and libraries).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const headers = (over: Partial<Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string>> = {}) => ({
  'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature, ...over,
});

/** Our own signature of `body`, as PortOne makes it (used for the tolerance and rotation cases). */
function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

afterEach(() => { vi.useRealTimers(); });
const at = (unixSeconds: number) => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(unixSeconds * 1000);
};

describe('verifyWebhook', () => {
  it('accepts the official Standard Webhooks vector and returns the parsed body', async () => {
    at(VECTOR.timestamp);
    expect(sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
    expect(await verifyWebhook([VECTOR.secret], VECTOR.body, headers())).toEqual({ ok: true, payload: { test: 2432232314 } });
  });

  it('refuses a tampered body, id, timestamp or signature, another secret, and re-serialised JSON', async () => {
    at(VECTOR.timestamp);
    const refused = async (body: string, h: Record<string, string>, secrets = [VECTOR.secret]) => {
      const r = await verifyWebhook(secrets, body, h);
      expect(r.ok).toBe(false);
      return r.ok ? null : r.reason;
    };
    expect(await refused('{"test": 2432232315}', headers())).toBe('NO_MATCHING_SIGNATURE');
    // The same JSON value, serialised differently (as a framework that parsed it first would): refused.
    expect(await refused(JSON.stringify(JSON.parse(VECTOR.body)), headers())).toBe('NO_MATCHING_SIGNATURE');
    expect(await refused(VECTOR.body, headers({ 'webhook-id': 'msg_other' }))).toBe('NO_MATCHING_SIGNATURE');
    expect(await refused(VECTOR.body, headers({ 'webhook-timestamp': String(VECTOR.timestamp + 1) }))).toBe('NO_MATCHING_SIGNATURE');
    expect(await refused(VECTOR.body, headers({ 'webhook-signature': 'v1,g1hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' }))).toBe('NO_MATCHING_SIGNATURE');
    expect(await refused(VECTOR.body, headers({ 'webhook-signature': 'v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' }))).toBe('NO_MATCHING_SIGNATURE');
    expect(await refused(VECTOR.body, headers(), [`whsec_${randomBytes(24).toString('base64')}`])).toBe('NO_MATCHING_SIGNATURE');
    expect(await refused(VECTOR.body, { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp) })).toBe('MISSING_REQUIRED_HEADERS');
    expect(await refused(VECTOR.body, headers(), [])).toBe('NO_SECRET');
  });

  it('keeps a 5-minute tolerance both ways, even for a correct signature', async () => {
    const signedAt = VECTOR.timestamp;
    at(signedAt + 300);
    expect((await verifyWebhook([VECTOR.secret], VECTOR.body, headers())).ok).toBe(true);
    at(signedAt + 301);
    expect(await verifyWebhook([VECTOR.secret], VECTOR.body, headers())).toEqual({ ok: false, reason: 'TIMESTAMP_TOO_OLD' });
    at(signedAt - 301);
    expect(await verifyWebhook([VECTOR.secret], VECTOR.body, headers())).toEqual({ ok: false, reason: 'TIMESTAMP_TOO_NEW' });
  });

  it('accepts any current secret while PortOne rotates them, and a signature list naming one of them', async () => {
    at(VECTOR.timestamp);
    const next = `whsec_${randomBytes(32).toString('base64')}`;
    const byNext = sign(next, VECTOR.id, VECTOR.timestamp, VECTOR.body);
    expect((await verifyWebhook([VECTOR.secret, next], VECTOR.body, headers({ 'webhook-signature': byNext }))).ok).toBe(true);
    expect((await verifyWebhook([next, VECTOR.secret], VECTOR.body, headers())).ok).toBe(true);
    // Both signatures in one header (space-separated), as during PortOne's own rotation.
    expect((await verifyWebhook([next], VECTOR.body, headers({ 'webhook-signature': `${VECTOR.signature} ${byNext}` }))).ok).toBe(true);
    // Retired: only the next secret is configured.
    expect((await verifyWebhook([next], VECTOR.body, headers())).ok).toBe(false);
  });

  it('answers NOT_JSON for a correctly signed body that is not JSON', async () => {
    at(VECTOR.timestamp);
    const body = 'not json';
    expect(await verifyWebhook([VECTOR.secret], body, headers({ 'webhook-signature': sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, body) })))
      .toEqual({ ok: false, reason: 'NOT_JSON' });
  });
});
