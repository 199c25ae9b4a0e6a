/**
 * Secrets the API hands out or checks: the admin token, and order tokens (bearer tokens that let a
 * buyer read their order). Compared in constant time; order tokens are stored only as SHA-256.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sameSecret } from '@dropgate/domain';

/** True when `token` is ADMIN_TOKEN (never when none is configured). */
export function isAdminToken(token: string, adminToken: string | undefined): boolean {
  return adminToken !== undefined && sameSecret(token, adminToken);
}


/**
 * Random bytes for order tokens, drawn from the CSPRNG 4 KiB at a time (as node's randomUUID does)
 * instead of one call per order: each call was about 3 % of the API's CPU at a drop's order rush.
 * Every byte is handed out once.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;

function freshRandom(n: number): Buffer {
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return out;
}

/** A new order token (256 random bits, base64url) and the SHA-256 that is stored in its place. */
export function newOrderToken(): { token: string; hash: Buffer } {
  const token = freshRandom(32).toString('base64url');
  return { token, hash: orderTokenHash(token) };
}

export function orderTokenHash(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** True when `token` is the one whose hash is stored (`stored` null: the order has no token). */
export function orderTokenMatches(token: string, stored: Buffer | null): boolean {
  const given = orderTokenHash(token);
  // Compare against something of the same length even without a stored hash, so the time is the same.
  const expected = stored && stored.length === given.length ? stored : Buffer.alloc(given.length);
  return timingSafeEqual(given, expected) && stored !== null;
}
