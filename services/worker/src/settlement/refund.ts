/**
 * Money that cannot be kept goes back through PortOne's cancel API, at most once per payment, with the
 * checksum set to what should still be refundable so a refund can never exceed it. The order then
 * follows the state machine to `refunded` (closed: nothing holds it again), unless the payment was
 * never one that could pay the order (another amount): then only its own money and its own place on
 * the order's hold go back, and the order stays open for its real payment.
 */
import { lifecycle, orders as ordersRepo } from '@dropgate/db';
import type { OrderCause } from '@dropgate/domain';
import { PortOneError, type PortOnePayment } from '@dropgate/portone';
import { TransientError, type WorkerContext, EventNotLoadedError } from '../context.ts';
import { fetchPayment, recordPayment } from './payment.ts';
import { dropFromHold, voidPaidOrder } from './release.ts';
import { watchOtherPayments } from './watch.ts';

export type RefundReason = 'seats_gone' | 'buyer_limit' | 'amount_mismatch' | 'duplicate_payment' | 'oversell_prevented' | 'order_closed' | 'partially_cancelled';

/** The order's cause for a refund reason; null when the refund leaves the order as it is. */
export const REFUND_CAUSE: Readonly<Record<RefundReason, OrderCause | null>> = {
  seats_gone: 'refund_seats_gone',
  // Taken again without a live hold, its places would put the buyer past the event's max_per_buyer.
  buyer_limit: 'refund_buyer_limit',
  oversell_prevented: 'refund_oversell_prevented',
  // The order is paid by another payment, or already closed: only this payment's money goes back.
  duplicate_payment: null,
  order_closed: null,
  // A payment of another amount could never pay the order, and anyone who knows the merchant_uid can
  // make one (a PG that skips confirm, a confirm without an amount): it must not close the order.
  // Only its own money goes back, and its own hold ends (refundForeignAmount).
  amount_mismatch: null,
  // Part of the order's payment was cancelled at PortOne (the console, the PG) after it was ticketed:
  // the rest goes back and the tickets are voided (voidPaidOrder: cancelled_at_portone).
  partially_cancelled: null,
};

/** What an order costs: its amount in its currency. */
export interface OrderPrice {
  amount: number;
  currency: string;
}

/**
 * Whether `payment` pays `order` whole: its amount, in its currency, none of it cancelled. A payment's
 * currency comes from the buyer's browser in V1 (and the PG may take others): 5,000 KRW is not a 5,000
 * USD seat.
 */
export function paysTheOrder(payment: PortOnePayment, order: OrderPrice): boolean {
  return payment.amount === order.amount && payment.currency === order.currency && payment.cancel_amount === 0;
}

/** Why `payment` does not pay `order` (see paysTheOrder), for logs and the order's history. */
export function notTheOrdersPrice(payment: PortOnePayment, order: OrderPrice): string {
  const cancelled = payment.cancel_amount > 0 ? `, ${payment.cancel_amount} of it cancelled` : '';
  return `payment ${payment.imp_uid} is for ${payment.amount} ${payment.currency}${cancelled}; the order costs ${order.amount} ${order.currency}`;
}

/**
 * Records the refund of what is left of `payment` as decided (`requested`), or its amount again while
 * it is not done. @returns whether it is still to be done (false once done).
 */
function claimRest(ctx: WorkerContext, eventId: string, payment: PortOnePayment, reason: RefundReason): Promise<boolean> {
  return lifecycle.claimRefund(ctx.db, { impUid: payment.imp_uid, merchantUid: payment.merchant_uid, eventId, amount: payment.amount - payment.cancel_amount, reason });
}

/** Refunds `payment` (idempotent) and records PortOne's view of it afterwards. */
export async function refund(ctx: WorkerContext, eventId: string, payment: PortOnePayment, reason: RefundReason): Promise<void> {
  const refundable = payment.amount - payment.cancel_amount;
  if (refundable <= 0) {
    // Nothing left to return. A refund of ours that went through before a crash is done now.
    if ((await lifecycle.findRefund(ctx.db, payment.imp_uid))?.status === 'requested') await lifecycle.markRefundDone(ctx.db, payment.imp_uid);
    return;
  }
  if (!(await claimRest(ctx, eventId, payment, reason))) return;
  let after: PortOnePayment | null;
  try {
    after = await ctx.portone.cancelPayment({
      impUid: payment.imp_uid, merchantUid: payment.merchant_uid, checksum: refundable, reason: `dropgate: ${reason}`,
    });
  } catch (error) {
    // Refused (e.g. the checksum no longer matches because a cancel already went through): re-read the
    // truth; if nothing is left to refund the refund is done, otherwise try again later.
    after = await fetchPayment(ctx, payment.merchant_uid, payment.imp_uid);
    if (!after || after.amount - after.cancel_amount > 0) {
      if (error instanceof PortOneError && error.transient) throw new TransientError(`refund failed: ${error.message}`);
      throw new TransientError(`refund refused: ${(error as Error).message}`);
    }
  }
  await recordPayment(ctx, eventId, after);
  await lifecycle.markRefundDone(ctx.db, payment.imp_uid);
  await ordersRepo.appendOrderEvent(ctx.db, payment.merchant_uid, eventId, 'refunded', { imp_uid: payment.imp_uid, amount: refundable, reason });
  ctx.metrics.refunds.inc({ reason });
}

/**
 * Closes a refunded order in Redis: its hold released, or (when a commit was interrupted after Redis
 * sold the seats and before Postgres issued the tickets) its sale voided, and no confirm holds it again.
 * Only for an order the record does not have as paid.
 */
export async function closeInRedis(ctx: WorkerContext, eventId: string, merchantUid: string): Promise<void> {
  const state = await ctx.store.orderState(eventId, merchantUid);
  if (state?.status === 'paid') {
    const v = await ctx.store.voidSale(eventId, merchantUid, 'refunded');
    if (v === 'not_ready') throw new EventNotLoadedError('event not loaded in Redis');
    return;
  }
  const r = await ctx.store.releaseHold(eventId, merchantUid, { status: 'refunded', nowMs: ctx.clock.now(), onlyIfOverdue: false });
  if (r === 'not_ready') throw new EventNotLoadedError('event not loaded in Redis');
  if (r === 'released') ctx.metrics.holdsReleased.inc({ event: eventId, reason: 'refunded' });
}

/**
 * A paid `payment` whose amount is not its order's (`orderAmount`): it leaves the order's live hold as
 * a payment PortOne does not vouch for does (verify.ts), so the hold is released (seats back on sale,
 * the order `released` by `payment_unverified`) only when it rode on that hold alone, and its money
 * goes back. Nothing else about the order changes: a hold another payment rides on stays, a pending,
 * released or expired order stays so, and the real payment can still pay it. Both steps are
 * idempotent, and the hold is left before the refund: a retry after a crash between them finishes the
 * refund, and one after the refund (PortOne then says cancelled) lands in finishDecidedRefund, which
 * runs both again. (A crash inside dropFromHold, after Redis and before the record, is reconciled by
 * the hold's expiry, as for a failed payment.)
 */
export async function refundForeignAmount(ctx: WorkerContext, eventId: string, payment: PortOnePayment, order: OrderPrice): Promise<void> {
  await dropFromHold(ctx, eventId, payment.merchant_uid, payment.imp_uid, 'payment_unverified', notTheOrdersPrice(payment, order));
  await refund(ctx, eventId, payment, 'amount_mismatch');
}

/**
 * Finishes the refund decided earlier for `payment` (found on a retry, or when PortOne shows it
 * cancelled by that refund) with what goes with its reason: the order closed, or for a payment of
 * another amount only its own hold ended.
 */
export async function finishDecidedRefund(ctx: WorkerContext, eventId: string, payment: PortOnePayment, reason: RefundReason, order: OrderPrice): Promise<void> {
  if (reason === 'amount_mismatch') await refundForeignAmount(ctx, eventId, payment, order);
  else if (reason === 'partially_cancelled') await refundPartlyCancelled(ctx, eventId, payment);
  else await refundAndClose(ctx, eventId, payment, reason, `payment refunded (${reason})`);
}

/**
 * The paying payment of a ticketed order was cancelled in part at PortOne (from the console, or by the
 * PG): the order no longer has its money. dropgate sells an order whole and cannot tell which of its
 * tickets the cancel was for, so the rest of the money goes back and every ticket is voided (the seats
 * back on sale, the order `refunded`): money and tickets match again.
 *
 * The refund is decided (claimed) first, then the tickets voided, then the rest cancelled at PortOne:
 * the void needs nothing of PortOne, and the cancel may be refused for minutes or for good. Refunded
 * before the void, the order stayed paid with every ticket valid and its places sold, its money partly
 * back, for as long as PortOne refused the cancel (attack round 28A). The claim comes before the void
 * so that a job lost between the two still leaves a decided refund for retryRefunds to finish.
 * Idempotent: a retry (the cancel refused, or PortOne then saying cancelled) lands here through the
 * decided refund, finds the tickets voided and tries the cancel again.
 */
export async function refundPartlyCancelled(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<void> {
  if (payment.amount - payment.cancel_amount > 0) await claimRest(ctx, eventId, payment, 'partially_cancelled');
  await voidPaidOrder(ctx, eventId, payment.merchant_uid, payment.imp_uid,
    `payment partially cancelled at PortOne (${payment.cancel_amount} of ${payment.amount}): the rest refunded, the tickets voided`);
  await refund(ctx, eventId, payment, 'partially_cancelled');
}

/**
 * Refunds `payment` and closes its order for `reason`: in Redis (a refunded order is never held
 * again, its hold if any released) and in Postgres (the machine's refund cause).
 */
export async function refundAndClose(ctx: WorkerContext, eventId: string, payment: PortOnePayment, reason: RefundReason, detail: string): Promise<void> {
  await refund(ctx, eventId, payment, reason);
  const cause = REFUND_CAUSE[reason];
  if (cause === null) return;
  // An order another payment paid meanwhile keeps its sale: only this payment's money goes back.
  if ((await ordersRepo.findOrder(ctx.db, payment.merchant_uid))?.status === 'paid') return;
  await closeInRedis(ctx, eventId, payment.merchant_uid);
  await ctx.db.transaction().execute(async (trx) => {
    await lifecycle.endLiveHolds(trx, payment.merchant_uid, 'released', detail);
    await lifecycle.transition(trx, payment.merchant_uid, cause, detail);
  });
  await watchOtherPayments(ctx, eventId, payment.merchant_uid, payment.imp_uid);
}
