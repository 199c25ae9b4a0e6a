/**
 * Comparing a secret a caller presents with ours, and reading it from an `Authorization` header: for
 * every token a service checks (admin, order, webhook and metrics tokens).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** True when `given` equals `expected`, in time that depends on neither (both are hashed first). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest());
}

/** The token of an `Authorization: Bearer <token>` header (the scheme in any case: RFC 9110), or null when there is none. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
  return match ? match[1]! : null;
}
