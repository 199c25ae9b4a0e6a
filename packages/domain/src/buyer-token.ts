/**
 * Signed buyer identity. A `buyer_id` in a request body is the caller's word: anyone can send a new one
 * with every request, so limits per buyer (orders per buyer, one place in the queue, one entry on the
 * waiting list) bound nothing on their own. With BUYER_TOKEN_SECRET set, the merchant's storefront,
 * which knows who is logged in, signs the buyer it serves, and dropgate takes an order, a queue place
 * or a waiting-list entry only for a buyer whose token it can verify: what one attacker can make
 * dropgate store is then bounded by the accounts the merchant vouches for, times the per-buyer limits.
 *
 * Token: `b1~<buyer_id>~<expires at, ms since the epoch>~<mac>`, where mac is the base64url (no
 * padding) HMAC-SHA256, keyed with the secret's UTF-8 bytes, of `buyer`, NUL, the buyer id, NUL, the
 * expiry as decimal digits. Buyer ids cannot contain `~` (RESOURCE_ID_PATTERN), so the parts split
 * unambiguously. Not tied to one event: the storefront signs its buyer once per session.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RESOURCE_ID_PATTERN } from './ids.ts';

const BUYER = new RegExp(RESOURCE_ID_PATTERN);
/** Longest a token may be: `b1~`, a 64-character buyer id, 15 digits, the 43-character mac, separators. */
export const BUYER_TOKEN_MAX_LENGTH = 128;

function buyerMac(secret: string, buyerId: string, expiresAt: string): string {
  return createHmac('sha256', secret).update('buyer').update('\u0000').update(buyerId).update('\u0000').update(expiresAt).digest('base64url');
}

/** Signs `buyerId` until `expiresAtMs`: what a storefront's backend does for its logged-in buyer. */
export function signBuyerToken(secret: string, buyerId: string, expiresAtMs: number): string {
  if (!BUYER.test(buyerId)) throw new RangeError('not a buyer id');
  // At most 15 digits, as buyerTokenProblem reads them (the year 33658 and before).
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0 || expiresAtMs >= 1e15) throw new RangeError('the expiry must be a time in ms');
  return `b1~${buyerId}~${expiresAtMs}~${buyerMac(secret, buyerId, String(expiresAtMs))}`;
}

/**
 * Why `token` does not vouch for `buyerId` now under any of `secrets` (rotation: several may be
 * active), or null when it does. Compared in constant time.
 */
export function buyerTokenProblem(secrets: readonly string[], buyerId: string, token: string | undefined, nowMs: number): string | null {
  if (token === undefined || token === '') return 'a buyer_token signed by the storefront is required for this buyer_id';
  if (token.length > BUYER_TOKEN_MAX_LENGTH) return 'not a buyer token';
  const [v, buyer, exp, mac, ...rest] = token.split('~');
  if (v !== 'b1' || buyer === undefined || exp === undefined || mac === undefined || rest.length > 0 || !/^\d{1,15}$/.test(exp) || !BUYER.test(buyer)) {
    return 'not a buyer token';
  }
  const given = Buffer.from(mac);
  const signed = secrets.some((secret) => {
    const expected = Buffer.from(buyerMac(secret, buyer, exp));
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
  if (!signed) return 'the buyer token is not signed by this storefront';
  if (buyer !== buyerId) return 'the buyer token is another buyer\'s';
  if (Number(exp) <= nowMs) return 'the buyer token expired: sign in again';
  return null;
}
