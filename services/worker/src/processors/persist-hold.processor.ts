/**
 * Records an approved hold in Postgres. Idempotent: the hold id is the order and its hold number, and
 * Redis is asked what became of the hold before anything is written (an approval undone for the
 * deadline records nothing). Runs under the order's settlement lock: a payment outcome or an expiry
 * that ends the hold meanwhile cannot interleave with the recording (which would move an order that
 * already ended back to `held`).
 */
import { lifecycle } from '@dropgate/db';
import type { PersistHoldJob } from '@dropgate/jobs';
import { TransientError, type WorkerContext, EventNotLoadedError } from '../context.ts';
import { withOrderLock } from '../settlement/index.ts';

export type PersistOutcome = 'recorded' | 'recorded-committed' | 'recorded-ended' | 'skipped' | 'order-missing';

export function persistHold(ctx: WorkerContext, job: PersistHoldJob): Promise<PersistOutcome> {
  return withOrderLock(ctx, job.eventId, job.merchantUid, () => persistHoldLocked(ctx, job));
}

async function persistHoldLocked(ctx: WorkerContext, job: PersistHoldJob): Promise<PersistOutcome> {
  const state = await ctx.store.orderState(job.eventId, job.merchantUid);
  if (!state) {
    if ((await ctx.store.eventState(job.eventId)) !== 'ready') throw new EventNotLoadedError('event state not loaded in Redis');
    return 'order-missing';
  }
  if (state.seq < job.seq) throw new TransientError('hold not visible yet');
  const record = {
    holdId: `${job.merchantUid}:${job.seq}`,
    merchantUid: job.merchantUid,
    eventId: job.eventId,
    impUid: job.impUid,
    seq: job.seq,
    expiresAt: new Date(job.expiresAt),
  };
  if (state.seq === job.seq && state.status === 'held') {
    // Its expiry is found by the periodic sweep (within one sweep interval of expires_at), not by a
    // delayed job per hold: that would double the queue work of every approval during a drop.
    if (await lifecycle.recordHold(ctx.db, record, 'live')) ctx.metrics.holdsCreated.inc({ event: job.eventId });
    return 'recorded';
  }
  if (state.seq === job.seq && state.status === 'paid') {
    // The payment settled before this job ran: keep the hold in the record as committed.
    await lifecycle.recordHold(ctx.db, record, 'committed');
    return 'recorded-committed';
  }
  if (state.seq === job.seq && (state.status === 'expired' || state.status === 'released' || state.status === 'refunded')) {
    // The hold ended before this job ran (it expired, its payment failed or was not vouched for):
    // the record still shows it, ended, so every hold a confirm took is accounted for.
    await lifecycle.recordHold(ctx.db, record, state.status === 'expired' ? 'expired' : 'released');
    return 'recorded-ended';
  }
  // Undone for the deadline (pending again), or superseded by a later hold: nothing to record.
  return 'skipped';
}
