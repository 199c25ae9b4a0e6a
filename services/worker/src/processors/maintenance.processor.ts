/**
 * Keeps correctness independent of delayed jobs firing on time and of Redis keeping its data:
 * - sweep: every overdue hold, found in Redis and in Postgres, is expired (after asking PortOne);
 * - guard/rebuild: an event whose Redis state is missing is rebuilt from Postgres, then every pending
 *   order of it is reconciled with PortOne (queued jobs may have been lost with Redis).
 */
import { randomUUID } from 'node:crypto';
import { events as eventsRepo, lifecycle, loadSnapshot } from '@dropgate/db';
import { eventKeys } from '@dropgate/redis';
import type { PaymentOutcomeJob } from '@dropgate/jobs';
import type { WorkerContext } from '../context.ts';
import { expireHold } from '../lib/settlement.ts';

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export interface SweepResult { checked: number; expired: number; errors: number }

export async function sweep(ctx: WorkerContext): Promise<SweepResult> {
  const now = Date.now();
  const result: SweepResult = { checked: 0, expired: 0, errors: 0 };
  const targets = new Map<string, { eventId: string; merchantUid: string }>();
  for (const eventId of await eventsRepo.listActiveEventIds(ctx.db, new Date(now))) {
    if ((await ctx.store.eventState(eventId)) !== 'ready') continue;
    for (const muid of await ctx.store.overdueHolds(eventId, now, 2_000)) targets.set(muid, { eventId, merchantUid: muid });
  }
  for (const h of await lifecycle.liveHoldsOverdue(ctx.db, new Date(now), 2_000)) {
    targets.set(h.merchant_uid, { eventId: h.event_id, merchantUid: h.merchant_uid });
  }
  await mapLimit([...targets.values()], 16, async (t) => {
    result.checked++;
    try {
      const outcome = await expireHold(ctx, t.eventId, t.merchantUid, null);
      if (outcome === 'expired') result.expired++;
      if (outcome === 'ended' || outcome === 'order-missing') {
        // Redis says the hold ended; make sure the record agrees.
        await lifecycle.endLiveHolds(ctx.db, t.merchantUid, 'expired', 'ended in Redis');
      }
    } catch (error) {
      result.errors++;
      ctx.log.debug({ err: error, merchantUid: t.merchantUid }, 'sweep could not settle a hold yet');
    }
  });
  return result;
}

/** Rebuilds an event's Redis state from Postgres under a lock. @returns false if another process holds the lock. */
export async function rebuildEvent(ctx: WorkerContext, eventId: string, opts: { force?: boolean } = {}): Promise<boolean> {
  const keys = eventKeys(eventId);
  const token = randomUUID();
  const locked = await ctx.redis.set(keys.rebuildLock, token, 'PX', 60_000, 'NX');
  if (locked !== 'OK') return false;
  try {
    if (!opts.force && (await ctx.store.eventState(eventId)) === 'ready') return true;
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
    for (let i = 0; i < jobs.length; i += 1000) await ctx.queues.payments.addBulk(jobs.slice(i, i + 1000));
    return true;
  } finally {
    // Release only our own lock.
    await ctx.redis.eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1, keys.rebuildLock, token);
  }
}

/** Rebuilds every active event whose Redis state is missing. */
export async function guard(ctx: WorkerContext): Promise<string[]> {
  const rebuilt: string[] = [];
  for (const eventId of await eventsRepo.listActiveEventIds(ctx.db, new Date())) {
    if ((await ctx.store.eventState(eventId)) === null && (await rebuildEvent(ctx, eventId))) rebuilt.push(eventId);
  }
  return rebuilt;
}
