/**
 * The hand-off relay: placeHold writes one stream entry per approved payment (atomically with the
 * hold); the relay records each new hold in Postgres itself (persistHold, the `holds` job's work),
 * then verifies the payments with PortOne itself (verifyPayment, the `verify` job's work), then
 * acknowledges the entries. A recording that fails becomes a BullMQ `holds` job (deterministic id,
 * retried with the queue's backoff), as every recording was before; one not done within
 * INLINE_BUDGET_MS is acknowledged once it is done. A verification that fails or is not done within
 * its own INLINE_BUDGET_MS becomes a `verify` job (deterministic id), and so does the verification of
 * a payment whose recording failed or still runs. A job per hold cost two more BullMQ scripts (add,
 * then take and finish) and a worker round, about half of Redis's work for each approved confirm; a
 * job per verification as much again. With HOLDS_PER_SECOND set, every recording and every
 * verification goes through the queues.
 * Consumer groups make it safe with several workers; entries a dead worker read but never handled are
 * claimed again once idle for JOB_LOCK_MS. At-least-once; a recording is idempotent and duplicate jobs
 * collapse on the job id.
 */
import { defaultJobOptions, jobIds, type PaymentOutcomeJob, type PersistHoldJob } from '@dropgate/jobs';
import type { Handoff } from '@dropgate/redis';
import { measuredJob, TransientError, type WorkerContext } from '../context.ts';
import { verifyPayment } from '../settlement/index.ts';
import { persistHold } from './persist-hold.processor.ts';

const BATCH = 500;

/**
 * How long the relay waits for the recordings of one batch before it goes on (queues the batch's
 * verify jobs, acknowledges what is done): a slow Postgres or an order whose settlement lock is busy
 * must not hold up the verification of the batch's payments. A recording still running then
 * finishes on its own, and its entry is acknowledged after it.
 */
export const INLINE_BUDGET_MS = 1_000;

/** How often each event's stream is searched for entries a dead consumer left (at most). */
const RECLAIM_EVERY_MS = 1_000;

/** Resolves when `work` settles or INLINE_BUDGET_MS has passed, whichever comes first (work goes on). */
async function withinBudget(work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => { timer = setTimeout(resolve, INLINE_BUDGET_MS); })]);
  clearTimeout(timer);
}

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
  try {
    await measuredJob(ctx.metrics, 'holds', () => persistHold(ctx, data));
    return true;
  } catch (error) {
    ctx.log.debug({ err: error, eventId: data.eventId, merchantUid: data.merchantUid, seq: data.seq }, 'recording a hold in the relay failed; queued as a job');
    return false;
  }
}

/** A hold recording still running when the relay stopped waiting for its batch. */
interface Straggler {
  handoff: Handoff;
  job: PersistHoldJob;
  recorded: Promise<boolean>;
}

/**
 * Records the holds of `items`, all at once (a batch's recordings share Postgres statements: one
 * statement and commit for up to HOLD_BATCH_MAX holds), and resolves within INLINE_BUDGET_MS with
 * the recordings that failed and those still running. All at once rather than WORKER_CONCURRENCY at
 * a time: in the all-approve benchmark 32 at a time cost 633 us of CPU a confirm, all at once 451-569.
 */
async function recordAll(
  ctx: WorkerContext, items: readonly { handoff: Handoff; job: PersistHoldJob }[],
): Promise<{ failed: { handoff: Handoff; job: PersistHoldJob }[]; running: Straggler[] }> {
  if (items.length === 0) return { failed: [], running: [] };
  const outcome = new Array<boolean | undefined>(items.length);
  const recordings = items.map((item, i) => recordInline(ctx, item.job).then((ok) => { outcome[i] = ok; return ok; }));
  await withinBudget(Promise.all(recordings));
  return {
    failed: items.filter((_, i) => outcome[i] === false),
    running: items.flatMap((item, i) => (outcome[i] === undefined ? [{ ...item, recorded: recordings[i]! }] : [])),
  };
}

const persistJob = (data: PersistHoldJob) => ({ name: 'persist', data, opts: { jobId: jobIds.persistHold(data.merchantUid, data.seq) } });

/**
 * The `verify` job of a hand-off, after `checks` questions to PortOne the relay already asked. After
 * one, the job waits the queue's first retry delay, as a job's own retry would: a payment PortOne
 * does not know yet is asked about again a moment later (replication lag), not at once.
 */
const verifyJob = (eventId: string, h: Handoff, checks: number) => {
  const data: PaymentOutcomeJob = {
    eventId, merchantUid: h.merchantUid, impUid: h.impUid, hint: null, source: 'verify', receivedAt: h.heldAt, seq: h.seq, ...(checks > 0 ? { check: checks } : {}),
  };
  const retryDelay = (defaultJobOptions.payments.backoff as { delay: number }).delay;
  return { name: 'verify', data, opts: { jobId: jobIds.verifyPayment(h.merchantUid, h.seq, h.impUid), ...(checks > 0 ? { delay: retryDelay } : {}) } };
};

/**
 * Verifies the payments of `handoffs` with PortOne as the `verify` jobs would (same work, same
 * metrics), WORKER_CONCURRENCY at a time, for at most INLINE_BUDGET_MS; resolves with the jobs to
 * queue for the rest: a verification that failed (PortOne unreachable, the order's lock busy, a
 * payment PortOne does not know yet, which the job asks about again), one still running (its job
 * may run it twice: a verification is idempotent under the order's lock) and one never started.
 * A job per approved payment (add, take, finish: three BullMQ scripts, and a worker round) was most
 * of the worker's and Redis's work for an approved confirm.
 */
async function verifyAll(ctx: WorkerContext, eventId: string, handoffs: readonly Handoff[]): Promise<ReturnType<typeof verifyJob>[]> {
  if (handoffs.length === 0) return [];
  const deadline = performance.now() + INLINE_BUDGET_MS;
  const done = new Array<number | undefined>(handoffs.length); // undefined: not done; else the checks made (verified: -1)
  let next = 0;
  const lanes = Array.from({ length: Math.min(handoffs.length, Math.max(1, ctx.config.workerConcurrency)) }, async () => {
    while (next < handoffs.length && performance.now() < deadline) {
      const i = next++;
      const h = handoffs[i]!;
      try {
        await measuredJob(ctx.metrics, 'payments', () => verifyPayment(ctx, eventId, h.merchantUid, h.impUid, 0));
        done[i] = -1;
      } catch (error) {
        // A TransientError asked PortOne (or could not); anything else counts as no question asked.
        done[i] = error instanceof TransientError ? 1 : 0;
        ctx.log.debug({ err: error, eventId, merchantUid: h.merchantUid, impUid: h.impUid }, 'verifying a payment in the relay failed; queued as a job');
      }
    }
  });
  await withinBudget(Promise.all(lanes));
  return handoffs.flatMap((h, i) => (done[i] === -1 ? [] : [verifyJob(eventId, h, done[i] ?? 0)]));
}

/**
 * Handles an event's hand-offs, then acknowledges them. A new hold is recorded; every approved payment
 * (a new hold's, or one riding on a live hold) is verified with PortOne at once. A reservation
 * (hold_at "order") or its extension has no payment yet (imp ''): recorded only.
 *
 * A recording that fails becomes a `holds` job (it retries). One still running after
 * INLINE_BUDGET_MS does not hold up the rest of the batch: its entry is acknowledged when it is done
 * (or, should it fail, once its job is queued), and until then it stays pending in the stream, so a
 * worker that dies meanwhile leaves it to be claimed again. It is not also queued as a job: a job
 * running after the hold was recorded would judge a hold Redis has lost since (a rebuild from an
 * older record) as lost after its recording and end it, where the rebuild would have kept it.
 */
async function queueHandoffs(ctx: WorkerContext, eventId: string, batch: readonly Handoff[]): Promise<number> {
  if (batch.length === 0) return 0;
  const holds = batch.filter((h) => !h.ride).map((h) => ({
    handoff: h,
    job: { eventId, merchantUid: h.merchantUid, impUid: h.impUid, seq: h.seq, expiresAt: h.expiresAt, heldAt: h.heldAt } satisfies PersistHoldJob,
  }));
  const { failed, running } = ctx.config.holdsPerSecond > 0
    ? { failed: holds, running: [] as Straggler[] }
    : await recordAll(ctx, holds);
  await ctx.queues.holds.addBulk(failed.map((f) => persistJob(f.job)));
  // Payments whose hold is recorded (or that ride on a live hold) are verified here; those whose
  // recording failed or still runs (their order's lock is busy: the verification would wait for it
  // too) get their verify job at once, as every payment did before.
  // With HOLDS_PER_SECOND set, every verification is a job too (rate-limited Postgres writes).
  const unrecorded = new Set([...failed, ...running].map((f) => f.handoff.id));
  const paid = batch.filter((h) => h.impUid !== '');
  const allQueued = ctx.config.holdsPerSecond > 0;
  const inline = allQueued ? [] : paid.filter((h) => !unrecorded.has(h.id));
  const queued = allQueued ? paid : paid.filter((h) => unrecorded.has(h.id));
  await ctx.queues.payments.addBulk([
    ...queued.map((h) => verifyJob(eventId, h, 0)),
    ...(await verifyAll(ctx, eventId, inline)),
  ]);
  const later = new Set(running.map((r) => r.handoff.id));
  await ctx.store.ackHandoffs(eventId, batch.filter((h) => !later.has(h.id)).map((h) => h.id));
  for (const r of running) {
    void r.recorded
      .then(async (ok) => {
        if (!ok) {
          const job = persistJob(r.job);
          await ctx.queues.holds.add(job.name, job.data, job.opts);
        }
        await ctx.store.ackHandoffs(eventId, [r.handoff.id]);
      })
      .catch((error: unknown) => {
        // Left pending in the stream: claimed again after JOB_LOCK_MS, by this worker or another.
        ctx.log.warn({ err: error, eventId, merchantUid: r.job.merchantUid }, 'a late hold recording could not be handed on; its hand-off will be claimed again');
      });
  }
  return batch.length;
}
