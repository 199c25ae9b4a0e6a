/**
 * A payment that failed or was cancelled ends the hold it rode on (unless another payment still rides
 * on it); a paid order whose payment was cancelled at PortOne loses its tickets and is refunded.
 */
import { lifecycle } from '@dropgate/db';
import type { OrderCause } from '@dropgate/domain';
import type { PortOnePayment } from '@dropgate/portone';
import { orders as ordersRepo } from '@dropgate/db';
import { EventNotLoadedError, type WorkerContext } from '../context.ts';
import { fetchPayment } from './payment.ts';
import type { SettleOutcome } from './outcomes.ts';
import { watchOtherPayments } from './watch.ts';

/**
 * Takes `impUid` off the order's live hold; releases the hold for `cause` when nothing else rides on
 * it, unless the hold is a reservation (hold_at "order"): that stays its buyer's until it expires
 * ('dropped'), so neither a declined card nor a forged confirm costs the buyer the places.
 */
export async function dropFromHold(
  ctx: WorkerContext, eventId: string, muid: string, impUid: string, cause: OrderCause, reason: string,
): Promise<'released' | 'dropped' | 'nothing-held'> {
  const state = await ctx.store.orderState(eventId, muid);
  if (state === null) throw new EventNotLoadedError('event not loaded in Redis');
  if (state.status !== 'held' || !state.impUids.includes(impUid)) return 'nothing-held';
  const r = await ctx.store.dropPayment(eventId, muid, impUid, state.seq);
  if (r === 'not_ready' || r === 'order_missing') throw new EventNotLoadedError('event not loaded in Redis');
  if (r === 'reserved') {
    // Back to the reservation's own expiry in Redis: the record follows.
    const back = await ctx.store.orderState(eventId, muid);
    if (back?.status === 'held' && back.expiresAt !== null) await lifecycle.setLiveHoldExpiry(ctx.db, muid, new Date(back.expiresAt));
  }
  if (r !== 'released') return 'dropped';
  ctx.metrics.holdsReleased.inc({ event: eventId, reason: cause === 'payment_unverified' ? 'unverified' : 'payment_failed' });
  await ctx.db.transaction().execute(async (trx) => {
    await lifecycle.endLiveHolds(trx, muid, 'released', reason);
    await lifecycle.transition(trx, muid, cause, reason);
  });
  return 'released';
}

export async function settleFailed(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<SettleOutcome> {
  const r = await dropFromHold(ctx, eventId, payment.merchant_uid, payment.imp_uid, 'payment_failed', payment.fail_reason ?? 'payment failed');
  return r === 'dropped' ? 'payment-dropped' : r;
}

export async function settleCancelled(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<SettleOutcome> {
  const muid = payment.merchant_uid;
  const order = (await ordersRepo.findOrder(ctx.db, muid))!;
  // A refunded order this payment paid: a retry of the void below (its Redis step may have been undone
  // by a rebuild that read the record before its transaction committed: attack round 27A), idempotent.
  if ((order.status === 'paid' || order.status === 'refunded') && order.paid_imp_uid === payment.imp_uid) {
    // Cancelled after it was paid (e.g. from PortOne's console): void the tickets, seats back on sale.
    await voidPaidOrder(ctx, eventId, muid, payment.imp_uid, 'payment cancelled at PortOne');
    return 'voided';
  }
  if (await undoInterruptedCommit(ctx, eventId, muid, payment.imp_uid)) return 'released';
  const r = await dropFromHold(ctx, eventId, muid, payment.imp_uid, 'payment_cancelled', 'payment cancelled');
  return r === 'dropped' ? 'payment-dropped' : r;
}

/**
 * A paid order whose payment no longer holds its money (cancelled at PortOne, in whole or in part):
 * its tickets are voided, its seats go back on sale, and the order is `refunded`. Idempotent.
 */
export async function voidPaidOrder(ctx: WorkerContext, eventId: string, muid: string, impUid: string, reason: string): Promise<void> {
  const voided = await ctx.store.voidSale(eventId, muid, 'refunded');
  if (voided === 'not_ready' || voided === 'order_missing') throw new EventNotLoadedError('event not loaded in Redis');
  await ctx.db.transaction().execute(async (trx) => {
    await lifecycle.voidTickets(trx, muid);
    await lifecycle.transition(trx, muid, 'cancelled_at_portone', reason);
  });
  // A rebuild that read the record before this transaction committed (after Redis's void above) loaded
  // the order paid again, its seats sold: make Redis agree with the record (as ensureSoldInRedis does
  // for a commit; attack round 27A). A rebuild loading now answers not ready: the job retries and lands
  // here again.
  const again = await ctx.store.voidSale(eventId, muid, 'refunded');
  if (again === 'not_ready' || again === 'order_missing') throw new EventNotLoadedError('event not loaded in Redis');
  await watchOtherPayments(ctx, eventId, muid, impUid);
}

/**
 * Redis sold the order's seats for a commit that never reached the record (the worker died, or
 * Postgres restarted, between the two), and the payment was cancelled meanwhile. If no other payment
 * of the order is paid at PortOne, no job will ever finish that commit: give the seats back and
 * release the order. @returns true when it did.
 */
async function undoInterruptedCommit(ctx: WorkerContext, eventId: string, muid: string, cancelledImpUid: string): Promise<boolean> {
  const order = await ordersRepo.findOrder(ctx.db, muid);
  if (!order || order.status === 'paid' || order.status === 'refunded') return false;
  if ((await ctx.store.orderState(eventId, muid))?.status !== 'paid') return false;
  for (const imp of await lifecycle.paymentsOfOrder(ctx.db, muid)) {
    if (imp === cancelledImpUid) continue;
    const other = await fetchPayment(ctx, muid, imp);
    // Another payment is paid: its job commits it (or refunds it); leave the sale to it.
    if (other && other.merchant_uid === muid && other.status === 'paid' && other.cancel_amount < other.amount) return false;
  }
  const v = await ctx.store.voidSale(eventId, muid, 'released');
  if (v === 'not_ready' || v === 'order_missing') throw new EventNotLoadedError('event not loaded in Redis');
  ctx.log.warn({ eventId, merchantUid: muid }, 'a commit interrupted before the record was undone: its payment was cancelled');
  await ctx.db.transaction().execute(async (trx) => {
    await lifecycle.endLiveHolds(trx, muid, 'released', 'payment cancelled before its commit reached the record');
    await lifecycle.transition(trx, muid, 'payment_cancelled', 'payment cancelled before its commit reached the record');
  });
  return true;
}
