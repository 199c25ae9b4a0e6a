/**
 * Every payment a confirm approved is verified with PortOne right away: confirm bodies come from the
 * internet unsigned, so a made-up imp_uid, another order's payment or another amount could otherwise
 * hold seats for the whole hold TTL. A payment PortOne does not vouch for is taken off the hold, and
 * the hold released when nothing else rides on it; a genuine one is recorded (and settled if PortOne
 * already has an outcome for it).
 */
import { orders as ordersRepo, settlement } from '@dropgate/db';
import { TransientError, type WorkerContext } from '../context.ts';
import { withOrderLock } from './lock.ts';
import { fetchPaymentShared, paymentRecord } from './payment.ts';
import { applyPaymentLocked } from './apply.ts';
import { dropFromHold } from './release.ts';
import { notTheOrdersPrice, paysTheOrder } from './refund.ts';
import { watchPayment } from './watch.ts';
import type { VerifyOutcome } from './outcomes.ts';

/**
 * Attempts before an imp_uid PortOne answers 404 for is called unknown. PortOne creates the payment
 * before it calls confirm, so one retry (about a second later) only covers replication lag.
 */
export const UNKNOWN_PAYMENT_ATTEMPTS = 2;

export function verifyPayment(
  ctx: WorkerContext, eventId: string, merchantUid: string, impUid: string, attemptsMade: number,
): Promise<VerifyOutcome> {
  return withOrderLock(ctx, eventId, merchantUid, async (): Promise<VerifyOutcome> => {
    // Read, and recorded below, with the other verifications running now (one statement each for
    // a batch): a worker verifies every approved confirm, and two round trips and a commit of its own
    // each made verification most of an approval's Postgres work.
    const order = await ordersRepo.orderReader(ctx.db).findOrder(merchantUid);
    if (!order) return 'order-missing';
    // Asked together with the other verifications running now (one PortOne call for up to 100).
    const payment = await fetchPaymentShared(ctx, merchantUid, impUid);
    if (!payment && attemptsMade + 1 < UNKNOWN_PAYMENT_ATTEMPTS) throw new TransientError(`PortOne does not know ${impUid} yet`);
    // PortOne has an outcome for a payment of this order already (its webhook is on its way): act on
    // it now. Settling also handles one of another amount: it leaves the hold, and its money (if paid)
    // goes back alone.
    if (payment && payment.merchant_uid === merchantUid && payment.status !== 'ready') return `settled:${await applyPaymentLocked(ctx, eventId, payment)}`;
    let why: string | null = null;
    if (!payment) why = `PortOne knows no payment ${impUid}`;
    else if (payment.merchant_uid !== merchantUid) why = `payment ${impUid} belongs to another order`;
    // Not paid yet, not of the order's price: taken off the hold below and watched, so it is refunded when it
    // turns paid even if its webhook is lost.
    else if (!paysTheOrder(payment, order)) why = notTheOrdersPrice(payment, order);
    if (why === null) {
      await settlement.settlementWriter(ctx.db).recordPayment(paymentRecord(eventId, payment!));
      return 'verified';
    }
    ctx.log.warn({ eventId, merchantUid, impUid, why }, 'confirm not vouched for by PortOne: payment taken off the hold');
    ctx.metrics.unverifiedPayments.inc();
    const r = await dropFromHold(ctx, eventId, merchantUid, impUid, 'payment_unverified', why);
    if (payment && payment.merchant_uid === merchantUid) await watchPayment(ctx, eventId, merchantUid, impUid, 1);
    return r === 'released' ? 'unverified-released' : 'unverified-dropped';
  });
}
