/**
 * The hand-off relay: placeHold writes one stream entry per approved payment (atomically with the
 * hold); the relay records each new hold in Postgres itself (persistHold, the `holds` job's work)
 * and queues a `verify` job, with a deterministic id, then acknowledges the entry. A recording that
 * fails or is not done within INLINE_BUDGET_MS becomes a BullMQ `holds` job (deterministic id,
 * retried with the queue's backoff), as every recording was before: a job per hold cost two more
 * BullMQ scripts (add, then take and finish) and a worker round, about half of Redis's work for each
 * approved confirm. With HOLDS_PER_SECOND set, every recording goes through the rate-limited queue.
 * Consumer groups make it safe with several workers; entries a dead worker read but never queued are
 * claimed again once idle for JOB_LOCK_MS. At-least-once; a recording is idempotent and duplicate jobs
 * collapse on the job id.
 */
import { jobIds, type PaymentOutcomeJob, type PersistHoldJob } from '@dropgate/jobs';
import type { Handoff } from '@dropgate/redis';
import type { WorkerContext } from '../context.ts';
import { persistHold } from './persist-hold.processor.ts';

const BATCH = 500;

/**
 * How long the relay waits for the recordings of one batch before queueing the rest as jobs: a slow
 * Postgres or an order whose settlement lock is busy must not hold up the verification of the
 * batch's payments. A recording still running then finishes on its own (the job that follows waits
 * for the order's lock and finds the hold recorded).
 */
export const INLINE_BUDGET_MS = 1_000;

/** How often each event's stream is searched for entries a dead consumer left (at most). */
const RECLAIM_EVERY_MS = 1_000;

export type HandoffRelay = (eventIds: readonly string[]) => Promise<number>;

/**
 * The relay of one consumer. A pass reads the new entries of every active event at once (one
 * XREADGROUP on a single Redis, one per event sent together on a cluster), so an idle pass costs one
 * command however many events are active; events with entries are relayed side by side. Entries
 * another consumer read and never queued become reclaimable after JOB_LOCK_MS idle: each event's
 * stream is searched for them once a second (or twice per JOB_LOCK_MS when that is shorter), not at
 * every pass.
 */
export function createHandoffRelay(ctx: WorkerContext, consumer: string): HandoffRelay {
  const reclaimedAt = new Map<string, number>();
  const reclaimEveryMs = Math.min(RECLAIM_EVERY_MS, Math.floor(ctx.config.jobLockMs / 2));
  return async (eventIds) => {
    const now = Date.now();
    const due = eventIds.filter((id) => (reclaimedAt.get(id) ?? 0) <= now - reclaimEveryMs);
    for (const id of due) reclaimedAt.set(id, now);
    const reclaimed = await Promise.all(due.map(async (id) => queueHandoffs(ctx, id, await ctx.store.reclaimHandoffs(id, consumer, BATCH, ctx.config.jobLockMs))));
    // An event whose read failed (its shard failing over) does not hold back the others' entries.
    let failed: unknown = null;
    const fresh = await ctx.store.readNewHandoffs(eventIds, consumer, BATCH, (_eventId, error) => { failed ??= error; });
    const relayed = await Promise.all([...fresh].map(async ([eventId, first]) => {
      let moved = 0;
      for (let batch = first; ;) {
        moved += await queueHandoffs(ctx, eventId, batch);
        if (batch.length < BATCH) return moved;
        batch = (await ctx.store.readNewHandoffs([eventId], consumer, BATCH)).get(eventId) ?? [];
      }
    }));
    if (failed !== null) throw failed;
    return [...reclaimed, ...relayed].reduce((a, b) => a + b, 0);
  };
}

/**
 * Records one hold as a `holds` job would (same metrics). Resolves true once recorded, false when it
 * failed (the job that follows runs it again).
 */
async function recordInline(ctx: WorkerContext, data: PersistHoldJob): Promise<boolean> {
  const end = ctx.metrics.jobDuration.startTimer({ queue: 'holds' });
  try {
    await persistHold(ctx, data);
    end({ result: 'completed' });
    return true;
  } catch (error) {
    end({ result: 'failed' });
    ctx.metrics.jobFailures.inc({ queue: 'holds' });
    ctx.log.debug({ err: error, eventId: data.eventId, merchantUid: data.merchantUid, seq: data.seq }, 'recording a hold in the relay failed; queued as a job');
    return false;
  }
}

/**
 * Records the holds of `jobs`, all at once (a batch's recordings share Postgres statements: one
 * statement and commit for up to HOLD_BATCH_MAX holds), and resolves with those not recorded within
 * INLINE_BUDGET_MS, failed or still running (they are queued as jobs; one still running finishes on
 * its own, and its job then finds the hold recorded). All at once rather than WORKER_CONCURRENCY at
 * a time: in the all-approve benchmark 32 at a time cost 633 us of CPU a confirm, all at once 451-569.
 */
async function recordAll(ctx: WorkerContext, jobs: readonly PersistHoldJob[]): Promise<PersistHoldJob[]> {
  if (jobs.length === 0) return [];
  const done = new Array<boolean>(jobs.length).fill(false);
  const all = Promise.all(jobs.map(async (job, i) => { done[i] = await recordInline(ctx, job); }));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise<void>((resolve) => { timer = setTimeout(resolve, INLINE_BUDGET_MS); })]);
  clearTimeout(timer);
  return jobs.filter((_, i) => !done[i]);
}

/**
 * Handles an event's hand-offs, then acknowledges them. A new hold is recorded; every approved payment
 * (a new hold's, or one riding on a live hold) is verified with PortOne at once. A reservation
 * (hold_at "order") or its extension has no payment yet (imp ''): recorded only.
 */
async function queueHandoffs(ctx: WorkerContext, eventId: string, batch: readonly Handoff[]): Promise<number> {
  if (batch.length === 0) return 0;
  const holds = batch.filter((h) => !h.ride).map((h): PersistHoldJob => (
    { eventId, merchantUid: h.merchantUid, impUid: h.impUid, seq: h.seq, expiresAt: h.expiresAt, heldAt: h.heldAt }
  ));
  const queued = ctx.config.holdsPerSecond > 0 ? holds : await recordAll(ctx, holds);
  await ctx.queues.holds.addBulk(queued.map((data) => ({ name: 'persist', data, opts: { jobId: jobIds.persistHold(data.merchantUid, data.seq) } })));
  await ctx.queues.payments.addBulk(batch.filter((h) => h.impUid !== '').map((h) => {
    const data: PaymentOutcomeJob = {
      eventId, merchantUid: h.merchantUid, impUid: h.impUid, hint: null, source: 'verify', receivedAt: h.heldAt, seq: h.seq,
    };
    return { name: 'verify', data, opts: { jobId: jobIds.verifyPayment(h.merchantUid, h.seq, h.impUid) } };
  }));
  await ctx.store.ackHandoffs(eventId, batch.map((h) => h.id));
  return batch.length;
}
