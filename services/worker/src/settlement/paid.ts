/**
 * A payment PortOne says is paid: its order's seats become tickets (committed from the live hold, or
 * taken again for a late payment), or the money goes back when the seats cannot be had, the amount is
 * wrong (that payment's money only: the order stays open), the order is paid already or closed.
 */
import { lifecycle, settlement, isOversellViolation } from '@dropgate/db';
import { jobIds, type MaintenanceJob } from '@dropgate/jobs';
import type { PortOnePayment } from '@dropgate/portone';
import { EventNotLoadedError, type WorkerContext } from '../context.ts';
import { closeInRedis, finishDecidedRefund, paysTheOrder, refund, refundAndClose, refundForeignAmount, refundPartlyCancelled, type RefundReason } from './refund.ts';
import type { SettleOutcome } from './outcomes.ts';
import { watchOtherPayments } from './watch.ts';

/**
 * Settles a paid `payment` of `order`, as `applyPaymentLocked` just read them with `decided` (the
 * refund decided for the payment, if any) under the order's lock.
 */
export async function settlePaid(
  ctx: WorkerContext, eventId: string, payment: PortOnePayment, order: settlement.SettlementOrder, decided: lifecycle.RefundRow | undefined,
): Promise<SettleOutcome> {
  const muid = payment.merchant_uid;
  // Once a refund of this payment was decided, it stays decided: never ticket it afterwards.
  // (A crash between the refund and the order update lands here on the retry, which finishes both.)
  if (decided) {
    await finishDecidedRefund(ctx, eventId, payment, decided.reason as RefundReason, order);
    return 'already-refunded';
  }
  if (order.status === 'paid') {
    if (order.paid_imp_uid === payment.imp_uid) {
      if (payment.cancel_amount > 0) {
        await refundPartlyCancelled(ctx, eventId, payment);
        return 'voided';
      }
      await ensureSoldInRedis(ctx, eventId, muid);
      return 'already-paid';
    }
    await refund(ctx, eventId, payment, 'duplicate_payment');
    return 'refunded-duplicate';
  }
  if (order.status === 'refunded') {
    await refund(ctx, eventId, payment, 'order_closed');
    // A commit of this payment interrupted after Redis sold the seats leaves them sold there: give them back.
    await closeInRedis(ctx, eventId, muid);
    return 'refunded-closed';
  }
  if (!paysTheOrder(payment, order)) {
    // Not a payment of this order's price (another amount, another currency, or partly cancelled at
    // PortOne before it was settled): whoever made it (a stranger can, under the merchant_uid, with
    // a PG that skips confirm) gets the money back, and it ends only a hold it rode on alone. The order,
    // and a hold its real payment rides on, are not its to close (invariant 9).
    await refundForeignAmount(ctx, eventId, payment, order);
    return 'refunded-amount';
  }

  // When the hold was taken, for the hold-to-paid metric: from its expiry in the record, or in Redis
  // when the write-behind has not recorded the hold yet (settlement often outruns it at a rush; read
  // before the commit below clears it).
  const holdExpiresAt = payment.paid_at > 0
    ? order.hold_expires_at?.getTime() ?? (await ctx.store.orderState(eventId, muid).catch(() => null))?.expiresAt ?? null
    : null;
  const redisResult = await ctx.store.settlePaid(eventId, muid, { buyerLimit: true });
  if (redisResult === 'not_ready' || redisResult === 'order_missing') {
    throw new EventNotLoadedError(`event ${eventId} not loaded in Redis (${redisResult})`);
  }
  if (redisResult === 'closed') {
    await refund(ctx, eventId, payment, 'order_closed');
    return 'refunded-closed';
  }
  if (redisResult === 'buyer_limit') {
    // Taken again without a hold, its places would put the buyer past max_per_buyer (attack round 26B).
    await refundAndClose(ctx, eventId, payment, 'buyer_limit', 'paid without a live hold, and its places would put the buyer past the event\'s max_per_buyer');
    return 'refunded-buyer-limit';
  }
  if (redisResult === 'sold_out') {
    await refundAndClose(ctx, eventId, payment, 'seats_gone', 'paid after the hold ended and the seats were sold to someone else');
    return 'refunded-seats-gone';
  }

  // Tickets, the hold committed and the order paid: one transaction shared with the other jobs
  // committing now (settlement.repository.ts); alone when Postgres refuses the batch for one of them.
  let committed: settlement.PaidCommitResult;
  try {
    committed = await settlement.settlementWriter(ctx.db).commitPaid({ merchantUid: muid, eventId, impUid: payment.imp_uid, amount: payment.amount, via: redisResult });
  } catch (error) {
    if (!isOversellViolation(error)) throw error;
    // Redis let through a sale Postgres knows is impossible: Redis's state is not whole. Refund, and
    // rebuild the event from the record.
    ctx.metrics.oversellsPrevented.inc({ event: eventId });
    ctx.log.error({ eventId, merchantUid: muid, constraint: (error as { constraint?: string }).constraint }, 'oversell prevented by Postgres');
    // The rebuild is queued first: a refund that fails here is finished by a retry through
    // finishDecidedRefund, which never comes back to this line (attack round 27A).
    const rebuild: MaintenanceJob = { kind: 'rebuild', eventId, force: true };
    await ctx.queues.maintenance.add('rebuild', rebuild, { jobId: jobIds.rebuild(eventId, `oversell-${Date.now()}`) });
    await refund(ctx, eventId, payment, 'oversell_prevented');
    await lifecycle.transition(ctx.db, muid, 'refund_oversell_prevented', 'the seats were already sold (prevented by the database)');
    return 'refunded-oversell';
  }
  if (committed.result === 'refused') throw new Error(`order ${muid} cannot become paid from ${committed.status}`);
  if (redisResult === 'committed') ctx.metrics.holdsCommitted.inc({ event: eventId });
  await Promise.all([
    // A rebuild that read the record before this commit loaded the order unpaid: make Redis agree.
    ensureSoldInRedis(ctx, eventId, muid),
    watchOtherPayments(ctx, eventId, muid, payment.imp_uid, committed.unfinishedPayments),
  ]);
  if (holdExpiresAt) {
    const heldAt = holdExpiresAt - (await holdTtlMs(ctx, eventId));
    ctx.metrics.holdToPaid.observe(Math.max(0, payment.paid_at * 1000 - heldAt) / 1000);
  }
  if (payment.paid_at > 0) ctx.metrics.paidToTicketed.observe(Math.max(0, Date.now() - payment.paid_at * 1000) / 1000);
  return redisResult === 'retaken' ? 'ticketed-late' : 'ticketed';
}

/**
 * The record has the order paid: Redis must have its seats sold. A Redis rebuild that read the record
 * just before the commit loaded the order unpaid; take its seats again (they are still free unless
 * Redis sold them twice, which Postgres refuses and the rebuild after it repairs).
 */
async function ensureSoldInRedis(ctx: WorkerContext, eventId: string, muid: string): Promise<void> {
  const r = await ctx.store.settlePaid(eventId, muid);
  if (r === 'not_ready' || r === 'order_missing') throw new EventNotLoadedError(`event ${eventId} not loaded in Redis (${r})`);
  if (r === 'sold_out' || r === 'closed') {
    ctx.log.error({ eventId, merchantUid: muid, redis: r }, 'a paid order\'s seats are not sold in Redis: rebuilding the event');
    const rebuild: MaintenanceJob = { kind: 'rebuild', eventId, force: true };
    await ctx.queues.maintenance.add('rebuild', rebuild, { jobId: jobIds.rebuild(eventId, `repair-${Date.now()}`) });
  }
}

const ttlCache = new Map<string, number>();
async function holdTtlMs(ctx: WorkerContext, eventId: string): Promise<number> {
  let ttl = ttlCache.get(eventId);
  if (ttl === undefined) {
    const row = await ctx.db.selectFrom('events').select('hold_ttl_seconds').where('id', '=', eventId).executeTakeFirst();
    ttl = (row?.hold_ttl_seconds ?? 0) * 1000;
    ttlCache.set(eventId, ttl);
  }
  return ttl;
}
