/**
 * V2's anti-tampering for a new order: PortOne stops a payment window opened with another amount.
 * Best effort: dropgate checks the amount itself at every confirm and on every paid payment, so an order
 * whose pre-registration failed is still safe to sell (and is not taken back).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AppDeps } from '../deps.ts';
import type { CreatedOrder } from './orders.service.ts';

export async function preRegisterOrder(deps: Pick<AppDeps, 'portoneV2' | 'metrics'>, api: 'v1' | 'v2', created: CreatedOrder, log: FastifyBaseLogger): Promise<void> {
  if (api !== 'v2' || deps.portoneV2 === null) return;
  await deps.portoneV2.preRegisterPayment(created.merchant_uid, created.amount, created.currency).then(
    () => deps.metrics.preRegistrations.inc({ result: 'ok' }),
    (error: unknown) => {
      deps.metrics.preRegistrations.inc({ result: 'failed' });
      log.warn({ err: error, merchantUid: created.merchant_uid }, 'V2 pre-registration failed');
    },
  );
}
