/**
 * Who the buyer is. With BUYER_TOKEN_SECRET set, a request that makes dropgate store something for a
 * buyer (an order, a queue place, a waiting-list entry) must carry a `buyer_token` the storefront
 * signed for its `buyer_id` (@dropgate/domain's buyer-token.ts); checked before anything is looked up
 * or written. Without the secret a buyer id is the caller's word, as before.
 */
import { isIP } from 'node:net';
import { normalizeIP, type RateLimitOptions } from '@fastify/rate-limit';
import { DomainError, buyerTokenProblem } from '@dropgate/domain';
import type { AppDeps } from '../deps.ts';

export type BuyerEndpoint = 'orders' | 'queue' | 'waitlist';

/** @returns whether the buyer was verified (false: no BUYER_TOKEN_SECRET, the buyer id is the caller's word). */
export function requireBuyer(deps: AppDeps, endpoint: BuyerEndpoint, buyerId: string, token: string | undefined): boolean {
  const secrets = deps.config.buyerTokenSecrets;
  if (secrets.length === 0) return false;
  const problem = buyerTokenProblem(secrets, buyerId, token, deps.clock.now());
  if (problem === null) return true;
  // Labels are fixed words, never the caller's text (the event id is not checked yet).
  deps.metrics.buyerRefusals.inc({ endpoint, code: 'BUYER_UNVERIFIED' });
  throw new DomainError('BUYER_UNVERIFIED', problem);
}

/** Counts an order refused for its buyer's order bound (ORDER_LIMIT) as it passes. */
export function countOrderLimit(deps: AppDeps, error: unknown): never {
  if (error instanceof DomainError && error.code === 'ORDER_LIMIT') deps.metrics.buyerRefusals.inc({ endpoint: 'orders', code: 'ORDER_LIMIT' });
  throw error;
}

/**
 * The route config that puts an order or join under ORDERS_PER_IP_PER_MINUTE (@fastify/rate-limit,
 * registered in app.ts when it is set): a budget per client address (behind TRUST_PROXY, the address
 * the proxies saw) and endpoint, kept in this process (the plugin's in-memory store keeps one per
 * route). Checked when the request arrives, before its body is read. Past it: 429 RATE_LIMITED with
 * Retry-After.
 */
export function perAddressLimit(deps: AppDeps, endpoint: BuyerEndpoint): { rateLimit?: RateLimitOptions } {
  const max = deps.config.ordersPerIpPerMinute;
  if (max === 0) return {};
  return {
    rateLimit: {
      max,
      timeWindow: 60_000,
      keyGenerator: (request) => addressKey(request.ip),
      onExceeded: () => deps.metrics.buyerRefusals.inc({ endpoint, code: 'RATE_LIMITED' }),
      errorResponseBuilder: (_request, context) => new DomainError(
        'RATE_LIMITED', `at most ${max} of these requests a minute from one address; retry in ${context.after}`, { retry_after_seconds: Math.ceil(context.ttl / 1000) },
      ),
    },
  };
}

/**
 * The budget a client address draws on: the address itself, IPv6 by its /64 and IPv4-mapped IPv6 as
 * IPv4 (@fastify/rate-limit's normalizeIP). Some proxies write `address:port` or `[v6]:port` into
 * X-Forwarded-For: the port goes, or every connection would get a budget of its own. Anything that is
 * still not an address shares one budget, so made-up forms cannot mint fresh ones.
 */
export function addressKey(ip: string): string {
  let address = ip.trim();
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(address);
  if (v4WithPort) address = v4WithPort[1]!;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/.exec(address);
  if (bracketed) address = bracketed[1]!;
  return isIP(address) === 0 ? 'not-an-address' : normalizeIP(address);
}
