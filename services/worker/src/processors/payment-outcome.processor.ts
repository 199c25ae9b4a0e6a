/**
 * A payment's outcome, whatever told us (webhook, verification of a confirm, reconcile after a Redis
 * rebuild, late-payment watch): re-fetch the payment from PortOne and act on that truth only. What a
 * webhook or confirm claimed is a hint; a payment PortOne does not know, or knows for another order,
 * changes nothing (the job completes, it does not fail and linger). The payment is fetched under the
 * order's settlement lock, so a reading taken before another job's refund is never acted on.
 */
import { UnrecoverableError } from 'bullmq';
import { orders as ordersRepo } from '@dropgate/db';
import type { PaymentOutcomeJob } from '@dropgate/jobs';
import { WEBHOOK_ACTED } from '@dropgate/redis';
import type { WorkerContext } from '../context.ts';
import { configuredApis } from './ledger.processor.ts';
import {
  applyPaymentLocked, checkUnchecked, fetchPaymentShared, lookupFailure, recheckUnknownPayment, verifyPayment, watchPayment, withOrderLock, type PaymentJobOutcome,
} from '../settlement/index.ts';

export async function paymentOutcome(ctx: WorkerContext, job: PaymentOutcomeJob, attemptsMade = 0): Promise<PaymentJobOutcome> {
  if (job.source === 'verify') return verifyPayment(ctx, job.eventId, job.merchantUid, job.impUid, attemptsMade + (job.check ?? 0));
  if (job.source === 'unchecked') return checkUnchecked(ctx, job.eventId, job.merchantUid);
  return withOrderLock(ctx, job.eventId, job.merchantUid, () => outcomeLocked(ctx, job));
}

async function outcomeLocked(ctx: WorkerContext, job: PaymentOutcomeJob): Promise<PaymentJobOutcome> {
  if (job.source === 'reconcile') {
    // The order's own API (where its payments were pre-registered), and the other one when dropgate has
    // its credentials: a V2 order can be paid through V1 (a window opened with its merchant_uid) and a
    // V1 order through V2, and asking only the order's own API left such a payment, and a refund
    // decided for it, unfound for good (attack round 20A).
    const order = await ordersRepo.findOrder(ctx.db, job.merchantUid);
    const own = order?.portone_api ?? 'v1';
    const apis = [own, ...configuredApis(ctx).filter((api) => api !== own)];
    // Each API answers for itself: one that refuses or is down does not keep the other's payments from
    // being acted on (attack round 21A: a revoked V2 secret failed every V1 order's reconcile). The
    // order's own API failing fails the job as before; the other one failing for a while (not refused)
    // fails it after the rest was acted on, so it is asked again.
    const answers = await Promise.allSettled(apis.map((api) => ctx.portone.findAllPayments(job.merchantUid, api)));
    const own0 = answers[0]!;
    if (own0.status === 'rejected') throw lookupFailure(own0.reason);
    let otherFailure: Error | null = null;
    for (const [i, a] of answers.entries()) {
      if (i === 0 || a.status === 'fulfilled') continue;
      const failure = lookupFailure(a.reason);
      ctx.log.warn({ err: a.reason, merchantUid: job.merchantUid, api: apis[i] }, 'reconcile: the other PortOne API did not answer; acting on the order\'s own');
      if (!(failure instanceof UnrecoverableError)) otherFailure ??= failure;
    }
    const found = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : [])).filter((p) => p.merchant_uid === job.merchantUid);
    if (found.length === 0) {
      if (otherFailure !== null) throw otherFailure;
      return 'no-payment';
    }
    // Every payment of the order, oldest first, as if its news had come in that order: an order can
    // have several (a failed card then another; a payment without confirm beside a tampered one), and
    // any of them may be the one whose job was lost.
    let outcome: PaymentJobOutcome = 'watching';
    for (const payment of found) {
      if (payment.status === 'ready') {
        // The buyer may still be paying, and that webhook may be lost: watch it like an expired hold's.
        await watchPayment(ctx, job.eventId, job.merchantUid, payment.imp_uid, 1);
        continue;
      }
      outcome = await applyPaymentLocked(ctx, job.eventId, payment);
    }
    if (otherFailure !== null) throw otherFailure;
    return outcome;
  }
  const payment = await fetchPaymentShared(ctx, job.merchantUid, job.impUid);
  if (job.source === 'watch') {
    // A late-payment check after the hold expired: act if it was paid; check again later while it is
    // unpaid or failed (some PGs turn failed into paid); stop once it was cancelled.
    if (!payment || payment.status === 'ready') {
      await watchPayment(ctx, job.eventId, job.merchantUid, job.impUid, (job.check ?? 1) + 1);
      return 'still-unpaid';
    }
    if (payment.merchant_uid !== job.merchantUid) return 'not-ours';
    if (payment.status === 'failed') {
      await watchPayment(ctx, job.eventId, job.merchantUid, job.impUid, (job.check ?? 1) + 1);
      return 'still-failed';
    }
    if (payment.status !== 'paid') return `ended-${payment.status}`;
    return applyPaymentLocked(ctx, job.eventId, payment);
  }
  // Recorded as acted on, so webhooks naming it again cost no lookup per webhook (see noteWebhook):
  // one PortOne does not know waits a window for its next lookup, which a later webhook still gets
  // (a payment created since is found); one of another order never becomes this order's.
  if (!payment) {
    await ctx.store.webhookActedOn(job.eventId, job.merchantUid, job.impUid, WEBHOOK_ACTED.unknown, ctx.clock.now());
    // PortOne may not show a payment it just notified about yet (replication lag), and a payment no
    // confirm announced (a PG that cannot confirm) has no hold whose expiry would ask again: its one
    // webhook must not be its last lookup. Asked once more a second later (once per payment).
    await recheckUnknownPayment(ctx, job.eventId, job.merchantUid, job.impUid);
    return 'unknown-payment';
  }
  if (payment.merchant_uid !== job.merchantUid) {
    await ctx.store.webhookActedOn(job.eventId, job.merchantUid, job.impUid, WEBHOOK_ACTED.foreign, ctx.clock.now());
    return 'not-ours';
  }
  const outcome = await applyPaymentLocked(ctx, job.eventId, payment);
  // A later webhook claiming what PortOne said here brings no news: the API counts it a duplicate.
  await ctx.store.webhookActedOn(job.eventId, job.merchantUid, payment.imp_uid, payment.status, ctx.clock.now());
  return outcome;
}
