/**
 * Keeps correctness independent of delayed jobs firing on time and of Redis keeping its data:
 * - sweep: every overdue hold, found in Redis and in Postgres, gets an expiry job (which asks PortOne);
 * - guard/rebuild: an event whose Redis state is missing is rebuilt from Postgres, then every pending
 *   order of it is reconciled with PortOne (queued jobs may have been lost with Redis).
 */
import { events as eventsRepo, lifecycle, loadSnapshot } from '@dropgate/db';
import { acquireLock, eventKeys, releaseLock } from '@dropgate/redis';
import { jobIds, type ExpireHoldJob, type PaymentOutcomeJob } from '@dropgate/jobs';
import type { WorkerContext } from '../context.ts';
import { watchPayment } from '../settlement/index.ts';

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export interface SweepResult { overdue: number; queued: number }

/**
 * Finds every overdue hold, in Redis and in Postgres, and queues its expiry job (which asks PortOne,
 * then commits or releases, retrying with backoff while PortOne is unreachable). A job already waiting
 * or running is left alone; a finished one whose hold is still overdue is replaced.
 */
export async function sweep(ctx: WorkerContext): Promise<SweepResult> {
  const now = ctx.clock.now();
  const targets = new Map<string, ExpireHoldJob>();
  for (const eventId of await eventsRepo.listActiveEventIds(ctx.db, new Date(now))) {
    if ((await ctx.store.eventState(eventId)) !== 'ready') continue;
    for (const muid of await ctx.store.overdueHolds(eventId, now, 5_000)) targets.set(muid, { eventId, merchantUid: muid, seq: null });
  }
  for (const h of await lifecycle.liveHoldsOverdue(ctx.db, new Date(now), 5_000)) {
    if (!targets.has(h.merchant_uid)) targets.set(h.merchant_uid, { eventId: h.event_id, merchantUid: h.merchant_uid, seq: null });
  }
  let queued = 0;
  await mapLimit([...targets.values()], 16, async (job) => {
    const jobId = jobIds.expireHold(job.merchantUid);
    const existing = await ctx.queues.expiry.getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return;
      await existing.remove().catch(() => undefined);
    }
    await ctx.queues.expiry.add('expire', job, { jobId });
    queued++;
  });
  return { overdue: targets.size, queued };
}

/** Rebuilds an event's Redis state from Postgres under a lock. @returns false if another process holds the lock. */
export async function rebuildEvent(ctx: WorkerContext, eventId: string, opts: { force?: boolean } = {}): Promise<boolean> {
  const lockKey = eventKeys(eventId).rebuildLock;
  const token = await acquireLock(ctx.redis, lockKey, 60_000);
  if (token === null) return false;
  try {
    if (!opts.force && (await ctx.store.eventState(eventId)) === 'ready') return true;
    // Stop new holds before reading the record, so none is taken between the read and the load.
    if ((await ctx.store.eventState(eventId)) !== null) await ctx.store.markLoading(eventId);
    const snapshot = await loadSnapshot(ctx.db, eventId);
    if (!snapshot) return true;
    const epoch = `${Date.now()}`;
    await ctx.store.loadEvent(snapshot, epoch);
    ctx.log.warn({ eventId, orders: snapshot.orders.length }, 'rebuilt event state in Redis from Postgres');
    // Jobs queued before Redis lost its data are gone: ask PortOne about every order still pending.
    const pending = snapshot.orders.filter((o) => o.status === 'pending' || o.status === 'expired' || o.status === 'released');
    const jobs = pending.map((o) => {
      const data: PaymentOutcomeJob = { eventId, merchantUid: o.merchantUid, impUid: '', hint: null, source: 'reconcile', receivedAt: Date.now() };
      return { name: 'reconcile', data, opts: { jobId: `rec-${o.merchantUid}-${epoch}` } };
    });
    // Paid orders: their payment may have been cancelled at PortOne with its webhook's job lost.
    const paid = await ctx.db.selectFrom('orders').select(['merchant_uid', 'paid_imp_uid']).where('event_id', '=', eventId).where('status', '=', 'paid').execute();
    for (const o of paid) {
      if (!o.paid_imp_uid) continue;
      const data: PaymentOutcomeJob = { eventId, merchantUid: o.merchant_uid, impUid: o.paid_imp_uid, hint: null, source: 'webhook', receivedAt: Date.now() };
      jobs.push({ name: 'reconcile', data, opts: { jobId: `rec-paid-${o.merchant_uid}-${epoch}` } });
    }
    // Unfinished payments the record knows (late-payment watches were lost with the queues).
    const unfinished = await ctx.db.selectFrom('payments').select(['merchant_uid', 'imp_uid']).where('event_id', '=', eventId).where('status', 'in', ['ready', 'failed']).execute();
    for (let i = 0; i < jobs.length; i += 1000) await ctx.queues.payments.addBulk(jobs.slice(i, i + 1000));
    for (const p of unfinished) await watchPayment(ctx, eventId, p.merchant_uid, p.imp_uid, 1);
    return true;
  } finally {
    await releaseLock(ctx.redis, lockKey, token);
  }
}

/** Rebuilds every active event whose Redis state is missing. */
export async function guard(ctx: WorkerContext): Promise<string[]> {
  const rebuilt: string[] = [];
  for (const eventId of await eventsRepo.listActiveEventIds(ctx.db, new Date(ctx.clock.now()))) {
    if ((await ctx.store.eventState(eventId)) === null && (await rebuildEvent(ctx, eventId))) rebuilt.push(eventId);
  }
  return rebuilt;
}
