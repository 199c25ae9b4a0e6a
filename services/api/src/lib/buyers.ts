/**
 * Who the buyer is. With BUYER_TOKEN_SECRET set, a request that makes dropgate store something for a
 * buyer (an order, a queue place, a waiting-list entry) must carry a `buyer_token` the storefront
 * signed for its `buyer_id` (@dropgate/domain's buyer-token.ts); checked before anything is looked up
 * or written. Without the secret a buyer id is the caller's word, as before.
 */
import { DomainError, buyerTokenProblem } from '@dropgate/domain';

export function requireBuyer(secrets: readonly string[], buyerId: string, token: string | undefined, nowMs: number): void {
  if (secrets.length === 0) return;
  const problem = buyerTokenProblem(secrets, buyerId, token, nowMs);
  if (problem !== null) throw new DomainError('BUYER_UNVERIFIED', problem);
}
