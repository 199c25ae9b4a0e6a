/**
 * The hold of an order reached its expiry: ask PortOne about every payment of the order first (a lost
 * webhook must not lose a sale), then release it. If PortOne cannot be reached, retry until
 * EXPIRY_GRACE_SECONDS after expiry, then release (a later paid is handled as a late payment).
 *
 * "Every payment" is what PortOne lists for the merchant_uid (`GET /payments/findAll`) together with
 * what dropgate knows: the payments riding on the hold in Redis and every payment row of the record.
 * Knowing is not enough on its own: Redis forgets a hold's riders when it loses its data, a payment
 * whose job was lost in the same moment never reached the record, and a PG that cannot confirm sends
 * a payment no confirm announced (found by npm run chaos, seed 1785733114).
 */
import { lifecycle, orders as ordersRepo } from '@dropgate/db';
import type { PortOnePayment } from '@dropgate/portone';
import { TransientError, type WorkerContext, EventNotLoadedError } from '../context.ts';
import { withOrderLock } from './lock.ts';
import { recordPayment } from './payment.ts';
import { applyPaymentLocked } from './apply.ts';
import { watchPayment } from './watch.ts';
import { REFUND_CAUSE, type RefundReason } from './refund.ts';
import type { ExpiryOutcome } from './outcomes.ts';

export function expireHold(ctx: WorkerContext, eventId: string, merchantUid: string, seq: number | null): Promise<ExpiryOutcome> {
  return withOrderLock(ctx, eventId, merchantUid, () => expireHoldLocked(ctx, eventId, merchantUid, seq));
}

async function expireHoldLocked(ctx: WorkerContext, eventId: string, merchantUid: string, seq: number | null): Promise<ExpiryOutcome> {
  const state = await ctx.store.orderState(eventId, merchantUid);
  if (state === null) {
    if ((await ctx.store.eventState(eventId)) !== 'ready') throw new EventNotLoadedError('event not loaded in Redis');
    return 'order-missing';
  }
  if (state.status !== 'held') {
    // Ended in Redis: make sure the record agrees (a hold row left live, and the order's change, lost
    // by a crash or a Postgres restart between the two writes). A paid order is the payment job's to
    // finish (it retries); a hold recorded while its payment was being committed is closed as committed.
    if (state.status === 'paid') {
      await lifecycle.endLiveHolds(ctx.db, merchantUid, 'committed', 'paid');
      return 'ended';
    }
    if (state.status === 'pending') {
      // The record has a live hold that Redis does not: the hold was lost (a failover took a primary
      // before it replicated the hold) or overwritten (a rebuild loaded the order from a record read
      // before the hold was recorded). Nothing holds the places any more, so the hold ends in the record
      // too, and every payment of the order is watched: one that turns out paid is a late payment
      // (places taken again if free, else refunded). Found by npm run drop -- --cluster --kill-primary-at.
      // Only a hold Redis never knew (its live hold in the record is newer than the last hold Redis has
      // for the order); a hold Redis knew and gave back (a failed payment) ends as it always did.
      const gone = 'the hold is gone from Redis (failover or rebuild)';
      const live = await ctx.db.selectFrom('holds').select('seq').where('merchant_uid', '=', merchantUid).where('status', '=', 'live').orderBy('seq', 'desc').executeTakeFirst();
      if (live !== undefined && live.seq > state.seq && (await ordersRepo.findOrder(ctx.db, merchantUid))?.status === 'held') {
        await endLostHold(ctx, eventId, merchantUid, gone, state.impUids);
        return 'ended';
      }
    }
    const reason = `ended in Redis (${state.status})`;
    await ctx.db.transaction().execute(async (trx) => {
      await lifecycle.endLiveHolds(trx, merchantUid, state.status === 'expired' ? 'expired' : 'released', reason);
      if (state.status === 'expired') await lifecycle.transition(trx, merchantUid, 'hold_expired', reason);
      else if (state.status === 'released') await lifecycle.transition(trx, merchantUid, 'hold_reconciled', reason);
      // Pending in Redis under the very hold the record has live: Redis gave that hold back after the
      // worker recorded it (a confirm's deadline undo that reached Redis late, when the API's event
      // loop stalled past the budget with placeHold's answer already waiting). PortOne was refused, so
      // no payment comes; the order follows Redis out of `held` instead of staying held for good.
      else if (state.status === 'pending' && (await ordersRepo.findOrder(trx, merchantUid))?.status === 'held') {
        await lifecycle.transition(trx, merchantUid, 'hold_reconciled', reason);
      }
      // Refunded in Redis: a refund closed the order there (refundAndClose closes Redis only after the
      // money went back, its refund decided in the record first) and its record step was lost (Postgres
      // restarting, the worker dying) with its job (the queues lost: the queue guard leaves held orders
      // to this expiry). Ending the hold alone left the order held for good, its money refunded (attack
      // round 28A). The order follows the refund the record has decided for it; the transition refuses
      // an order that has moved on (already refunded: a hold recorded after the refund's own step).
      else if (state.status === 'refunded') {
        const cause = (await lifecycle.refundsOfOrder(trx, merchantUid)).map((r) => REFUND_CAUSE[r.reason as RefundReason] ?? null).find((c) => c !== null);
        if (cause) await lifecycle.transition(trx, merchantUid, cause, reason);
      }
    });
    return 'ended';
  }
  if (seq !== null && state.seq !== seq) return 'superseded';
  const now = ctx.clock.now();
  if (state.expiresAt !== null && state.expiresAt > now) return 'not-due';

  let unreachable = false;
  const unfinished: string[] = [];
  let settled: ExpiryOutcome | null = null;
  const listed = new Map<string, PortOnePayment>();
  try {
    const api = (await ordersRepo.findOrder(ctx.db, merchantUid))?.portone_api ?? 'v1';
    for (const p of await ctx.portone.findAllPayments(merchantUid, api)) if (p.merchant_uid === merchantUid) listed.set(p.imp_uid, p);
  } catch (error) {
    ctx.log.debug({ err: error, merchantUid }, 'PortOne could not list the payments of the order');
    unreachable = true;
  }
  const imps = [...new Set([...listed.keys(), ...state.impUids, ...(await lifecycle.paymentsOfOrder(ctx.db, merchantUid))])];
  for (const imp of imps) {
    let payment: PortOnePayment | null;
    try {
      payment = listed.get(imp) ?? (await ctx.portone.getPayment(merchantUid, imp));
    } catch (error) {
      // Whatever the failure (down, refused, bad credentials), we do not know the payment's state.
      ctx.log.debug({ err: error, impUid: imp }, 'PortOne could not tell the payment state');
      unreachable = true;
      continue;
    }
    // A payment PortOne knows for another order is none of this order's business.
    if (payment && payment.merchant_uid !== merchantUid) continue;
    if (payment) {
      await recordPayment(ctx, eventId, payment);
      if (payment.status === 'paid' && payment.cancel_amount < payment.amount) {
        // The first paid payment takes the seats; any other one that is paid too is refunded as a
        // duplicate by the same call (the order is paid by then). Keep asking about every one.
        const outcome = await applyPaymentLocked(ctx, eventId, payment);
        settled ??= `paid:${outcome}`;
        continue;
      }
      // 'failed' too: some PGs report failed and later paid.
      if (payment.status === 'ready' || payment.status === 'failed') unfinished.push(imp);
    } else {
      unfinished.push(imp);
    }
  }
  // PortOne answered for every payment of the order: unsigned confirms may hold it again (verify.ts).
  if (!unreachable) await ctx.store.markChecked(eventId, merchantUid);
  // A paid payment of another amount settles nothing (its own money went back, and it left the hold
  // it rode on): a hold still standing after it expires below like any other.
  if (settled !== null && (await ctx.store.orderState(eventId, merchantUid))?.status !== 'held') {
    // Payments still unfinished, or not answered now, are watched for a late paid (then refunded).
    for (const imp of unreachable ? imps : unfinished) await watchPayment(ctx, eventId, merchantUid, imp, 1);
    return settled;
  }
  if (unreachable) {
    const overdueMs = now - (state.expiresAt ?? now);
    if (overdueMs < ctx.config.expiryGraceSeconds * 1000) throw new TransientError('PortOne unreachable; not deciding on a guess');
    ctx.log.warn({ eventId, merchantUid }, 'PortOne unreachable past the grace period: releasing; a later payment is handled as late');
  }
  const r = await ctx.store.releaseHold(eventId, merchantUid, { seq: state.seq, status: 'expired', nowMs: now, onlyIfOverdue: true });
  if (r === 'not_ready' || r === 'order_missing') throw new EventNotLoadedError('event not loaded in Redis');
  if (r !== 'released') return `not-released-${r}`;
  ctx.metrics.holdsExpired.inc({ event: eventId });
  await ctx.db.transaction().execute(async (trx) => {
    await lifecycle.endLiveHolds(trx, merchantUid, 'expired', 'the hold expired unpaid');
    await lifecycle.transition(trx, merchantUid, 'hold_expired', 'the hold expired unpaid');
  });
  // A buyer may still finish paying after the hold ended, and that "paid" webhook may be lost: keep
  // asking PortOne about unfinished payments for a while (a paid one is then a late payment).
  for (const imp of unreachable ? imps : unfinished) await watchPayment(ctx, eventId, merchantUid, imp, 1);
  return 'expired';
}

/**
 * A hold the record has live that no longer holds its places in Redis (lost in a failover, or displaced
 * by a rebuild because another claim has its places) ends in the record too: released (the order
 * `hold_reconciled`), and every payment of the order is watched, so one that turns out paid is a late
 * payment (places taken again if free, else refunded through PortOne). Under the order's lock.
 */
export async function endLostHold(ctx: WorkerContext, eventId: string, merchantUid: string, reason: string, knownImps: readonly string[]): Promise<void> {
  const riding = await ctx.db.selectFrom('holds').select('imp_uid').where('merchant_uid', '=', merchantUid).where('status', '=', 'live').execute();
  await ctx.db.transaction().execute(async (trx) => {
    await lifecycle.endLiveHolds(trx, merchantUid, 'released', reason);
    await lifecycle.transition(trx, merchantUid, 'hold_reconciled', reason);
  });
  const imps = new Set([...knownImps, ...riding.map((h) => h.imp_uid), ...(await lifecycle.paymentsOfOrder(ctx.db, merchantUid))]);
  for (const imp of imps) if (imp !== '') await watchPayment(ctx, eventId, merchantUid, imp, 1);
}

/**
 * A rebuild displaced the order's hold (its places are another claim's in the record: see
 * loadSnapshot) and loaded the order without places: its hold ends in the record through the lifecycle
 * (endLostHold). Nothing to do if the order is no longer held in the record, or holds again in Redis
 * (a new hold taken after the rebuild). @returns whether it ended the hold.
 */
export function endDisplacedHold(ctx: WorkerContext, eventId: string, merchantUid: string): Promise<boolean> {
  return withOrderLock(ctx, eventId, merchantUid, async () => {
    if ((await ordersRepo.findOrder(ctx.db, merchantUid))?.status !== 'held') return false;
    const state = await ctx.store.orderState(eventId, merchantUid);
    if (state === null || state.status === 'held' || state.status === 'paid') return false;
    ctx.log.warn({ eventId, merchantUid }, 'a hold displaced by another claim on its places (failover): ending it');
    await endLostHold(ctx, eventId, merchantUid, 'its places were claimed by another order while Redis had lost the hold (failover or rebuild)', state.impUids);
    return true;
  });
}
