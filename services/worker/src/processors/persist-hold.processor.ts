/**
 * Records an approved hold in Postgres. Idempotent: the hold id is the order and its hold number, and
 * Redis is asked what became of the hold before anything is written (an approval undone for the
 * deadline records nothing). Runs under the order's settlement lock: a payment outcome or an expiry
 * that ends the hold meanwhile cannot interleave with the recording (which would move an order that
 * already ended back to `held`).
 *
 * A rebuild that read the record just before this job wrote the hold loads the event without it (issue
 * 12: after a failover, the job read the hold on the old primary and wrote it after the rebuild on the
 * new one read the record), and another order may then take its places. So the job notes which load
 * the state came from before reading it, and checks again after writing: if the event was loaded again
 * meanwhile, the job runs again, and a hold it recorded that Redis no longer has ends in the record at
 * once (released, its payments watched) instead of at its expiry.
 */
import { lifecycle, orders as ordersRepo } from '@dropgate/db';
import type { PersistHoldJob } from '@dropgate/jobs';
import { TransientError, type WorkerContext, EventNotLoadedError } from '../context.ts';
import { endLostHold, withOrderLock } from '../settlement/index.ts';

export type PersistOutcome = 'recorded' | 'recorded-committed' | 'recorded-ended' | 'recorded-lost' | 'skipped' | 'order-missing';

export function persistHold(ctx: WorkerContext, job: PersistHoldJob): Promise<PersistOutcome> {
  return withOrderLock(ctx, job.eventId, job.merchantUid, () => persistHoldLocked(ctx, job));
}

async function persistHoldLocked(ctx: WorkerContext, job: PersistHoldJob): Promise<PersistOutcome> {
  const mark = await ctx.store.loadMark(job.eventId);
  const state = await ctx.store.orderState(job.eventId, job.merchantUid);
  if (!state) {
    if ((await ctx.store.eventState(job.eventId)) !== 'ready') throw new EventNotLoadedError('event state not loaded in Redis');
    return 'order-missing';
  }
  const record = {
    holdId: `${job.merchantUid}:${job.seq}`,
    merchantUid: job.merchantUid,
    eventId: job.eventId,
    impUid: job.impUid,
    seq: job.seq,
    expiresAt: new Date(job.expiresAt),
  };
  if (state.seq < job.seq) {
    const lost = await endLostHoldOf(ctx, job, record, state.impUids);
    if (lost) return lost;
    throw new TransientError('hold not visible yet');
  }
  if (state.seq === job.seq && state.status === 'held') {
    // Its expiry is found by the periodic sweep (within one sweep interval of expires_at), not by a
    // delayed job per hold: that would double the queue work of every approval during a drop.
    if (await lifecycle.recordHold(ctx.db, record, 'live')) ctx.metrics.holdsCreated.inc({ event: job.eventId });
    // Loaded again (or being loaded) since the state was read: the load may have read the record before
    // this write. Run again: the hold is then either in Redis (recorded, nothing more) or gone.
    if (mark === null || (await ctx.store.loadMark(job.eventId)) !== mark) throw new TransientError('the event was loaded again while its hold was recorded');
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

/**
 * Redis, whole, has no such hold (its hold number is behind the job's): it lost the hold (a FLUSHALL or
 * a failover, then a rebuild from the record) and will never show it. Nothing holds the places any
 * more, so the hold ends in the record too:
 * - the record never had it (Redis lost it before it was recorded; found by the chaos campaign, seed
 *   1822757927: the job waited for it until its attempts ran out): recorded ended (committed, when its
 *   order was paid meanwhile, its seats taken again), as a hold that ended before it was recorded.
 *   Its payment is settled by its own jobs;
 * - an earlier run of this job recorded it live (a rebuild loaded the event from a record read before
 *   the hold was written) and its order is still held: ended, its payments watched (endLostHold).
 * @returns what was done, or null when Redis is not known whole or the record already ended the hold.
 */
async function endLostHoldOf(
  ctx: WorkerContext, job: PersistHoldJob, record: lifecycle.HoldRecord, impUids: readonly string[],
): Promise<PersistOutcome | null> {
  if ((await ctx.store.stampState(job.eventId)) !== 'whole') return null;
  const row = await ctx.db.selectFrom('holds').select('status').where('hold_id', '=', record.holdId).executeTakeFirst();
  const where = { eventId: job.eventId, merchantUid: job.merchantUid, seq: job.seq };
  if (row === undefined) {
    ctx.log.warn(where, 'a hold Redis lost before it was recorded: recording it ended');
    await lifecycle.recordHold(ctx.db, record, 'released');
    return 'recorded-ended';
  }
  if (row.status !== 'live' || (await ordersRepo.findOrder(ctx.db, job.merchantUid))?.status !== 'held') return null;
  ctx.log.warn(where, 'a hold recorded after a rebuild read the record is gone from Redis: ending it');
  await endLostHold(ctx, job.eventId, job.merchantUid, 'the hold is gone from Redis (the event was rebuilt from a record read before the hold was recorded)', [...impUids, job.impUid]);
  return 'recorded-lost';
}
