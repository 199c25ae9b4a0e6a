/**
 * Signed buyer identity: a token vouches for one buyer until its expiry, under the storefront's secret
 * (any of the active ones while it rotates), and for nothing else.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BUYER_TOKEN_MAX_LENGTH, buyerTokenProblem, signBuyerToken } from '../src/index.ts';

const SECRET = 'storefront-secret-0123456789abcdef';
const OLD = 'storefront-secret-of-last-month-xyz';
const NOW = Date.UTC(2027, 2, 1, 2, 0, 0);

describe('buyer tokens', () => {
  it('vouch for their buyer until they expire, under any active secret', () => {
    const t = signBuyerToken(SECRET, 'u-1', NOW + 60_000);
    expect(buyerTokenProblem([SECRET], 'u-1', t, NOW)).toBeNull();
    expect(buyerTokenProblem([OLD, SECRET], 'u-1', t, NOW)).toBeNull();
    expect(buyerTokenProblem([SECRET], 'u-1', signBuyerToken(OLD, 'u-1', NOW + 60_000), NOW)).toMatch(/not signed/);
    expect(buyerTokenProblem([SECRET], 'u-1', t, NOW + 60_000)).toMatch(/expired/);
    expect(buyerTokenProblem([SECRET], 'u-2', t, NOW)).toMatch(/another buyer/);
    expect(t.length).toBeLessThanOrEqual(BUYER_TOKEN_MAX_LENGTH);
    expect(signBuyerToken(SECRET, 'x'.repeat(64), 999_999_999_999_999).length).toBeLessThanOrEqual(BUYER_TOKEN_MAX_LENGTH);
  });

  it('follow the recipe the README gives storefronts (HMAC-SHA256 of "buyer", buyer id, expiry, NUL-separated)', () => {
    const mac = createHmac('sha256', SECRET).update(`buyer\u0000u-1\u0000${NOW + 1}`).digest('base64url');
    expect(signBuyerToken(SECRET, 'u-1', NOW + 1)).toBe(`b1~u-1~${NOW + 1}~${mac}`);
  });

  it('refuse anything changed, missing or malformed', () => {
    const t = signBuyerToken(SECRET, 'u-1', NOW + 60_000);
    const [v, buyer, exp, mac] = t.split('~') as [string, string, string, string];
    const flipped = mac.slice(0, -1) + (mac.endsWith('A') ? 'B' : 'A');
    for (const bad of [
      `${v}~${buyer}~${Number(exp) + 1}~${mac}`, // a later expiry
      `${v}~u-2~${exp}~${mac}`, // another buyer under this signature
      `${v}~${buyer}~${exp}~${flipped}`,
      `${v}~${buyer}~${exp}~${mac}~x`,
      `b2~${buyer}~${exp}~${mac}`,
      `${v}~${buyer}~-1~${mac}`,
      `${v}~${buyer}~1e20~${mac}`,
      `${v}~${buyer}~${exp}~`,
      `${v}~${buyer}~${exp}`,
      `${v}~bad~buyer~${exp}~${mac}`,
      'x'.repeat(BUYER_TOKEN_MAX_LENGTH + 1),
    ]) {
      expect(buyerTokenProblem([SECRET], 'u-1', bad, NOW), bad).not.toBeNull();
    }
    expect(buyerTokenProblem([SECRET], 'u-1', undefined, NOW)).toMatch(/required/);
    expect(buyerTokenProblem([SECRET], 'u-1', '', NOW)).toMatch(/required/);
    expect(() => signBuyerToken(SECRET, 'a~b', NOW)).toThrow(RangeError);
    expect(() => signBuyerToken(SECRET, 'u-1', 1.5)).toThrow(RangeError);
    // Never a token its own check would refuse: the expiry has at most 15 digits.
    expect(() => signBuyerToken(SECRET, 'u-1', 1e15)).toThrow(RangeError);
  });
});
