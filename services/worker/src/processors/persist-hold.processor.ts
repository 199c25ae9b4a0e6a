/**
 * Records an approved hold in Postgres and schedules its expiry check. Idempotent: the hold id is the
 * order and its hold number, and Redis is asked what became of the hold before anything is written
 * (an approval undone for the deadline records nothing).
 */
import { lifecycle } from '@dropgate/db';
import { jobIds, type ExpireHoldJob, type PersistHoldJob } from '@dropgate/jobs';
import { TransientError, type WorkerContext } from '../context.ts';

export async function persistHold(ctx: WorkerContext, job: PersistHoldJob): Promise<string> {
  const state = await ctx.store.orderState(job.eventId, job.merchantUid);
  if (!state) {
    if ((await ctx.store.eventState(job.eventId)) !== 'ready') throw new TransientError('event state not loaded in Redis');
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
    if (await lifecycle.recordHold(ctx.db, record, 'live')) ctx.metrics.holdsCreated.inc({ event: job.eventId });
    const expiry: ExpireHoldJob = { eventId: job.eventId, merchantUid: job.merchantUid, seq: job.seq, impUid: job.impUid, expiresAt: job.expiresAt };
    await ctx.queues.expiry.add('expire', expiry, { jobId: jobIds.expireHold(job.merchantUid, job.seq), delay: Math.max(0, job.expiresAt - Date.now()) });
    return 'recorded';
  }
  if (state.seq === job.seq && state.status === 'paid') {
    // The payment settled before this job ran: keep the hold in the record as committed.
    await lifecycle.recordHold(ctx.db, record, 'committed');
    return 'recorded-committed';
  }
  // Undone for the deadline, or already ended and superseded: nothing to record.
  return 'skipped';
}
