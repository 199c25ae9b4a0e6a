/**
 * The late-payment watch: after a hold expired unpaid or a payment was reported failed, dropgate asks
 * PortOne about the payment again at 1/16, 1/8, 1/4, 1/2 and all of LATE_PAYMENT_WATCH_SECONDS, so a
 * late "paid" whose webhook was lost is still ticketed or refunded. The watch ends at
 * LATE_PAYMENT_WATCH_SECONDS: each check is scheduled when the one before it found nothing, so its
 * delay is the gap to its time, not its time.
 */
import { lifecycle } from '@dropgate/db';
import { jobIds, type PaymentOutcomeJob } from '@dropgate/jobs';
import type { WorkerContext } from '../context.ts';

export const WATCH_CHECKS = 5;

/** When check `check` (1..5) is due, counted from the start of the watch: W/16, W/8, W/4, W/2, W. */
export function watchCheckAtMs(check: number, watchSeconds: number): number {
  return (watchSeconds * 1000) / 2 ** (WATCH_CHECKS - check);
}

/** How long after check `check - 1` (or the start of the watch) check `check` runs. */
export function watchDelayMs(check: number, watchSeconds: number): number {
  return Math.round(watchCheckAtMs(check, watchSeconds)) - (check > 1 ? Math.round(watchCheckAtMs(check - 1, watchSeconds)) : 0);
}

/** Schedules late-payment check `check` (1..5) of `impUid`. */
export async function watchPayment(ctx: WorkerContext, eventId: string, merchantUid: string, impUid: string, check: number): Promise<void> {
  if (check > WATCH_CHECKS) return;
  const delay = watchDelayMs(check, ctx.config.latePaymentWatchSeconds);
  const job: PaymentOutcomeJob = { eventId, merchantUid, impUid, hint: null, source: 'watch', receivedAt: Date.now(), check };
  await ctx.queues.payments.add('watch', job, { jobId: jobIds.watchPayment(merchantUid, impUid, check), delay });
}

/** How long after PortOne said it does not know a payment a webhook named it is asked once more (as verify.ts retries: replication lag). */
export const UNKNOWN_PAYMENT_RECHECK_MS = 1_000;

/**
 * One more look at a payment a webhook named and PortOne did not know (yet: its REST API may lag the
 * notification, and a payment no confirm announced has no hold whose expiry would ask again), as the
 * last check of a watch (so it starts no series), once per order and payment (a fixed job id).
 */
export async function recheckUnknownPayment(ctx: WorkerContext, eventId: string, merchantUid: string, impUid: string): Promise<void> {
  const job: PaymentOutcomeJob = { eventId, merchantUid, impUid, hint: null, source: 'watch', receivedAt: Date.now(), check: WATCH_CHECKS };
  await ctx.queues.payments.add('watch', job, { jobId: jobIds.recheckPayment(merchantUid, impUid), delay: UNKNOWN_PAYMENT_RECHECK_MS });
}

/**
 * Once an order is settled (paid, or refunded), every other payment that rode on its hold is watched:
 * one the buyer completed in another window may still turn paid with its webhook lost, and that money
 * must come back (the watch finds it paid and refunds it as a duplicate).
 */
export async function watchOtherPayments(
  ctx: WorkerContext, eventId: string, merchantUid: string, settledImpUid: string, unfinished?: readonly string[],
): Promise<void> {
  for (const imp of await paymentsOfOrder(ctx, eventId, merchantUid, unfinished)) {
    if (imp !== settledImpUid) await watchPayment(ctx, eventId, merchantUid, imp, 1);
  }
}

/**
 * Every payment approved on the order's live hold (Redis) and every verified payment the record has
 * as unfinished (Postgres): Redis forgets a hold's riders when it loses its data, the record does not.
 * `unfinished`: the record's, when the caller read them already (in the transaction that settled the order).
 */
export async function paymentsOfOrder(ctx: WorkerContext, eventId: string, merchantUid: string, unfinished?: readonly string[]): Promise<string[]> {
  const state = await ctx.store.orderState(eventId, merchantUid);
  return [...new Set([...(state?.impUids ?? []), ...(unfinished ?? (await lifecycle.unfinishedPayments(ctx.db, merchantUid)))])];
}
