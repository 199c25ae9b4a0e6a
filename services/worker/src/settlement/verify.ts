/**
 * Every payment a confirm approved is verified with PortOne right away: confirm bodies come from the
 * internet unsigned, so a made-up imp_uid, another order's payment or another amount could otherwise
 * hold seats for the whole hold TTL. A payment PortOne does not vouch for is taken off the hold, and
 * the hold released when nothing else rides on it; a genuine one is recorded (and settled if PortOne
 * already has an outcome for it).
 */
import { orders as ordersRepo, settlement } from '@dropgate/db';
import { apiOfPaymentKey } from '@dropgate/portone';
import { TransientError, type WorkerContext } from '../context.ts';
import { withOrderLock } from './lock.ts';
import { fetchPaymentShared, lookupFailure, markChecked, paymentRecord } from './payment.ts';
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
    if (!payment && apiOfPaymentKey(impUid) === 'v2') {
      const superseded = await supersededAttempt(ctx, eventId, merchantUid, impUid);
      if (superseded !== null) return superseded;
    }
    let why: string | null = null;
    if (!payment) why = `PortOne knows no payment ${impUid}`;
    else if (payment.merchant_uid !== merchantUid) why = `payment ${impUid} belongs to another order`;
    // Not paid yet, not of the order's price: taken off the hold below and watched, so it is refunded when it
    // turns paid even if its webhook is lost.
    else if (!paysTheOrder(payment, order)) why = notTheOrdersPrice(payment, order);
    if (why === null) {
      await settlement.settlementWriter(ctx.db).recordPayment(paymentRecord(eventId, payment!));
      await markChecked(ctx, eventId, merchantUid, impUid);
      return 'verified';
    }
    ctx.log.warn({ eventId, merchantUid, impUid, why }, 'confirm not vouched for by PortOne: payment taken off the hold');
    ctx.metrics.unverifiedPayments.inc();
    // Taken off a hold it rides on, the order is marked checked with it (dropPayment); else here.
    const r = await dropFromHold(ctx, eventId, merchantUid, impUid, 'payment_unverified', why);
    if (r === 'nothing-held') await markChecked(ctx, eventId, merchantUid, impUid);
    if (payment && payment.merchant_uid === merchantUid) await watchPayment(ctx, eventId, merchantUid, impUid, 1);
    return r === 'released' ? 'unverified-released' : 'unverified-dropped';
  });
}

/**
 * A V1 confirm on the order was refused PAYMENT_UNCHECKED (the API queues this at once, one at a time
 * per order): the payment that took the order's last hold is verified now, as its own verification
 * would (a made-up one is taken off a hold it still rides on), and the order is marked checked once
 * PortOne answered. That verification retries with exponential backoff, and after an outage that
 * outlasted the hold's expiry it was the only job left to clear the mark: the order's buyer was refused
 * with PortOne up for about as long again as the outage lasted, and for good when it had failed for good
 * (PortOne refusing our credentials for a while; attack round 28C). One try: PortOne still down, the
 * buyer's next confirm asks again. The taker is not asked about twice when PortOne does not know it
 * (replication lag, which verify's second ask covers): it took the hold half the hold's TTL or more
 * before a confirm could be refused for it. Riders are left to their own verifications: one may have
 * come a moment ago, and PortOne may not show it yet.
 */
export async function checkUnchecked(ctx: WorkerContext, eventId: string, merchantUid: string): Promise<VerifyOutcome | 'checked'> {
  const state = await ctx.store.orderState(eventId, merchantUid);
  if (state === null) return 'order-missing';
  const outcome = state.impUid === null ? 'checked' : await verifyPayment(ctx, eventId, merchantUid, state.impUid, UNKNOWN_PAYMENT_ATTEMPTS - 1);
  // PortOne answered for the hold's taker (a V2 one, signed, takes no mark of its own), or no payment
  // holds anything: nothing is left that the mark waits for.
  await ctx.store.markChecked(eventId, merchantUid);
  return outcome;
}

/**
 * V2 shows a payment's current attempt only, so an attempt the buyer replaced by a newer one (a
 * declined card paid again on the same order) is not found: PortOne knows the payment, and its current
 * attempt is what says how the order stands. That attempt is acted on first (paid: committed from the
 * live hold; failed: taken off it), then the older one is taken off the hold as an attempt that was not
 * paid (V2 opens no attempt on a paid payment). Taking the older one off alone, as a payment PortOne
 * does not know, released the hold of an order PortOne showed paid when the newer attempt had been
 * reported failed (so no longer rode on the hold) and turned paid with its webhook lost: the seats went
 * back on sale and the money was refunded (attack round 23B, `npm run drop -- --portone v2
 * --failed-then-paid 0.2`). Null when PortOne knows no payment of the order, or shows this very attempt
 * (a made-up transactionId for an order without a payment stays unverified).
 */
async function supersededAttempt(ctx: WorkerContext, eventId: string, merchantUid: string, impUid: string): Promise<VerifyOutcome | null> {
  let current;
  try {
    [current] = await ctx.portone.findAllPayments(merchantUid, 'v2');
  } catch (error) {
    throw lookupFailure(error);
  }
  if (!current || current.merchant_uid !== merchantUid || current.imp_uid === impUid) return null;
  const acted = current.status === 'ready' ? null : await applyPaymentLocked(ctx, eventId, current);
  const why = `superseded by a later attempt (${current.imp_uid})`;
  ctx.log.info({ eventId, merchantUid, impUid, current: current.imp_uid, status: current.status }, 'confirmed V2 attempt superseded by a later one: taken off the hold');
  const r = await dropFromHold(ctx, eventId, merchantUid, impUid, 'payment_failed', why);
  if (acted !== null) return `settled:${acted}`;
  return `settled:${r === 'dropped' ? 'payment-dropped' : r}`;
}
