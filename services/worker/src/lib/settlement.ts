/**
 * How a payment's truth (from PortOne's REST API, never from a webhook body) ends an order's hold:
 * commit it into tickets, take the seats again for a late payment, refund money that cannot get seats,
 * release the hold when the payment failed or was cancelled.
 */
import { UnrecoverableError } from 'bullmq';
import { lifecycle, orders as ordersRepo, isOversellViolation } from '@dropgate/db';
import { jobIds, type MaintenanceJob, type PaymentOutcomeJob } from '@dropgate/jobs';
import { PortOneError, type PortOnePayment } from '@dropgate/portone';
import { eventKeys } from '@dropgate/redis';
import { randomUUID } from 'node:crypto';
import { TransientError, type WorkerContext } from '../context.ts';

export type RefundReason = 'seats_gone' | 'amount_mismatch' | 'duplicate_payment' | 'oversell_prevented' | 'order_closed';

/** Fetches a payment; PortOne being unreachable is transient, anything else permanent. */
export async function fetchPayment(ctx: WorkerContext, impUid: string): Promise<PortOnePayment | null> {
  try {
    return await ctx.portone.getPayment(impUid);
  } catch (error) {
    if (error instanceof PortOneError && !error.transient) throw new UnrecoverableError(`PortOne refused: ${error.message}`);
    throw new TransientError(`PortOne unreachable: ${(error as Error).message}`);
  }
}

function paymentRecord(eventId: string, p: PortOnePayment) {
  return {
    impUid: p.imp_uid,
    merchantUid: p.merchant_uid,
    eventId,
    amount: p.amount,
    cancelAmount: p.cancel_amount,
    status: p.status,
    failReason: p.fail_reason,
    paidAt: p.paid_at > 0 ? new Date(p.paid_at * 1000) : null,
  };
}

/**
 * Runs `fn` holding the order's settlement lock, so two outcomes of one order (a "paid" and a
 * "cancelled" job, an expiry and a webhook) are decided one after the other, never interleaved. A
 * busy lock is a transient failure: the job retries with backoff.
 */
export async function withOrderLock<T>(ctx: WorkerContext, eventId: string, merchantUid: string, fn: () => Promise<T>): Promise<T> {
  const key = `${eventKeys(eventId).order(merchantUid)}:settle-lock`;
  const token = randomUUID();
  // Outcomes of one order usually arrive close together (duplicate webhooks): wait a little first.
  for (let attempt = 0; ; attempt++) {
    if ((await ctx.redis.set(key, token, 'PX', 60_000, 'NX')) === 'OK') break;
    if (attempt >= 40) throw new TransientError(`order ${merchantUid} is being settled`);
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await fn();
  } finally {
    await ctx.redis.eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1, key, token);
  }
}

/** Acts on what PortOne says of `payment`, under the order's lock. Idempotent. @returns what was done. */
export function applyPayment(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<string> {
  return withOrderLock(ctx, eventId, payment.merchant_uid, () => applyPaymentLocked(ctx, eventId, payment));
}

async function applyPaymentLocked(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<string> {
  const order = await ordersRepo.findOrder(ctx.db, payment.merchant_uid);
  if (!order || order.event_id !== eventId) throw new UnrecoverableError(`payment ${payment.imp_uid} is for an unknown order`);
  await lifecycle.upsertPayment(ctx.db, paymentRecord(eventId, payment));
  switch (payment.status) {
    case 'paid':
      return settlePaid(ctx, eventId, payment);
    case 'cancelled':
      return settleCancelled(ctx, eventId, payment);
    case 'failed':
      return settleFailed(ctx, eventId, payment);
    default:
      // 'ready' (e.g. a virtual account issued, or the buyer has not finished): the hold runs to expiry.
      return 'waiting';
  }
}

async function settlePaid(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<string> {
  const muid = payment.merchant_uid;
  const order = (await ordersRepo.findOrder(ctx.db, muid))!;
  if (payment.cancel_amount >= payment.amount) return 'already-cancelled';
  // Once a refund of this payment was decided, it stays decided: never ticket it afterwards.
  // (A crash between the refund and the order update lands here on the retry, which finishes both.)
  const refunded = await ctx.db.selectFrom('refunds').select(['status', 'reason']).where('imp_uid', '=', payment.imp_uid).executeTakeFirst();
  if (refunded) {
    const reason = refunded.reason as RefundReason;
    if (refunded.status === 'requested') await refund(ctx, eventId, payment, reason);
    if (order.paid_imp_uid !== payment.imp_uid) {
      await finishOrder(ctx, eventId, muid, 'refunded', `payment refunded (${reason})`, null);
    }
    return 'already-refunded';
  }
  if (order.status === 'paid') {
    if (order.paid_imp_uid === payment.imp_uid) return 'already-paid';
    await refund(ctx, eventId, payment, 'duplicate_payment');
    return 'refunded-duplicate';
  }
  if (payment.amount !== order.amount) {
    await refund(ctx, eventId, payment, 'amount_mismatch');
    await releaseInRedis(ctx, eventId, muid, 'released');
    await finishOrder(ctx, eventId, muid, 'refunded', `amount ${payment.amount} does not match the order's ${order.amount}`, 'released');
    return 'refunded-amount';
  }

  const redisResult = await ctx.store.settlePaid(eventId, muid);
  if (redisResult === 'not_ready' || redisResult === 'order_missing') {
    throw new TransientError(`event ${eventId} not loaded in Redis (${redisResult})`);
  }
  if (redisResult === 'sold_out') {
    await refund(ctx, eventId, payment, 'seats_gone');
    await finishOrder(ctx, eventId, muid, 'refunded', 'paid after the hold ended and the seats were sold to someone else', 'expired');
    return 'refunded-seats-gone';
  }

  const lines = await ordersRepo.findOrderLines(ctx.db, muid);
  try {
    await ctx.db.transaction().execute(async (trx) => {
      const locked = await ordersRepo.lockOrder(trx, muid);
      if (locked?.status === 'paid') return;
      await lifecycle.issueTickets(trx, eventId, muid, payment.imp_uid, {
        seats: lines.seats.map((s) => s.seat_id),
        items: lines.items.map((i) => ({ pool: i.pool_id, quantity: i.quantity })),
      });
      await lifecycle.endLiveHolds(trx, muid, 'committed', 'paid');
      await lifecycle.setStatus(trx, muid, 'paid', null, { paidImpUid: payment.imp_uid });
      await ordersRepo.appendOrderEvent(trx, muid, eventId, 'paid', { imp_uid: payment.imp_uid, amount: payment.amount, via: redisResult });
    });
  } catch (error) {
    if (!isOversellViolation(error)) throw error;
    // Redis let through a sale Postgres knows is impossible: Redis's state is not whole. Refund, and
    // rebuild the event from the record.
    ctx.metrics.oversellsPrevented.inc({ event: eventId });
    ctx.log.error({ eventId, merchantUid: muid, constraint: (error as { constraint?: string }).constraint }, 'oversell prevented by Postgres');
    await refund(ctx, eventId, payment, 'oversell_prevented');
    await finishOrder(ctx, eventId, muid, 'refunded', 'the seats were already sold (prevented by the database)', null);
    const rebuild: MaintenanceJob = { kind: 'rebuild', eventId, force: true };
    await ctx.queues.maintenance.add('rebuild', rebuild, { jobId: jobIds.rebuild(eventId, `oversell-${Date.now()}`) });
    return 'refunded-oversell';
  }
  if (redisResult === 'committed') ctx.metrics.holdsCommitted.inc({ event: eventId });
  if (order.hold_expires_at && payment.paid_at > 0) {
    const heldAt = order.hold_expires_at.getTime() - (await holdTtlMs(ctx, eventId));
    ctx.metrics.holdToPaid.observe(Math.max(0, payment.paid_at * 1000 - heldAt) / 1000);
  }
  if (payment.paid_at > 0) ctx.metrics.paidToTicketed.observe(Math.max(0, Date.now() - payment.paid_at * 1000) / 1000);
  return redisResult === 'retaken' ? 'ticketed-late' : 'ticketed';
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

async function settleCancelled(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<string> {
  const muid = payment.merchant_uid;
  const order = (await ordersRepo.findOrder(ctx.db, muid))!;
  if (order.status === 'paid' && order.paid_imp_uid === payment.imp_uid) {
    // Cancelled after it was paid (e.g. from PortOne's console): void the tickets, seats back on sale.
    const voided = await ctx.store.voidSale(eventId, muid, 'refunded');
    if (voided === 'not_ready' || voided === 'order_missing') throw new TransientError('event not loaded in Redis');
    await ctx.db.transaction().execute(async (trx) => {
      await lifecycle.voidTickets(trx, muid);
      await lifecycle.setStatus(trx, muid, 'refunded', 'payment cancelled at PortOne');
      await ordersRepo.appendOrderEvent(trx, muid, eventId, 'cancelled_after_paid', { imp_uid: payment.imp_uid });
    });
    return 'voided';
  }
  return releaseFor(ctx, eventId, payment, 'payment cancelled');
}

async function settleFailed(ctx: WorkerContext, eventId: string, payment: PortOnePayment): Promise<string> {
  const outcome = await releaseFor(ctx, eventId, payment, payment.fail_reason ?? 'payment failed');
  // Some PGs report failed and later paid, and that webhook may be lost: keep an eye on it.
  await watchPayment(ctx, eventId, payment.merchant_uid, payment.imp_uid, 1);
  return outcome;
}

/** Releases the order's hold when `payment` was the only payment riding on it. */
async function releaseFor(ctx: WorkerContext, eventId: string, payment: PortOnePayment, reason: string): Promise<string> {
  const muid = payment.merchant_uid;
  const state = await ctx.store.orderState(eventId, muid);
  if (state === null) throw new TransientError('event not loaded in Redis');
  if (state.status !== 'held') return 'nothing-held';
  const others = state.impUids.filter((imp) => imp !== payment.imp_uid);
  if (others.length > 0) return 'other-payment-pending';
  const r = await ctx.store.releaseHold(eventId, muid, { seq: state.seq, status: 'released', nowMs: Date.now(), onlyIfOverdue: false });
  if (r === 'not_ready' || r === 'order_missing') throw new TransientError('event not loaded in Redis');
  if (r !== 'released') return `not-released-${r}`;
  ctx.metrics.holdsReleased.inc({ event: eventId, reason: 'payment_failed' });
  await finishOrder(ctx, eventId, muid, 'released', reason, 'released');
  return 'released';
}

async function releaseInRedis(ctx: WorkerContext, eventId: string, muid: string, status: 'released' | 'expired'): Promise<void> {
  const r = await ctx.store.releaseHold(eventId, muid, { status, nowMs: Date.now(), onlyIfOverdue: false });
  if (r === 'not_ready') throw new TransientError('event not loaded in Redis');
  if (r === 'released') ctx.metrics.holdsReleased.inc({ event: eventId, reason: 'refunded' });
}

async function finishOrder(
  ctx: WorkerContext, eventId: string, muid: string, status: 'released' | 'expired' | 'refunded', reason: string,
  holdEnd: 'released' | 'expired' | null,
): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const locked = await ordersRepo.lockOrder(trx, muid);
    if (!locked || locked.status === 'paid') return;
    if (holdEnd) await lifecycle.endLiveHolds(trx, muid, holdEnd, reason);
    await lifecycle.setStatus(trx, muid, status, reason);
    await ordersRepo.appendOrderEvent(trx, muid, eventId, status, { reason });
  });
}

/**
 * Gives money back through PortOne's cancel API, at most once per payment, with the checksum set to
 * what should still be refundable so a refund can never exceed it.
 */
export async function refund(ctx: WorkerContext, eventId: string, payment: PortOnePayment, reason: RefundReason): Promise<void> {
  const refundable = payment.amount - payment.cancel_amount;
  if (refundable <= 0) return;
  const claimed = await lifecycle.claimRefund(ctx.db, { impUid: payment.imp_uid, merchantUid: payment.merchant_uid, eventId, amount: refundable, reason });
  if (!claimed) return;
  try {
    await ctx.portone.cancelPayment({
      impUid: payment.imp_uid, merchantUid: payment.merchant_uid, checksum: refundable, reason: `dropgate: ${reason}`,
    });
  } catch (error) {
    // Refused (e.g. the checksum no longer matches because a cancel already went through): re-read the
    // truth; if nothing is left to refund the refund is done, otherwise try again later.
    const fresh = await fetchPayment(ctx, payment.imp_uid);
    if (!fresh || fresh.amount - fresh.cancel_amount > 0) {
      if (error instanceof PortOneError && error.transient) throw new TransientError(`refund failed: ${error.message}`);
      throw new TransientError(`refund refused: ${(error as Error).message}`);
    }
  }
  await lifecycle.markRefundDone(ctx.db, payment.imp_uid);
  await ordersRepo.appendOrderEvent(ctx.db, payment.merchant_uid, eventId, 'refunded', { imp_uid: payment.imp_uid, amount: refundable, reason });
  ctx.metrics.refunds.inc({ reason });
}

/**
 * The hold of `merchantUid` numbered `seq` reached its expiry: ask PortOne about every payment riding
 * on it first (a lost webhook must not lose a sale), then release it. If PortOne cannot be reached,
 * retry until `EXPIRY_GRACE_SECONDS` after expiry, then release (a later paid is a late payment).
 */
export function expireHold(ctx: WorkerContext, eventId: string, merchantUid: string, seq: number | null): Promise<string> {
  return withOrderLock(ctx, eventId, merchantUid, () => expireHoldLocked(ctx, eventId, merchantUid, seq));
}

async function expireHoldLocked(ctx: WorkerContext, eventId: string, merchantUid: string, seq: number | null): Promise<string> {
  const state = await ctx.store.orderState(eventId, merchantUid);
  if (state === null) {
    if ((await ctx.store.eventState(eventId)) !== 'ready') throw new TransientError('event not loaded in Redis');
    return 'order-missing';
  }
  if (state.status !== 'held') {
    // Ended in Redis: make sure the record agrees (a hold row left live by a crash or a rebuild).
    // (A hold recorded while its payment was being committed can be left live: close it as committed.)
    if (state.status === 'paid') await lifecycle.endLiveHolds(ctx.db, merchantUid, 'committed', 'paid');
    else await lifecycle.endLiveHolds(ctx.db, merchantUid, 'expired', `ended in Redis (${state.status})`);
    return 'ended';
  }
  if (seq !== null && state.seq !== seq) return 'superseded';
  const now = Date.now();
  if (state.expiresAt !== null && state.expiresAt > now) return 'not-due';

  let unreachable = false;
  const unfinished: string[] = [];
  for (const imp of state.impUids) {
    let payment: PortOnePayment | null;
    try {
      payment = await ctx.portone.getPayment(imp);
    } catch (error) {
      // Whatever the failure (down, refused, bad credentials), we do not know the payment's state.
      ctx.log.debug({ err: error, impUid: imp }, 'PortOne could not tell the payment state');
      unreachable = true;
      continue;
    }
    if (payment && payment.merchant_uid === merchantUid) {
      await lifecycle.upsertPayment(ctx.db, paymentRecord(eventId, payment));
      if (payment.status === 'paid' && payment.cancel_amount < payment.amount) {
        return `paid:${await applyPaymentLocked(ctx, eventId, payment)}`;
      }
      // 'failed' too: some PGs report failed and later paid.
      if (payment.status === 'ready' || payment.status === 'failed') unfinished.push(imp);
    } else if (!payment) {
      unfinished.push(imp);
    }
  }
  if (unreachable) {
    const overdueMs = now - (state.expiresAt ?? now);
    if (overdueMs < ctx.config.expiryGraceSeconds * 1000) throw new TransientError('PortOne unreachable; not deciding on a guess');
    ctx.log.warn({ eventId, merchantUid }, 'PortOne unreachable past the grace period: releasing; a later payment is handled as late');
  }
  const r = await ctx.store.releaseHold(eventId, merchantUid, { seq: state.seq, status: 'expired', nowMs: now, onlyIfOverdue: true });
  if (r === 'not_ready' || r === 'order_missing') throw new TransientError('event not loaded in Redis');
  if (r !== 'released') return `not-released-${r}`;
  ctx.metrics.holdsExpired.inc({ event: eventId });
  await finishOrder(ctx, eventId, merchantUid, 'expired', 'the hold expired unpaid', 'expired');
  // A buyer may still finish paying after the hold ended, and that "paid" webhook may be lost: keep
  // asking PortOne about unfinished payments for a while (a paid one is then a late payment).
  for (const imp of unreachable ? state.impUids : unfinished) await watchPayment(ctx, eventId, merchantUid, imp, 1);
  return 'expired';
}

const WATCH_CHECKS = 5;

/** Schedules late-payment check `check` (1..5) of `impUid`, at 1/16, 1/8, 1/4, 1/2, 1 of the watch window. */
export async function watchPayment(ctx: WorkerContext, eventId: string, merchantUid: string, impUid: string, check: number): Promise<void> {
  if (check > WATCH_CHECKS) return;
  const delay = Math.round((ctx.config.latePaymentWatchSeconds * 1000) / 2 ** (WATCH_CHECKS - check));
  const job: PaymentOutcomeJob = { eventId, merchantUid, impUid, hint: null, source: 'watch', receivedAt: Date.now(), check };
  await ctx.queues.payments.add('watch', job, { jobId: jobIds.watchPayment(impUid, check), delay });
}
