/**
 * Who the buyer is. With BUYER_TOKEN_SECRET set, a request that makes dropgate store something for a
 * buyer (an order, a queue place, a waiting-list entry) must carry a `buyer_token` the storefront
 * signed for its `buyer_id` (@dropgate/domain's buyer-token.ts); checked before anything is looked up
 * or written. Without the secret a buyer id is the caller's word, as before.
 */
import type { RateLimitOptions } from '@fastify/rate-limit';
import { DomainError, buyerTokenProblem } from '@dropgate/domain';
import type { AppDeps } from '../deps.ts';

export type BuyerEndpoint = 'orders' | 'queue' | 'waitlist';

export function requireBuyer(deps: AppDeps, endpoint: BuyerEndpoint, buyerId: string, token: string | undefined): void {
  const secrets = deps.config.buyerTokenSecrets;
  if (secrets.length === 0) return;
  const problem = buyerTokenProblem(secrets, buyerId, token, deps.clock.now());
  if (problem === null) return;
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
      onExceeded: () => deps.metrics.buyerRefusals.inc({ endpoint, code: 'RATE_LIMITED' }),
      errorResponseBuilder: (_request, context) => new DomainError(
        'RATE_LIMITED', `at most ${max} of these requests a minute from one address; retry in ${context.after}`, { retry_after_seconds: Math.ceil(context.ttl / 1000) },
      ),
    },
  };
}
