/** Acts on what PortOne says of a payment (under the order's lock). Idempotent. */
import { UnrecoverableError } from 'bullmq';
import { settlement } from '@dropgate/db';
import { finishDecidedRefund, paysTheOrder, type RefundReason } from './refund.ts';
import type { PortOnePayment } from '@dropgate/portone';
import type { WorkerContext } from '../context.ts';
import { markChecked, paymentRecord } from './payment.ts';
import { settlePaid } from './paid.ts';
import { settleCancelled, settleFailed } from './release.ts';
import { watchPayment } from './watch.ts';
import type { SettleOutcome } from './outcomes.ts';

/**
 * Acts on `payment` for a caller that holds the order's lock and fetched the payment under it (a
 * reading from before the lock may predate another job's refund).
 */
export async function applyPaymentLocked(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<SettleOutcome> {
  // The payment recorded, its order and any refund decided for it read: one statement shared with the
  // other jobs settling now (settlement.repository.ts). Recorded only for an order of this event.
  const { order, refund: decided } = await settlement.settlementWriter(ctx.db).recordPayment(paymentRecord(eventId, payment));
  if (!order || order.event_id !== eventId) throw new UnrecoverableError(`payment ${payment.imp_uid} is for an unknown order`);
  // PortOne's word on a payment of the order: unsigned confirms may hold it again (verify.ts). Not
  // needed when the payment pays the order (it ends the order's holds), the one case at the rush.
  if (payment.status !== 'paid' || !paysTheOrder(payment, order)) await markChecked(ctx, eventId, payment.merchant_uid, payment.imp_uid);
  // A refund this payment got from us is finished first, whatever PortOne says of the payment now
  // (after our refund it says cancelled): a retry after a crash between the refund and the order's
  // change lands here and closes the order (or, for a payment of another amount, ends its own hold).
  if (decided && payment.status !== 'paid') {
    await finishDecidedRefund(ctx, eventId, payment, decided.reason as RefundReason, order);
    return 'already-refunded';
  }
  switch (payment.status) {
    case 'paid':
      return settlePaid(ctx, eventId, payment, order, decided);
    case 'cancelled':
      return settleCancelled(ctx, eventId, payment);
    case 'failed': {
      const outcome = await settleFailed(ctx, eventId, payment);
      // Some PGs report failed and later paid, and that webhook may be lost: keep an eye on it.
      await watchPayment(ctx, eventId, payment.merchant_uid, payment.imp_uid, 1);
      return outcome;
    }
    default:
      // 'ready' (e.g. a virtual account issued, or the buyer has not finished): the hold runs to expiry.
      return 'waiting';
  }
}
