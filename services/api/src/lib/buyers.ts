/**
 * Who the buyer is. With BUYER_TOKEN_SECRET set, a request that makes dropgate store something for a
 * buyer (an order, a queue place, a waiting-list entry) must carry a `buyer_token` the storefront
 * signed for its `buyer_id` (@dropgate/domain's buyer-token.ts); checked before anything is looked up
 * or written. Without the secret a buyer id is the caller's word, as before.
 */
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
