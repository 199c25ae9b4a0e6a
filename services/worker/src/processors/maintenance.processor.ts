/**
 * Keeps correctness independent of delayed jobs firing on time and of Redis keeping its data:
 * - sweep: every overdue hold, found in Redis and in Postgres, gets an expiry job (which asks PortOne);
 * - guard/rebuild: an event whose Redis state is missing is rebuilt from Postgres, then every pending
 *   order of it is reconciled with PortOne (queued jobs may have been lost with Redis);
 * - orphans: an order the API inserted but could not withdraw after Redis refused it is withdrawn.
 */
import { events as eventsRepo, lifecycle, loadSnapshot, orders as ordersRepo, waitlist as waitlistRepo, withdrawOrders } from '@dropgate/db';
import { acquireLock, eventKeys, extendLock, releaseLock } from '@dropgate/redis';
import { jobIds, type ExpireHoldJob, type PaymentOutcomeJob } from '@dropgate/jobs';
import { QUEUE_BACK_SECONDS, offerOrderToken } from '@dropgate/domain';
import type { WorkerContext } from '../context.ts';
import { endDisplacedHold, watchPayment } from '../settlement/index.ts';

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
export async function rebuildEvent(ctx: WorkerContext, eventId: string, opts: { force?: boolean; unstamped?: boolean } = {}): Promise<boolean> {
  const lockKey = eventKeys(eventId).rebuildLock;
  const token = await acquireLock(ctx.redis, lockKey, 60_000);
  if (token === null) return false;
  try {
    // unstamped: rebuild only while the state is still stamped by another replication history (another
    // worker may have rebuilt it between our look and the lock).
    if (opts.unstamped && (await ctx.store.stampState(eventId)) !== 'unstamped') return true;
    // Otherwise (a request to load it) unless it is whole: missing, left loading, or stamped by another
    // history. The guard only looks at active events; a job that found a closed event's state not
    // whole after a failover (its scripts answer not ready) asks for this, and it must not be a no-op.
    if (!opts.force && !opts.unstamped && (await ctx.store.stampState(eventId)) === 'whole') return true;
    // Stop new holds before reading the record, so none is taken between the read and the load.
    if ((await ctx.store.eventState(eventId)) !== null) await ctx.store.markLoading(eventId);
    // The rush state Redis lost with the event (not on a forced reload of a whole state: it is there),
    // put back before the event is loaded (until then polls are answered not ready, and nobody joins
    // the list or is offered anything):
    const lost = opts.force ? null : await eventsRepo.findRushRecord(ctx.db, eventId);
    // how far the waiting room had admitted: a buyer it had admitted who comes back is admitted again
    // at once, without taking a slot of max_active a second time (see pollQueue);
    if (lost?.hasRoom) await ctx.store.queues.restoreFront(eventId, lost.fronts);
    // the waiting list, from its record.
    if (lost?.hasWaitlist && lost.rushSecret) await restoreWaitlist(ctx, eventId, lost.rushSecret);
    const snapshot = await loadSnapshot(ctx.db, eventId);
    if (!snapshot) return true;
    const epoch = `${Date.now()}`;
    await ctx.store.loadEvent(snapshot, epoch, ctx.clock.now());
    // A waiting room lost with the event (this is no forced reload of a whole state): no admissions
    // until its buyers had QUEUE_BACK_SECONDS to come back, so one who joins while the event was not
    // loaded, polling first, is not admitted ahead of them (attack round 15). Set once a room's life.
    if (lost?.hasRoom) await ctx.store.queues.holdAdmissionsBack(eventId, ctx.clock.now() + QUEUE_BACK_SECONDS * 1000);
    ctx.log.warn({ eventId, orders: snapshot.orders.length, displaced: snapshot.displaced?.length ?? 0 }, 'rebuilt event state in Redis from Postgres');
    // Holds whose places another claim of the record has (a sale, an earlier hold) were loaded without
    // them: they end in the record too, now, and their payments are watched (and reconciled below).
    // One that cannot be ended now (its order busy) is ended by the sweep once overdue: Redis has it
    // released, and expiry follows Redis.
    await mapLimit(snapshot.displaced ?? [], 16, async (muid) => {
      await endDisplacedHold(ctx, eventId, muid).catch((error: unknown) => ctx.log.warn({ err: error, eventId, merchantUid: muid }, 'displaced hold not ended yet; the sweep ends it'));
    });
    // After the load, under its own tag: webhooks refused while the event was not loaded are answered by
    // these (the queue guard leaves events that are not whole to this: see guardQueues).
    await requeueLostJobs(ctx, eventId, snapshot.orders.filter((o) => o.status !== 'held').map((o) => o.merchantUid), epoch);
    return true;
  } finally {
    await releaseLock(ctx.redis, lockKey, token);
  }
}

/**
 * Jobs queued before Redis lost them are gone: ask PortOne about every payment of every order of the
 * event that is not held (`notHeld`; a held order's expiry asks PortOne the same way). Paid and refunded
 * orders too: a paid one's payment may have been cancelled at PortOne, and a payment that came without
 * a confirm (a second one, a duplicate to refund) may have had all its webhooks refused while the event
 * was being rebuilt (found by npm run chaos, seed 852966458). And every unfinished payment the record
 * knows is watched again (late-payment watches were lost with the queues). `tag` names the loss (job ids).
 */
async function requeueLostJobs(
  ctx: WorkerContext, eventId: string, notHeld: readonly string[], tag: string, keepAlive: () => Promise<void> = async () => undefined,
): Promise<void> {
  // Behind every live job of the queue (BullMQ runs jobs without a priority first): after a loss this is
  // one PortOne lookup per order of every active event, tens of thousands the day after a big drop,
  // and the outcomes of payments made meanwhile must not wait behind them (attack round 23B: paid money
  // waited 4 minutes for its refund).
  const jobs = notHeld.map((merchantUid) => {
    const data: PaymentOutcomeJob = { eventId, merchantUid, impUid: '', hint: null, source: 'reconcile', receivedAt: Date.now() };
    return { name: 'reconcile', data, opts: { jobId: `rec-${merchantUid}-${tag}`, priority: RECOVERY_PRIORITY } };
  });
  const unfinished = await ctx.db.selectFrom('payments').select(['merchant_uid', 'imp_uid']).where('event_id', '=', eventId).where('status', 'in', ['ready', 'failed']).execute();
  for (let i = 0; i < jobs.length; i += 1000) {
    await keepAlive();
    await ctx.queues.payments.addBulk(jobs.slice(i, i + 1000));
  }
  for (const p of unfinished) await watchPayment(ctx, eventId, p.merchant_uid, p.imp_uid, 1);
}

/** The BullMQ priority of the jobs a loss requeues (any priority runs after the jobs that have none). */
export const RECOVERY_PRIORITY = 10;

/** The job queues' stamp: a hash in their hash slot (QUEUE_PREFIX's), so on the primary that has them. */
const queueStampKey = (ctx: WorkerContext): string => `${ctx.queues.payments.opts.prefix}:stamp`;

/** How long the queue guard's lock lasts without being renewed (it is renewed as the pass goes). */
const QUEUE_GUARD_LOCK_MS = 60_000;

/**
 * The job queues' own failover. They live in one hash slot (QUEUE_PREFIX's), on one shard of a Redis
 * Cluster, and the API answers a webhook 200 once its job is there: a failover of that shard, or a
 * Redis that lost its data, loses jobs PortOne will never send again, and the events' own stamps (on
 * other shards, or untouched) show nothing. So the queues are stamped like an event's state: when the
 * stamp is missing or by another replication history, every active event's orders that are not held
 * are reconciled with PortOne and its unfinished payments watched (what a rebuild does after a loss),
 * then the queues are stamped again; an event whose own state is not whole is left to its rebuild,
 * which does the same once the event is loaded. A held order's payments are asked at its expiry. Under
 * a lock, renewed as the pass goes, one worker at a time; the first start of an empty Redis does it
 * once. @returns whether it requeued.
 */
export async function guardQueues(ctx: WorkerContext): Promise<boolean> {
  const key = queueStampKey(ctx);
  if ((await ctx.store.keyStampState(key)) === 'whole') return false;
  const lockKey = `${key}-lock`;
  const token = await acquireLock(ctx.redis, lockKey, QUEUE_GUARD_LOCK_MS);
  if (token === null) return false;
  // Renewed as the pass goes: a pass longer than the lock (tens of thousands of orders) let another
  // one start beside it (attack round 23B).
  const keepAlive = async () => {
    if (!(await extendLock(ctx.redis, lockKey, token, QUEUE_GUARD_LOCK_MS))) throw new Error('the queue guard lost its lock; the next pass starts again');
  };
  try {
    const state = await ctx.store.keyStampState(key);
    if (state === 'whole') return false;
    const tag = `q${Date.now()}`;
    const events = await eventsRepo.listActiveEventIds(ctx.db, new Date(ctx.clock.now()));
    let orders = 0;
    for (const eventId of events) {
      await keepAlive();
      // An event whose own state is not whole (lost with the queues: a FLUSHALL, a Redis restarted
      // empty) is rebuilt by the guard, which reconciles its orders once it is loaded, so that webhooks
      // refused meanwhile are answered too: asking here as well asked about every order twice (attack
      // round 23B), and asking only here, before the load, missed those (round 24).
      if ((await ctx.store.stampState(eventId)) !== 'whole') continue;
      const notHeld = await ordersRepo.ordersNotHeld(ctx.db, eventId);
      orders += notHeld.length;
      await requeueLostJobs(ctx, eventId, notHeld, tag, keepAlive);
    }
    await ctx.store.stampKey(key);
    if (orders > 0) ctx.log.warn({ stamp: state, events: events.length, orders }, 'the job queues may have lost jobs (failover, or Redis lost its data): reconciling every order not held with PortOne');
    return true;
  } finally {
    await releaseLock(ctx.redis, lockKey, token);
  }
}

/** Events the previous guard pass found without Redis state (or still loading), per worker. */
const missingBefore = new WeakMap<WorkerContext, Set<string>>();

/**
 * Rebuilds every active event whose Redis state is missing, or left loading, on two passes in a row
 * (about a second apart): an event being created is in Postgres a moment before its state is in Redis,
 * and rebuilding it then would refuse its first orders with NOT_READY for nothing.
 *
 * And, at once, every active event whose state is not known to be whole: stamped by another
 * replication history than its primary's (see finishLoad-1.lua). That is what a failover leaves: the
 * promoted replica may lack holds, sales and hand-offs its primary acknowledged, so the event is
 * rebuilt from Postgres (under the rebuild lock) and every order reconciled with PortOne, as after a
 * Redis that lost its data. Postgres's constraints refuse any oversell in between.
 */
export async function guard(ctx: WorkerContext): Promise<string[]> {
  const rebuilt: string[] = [];
  const before = missingBefore.get(ctx) ?? new Set<string>();
  const missing = new Set<string>();
  const due: { eventId: string; unstamped: boolean }[] = [];
  for (const eventId of await eventsRepo.listActiveEventIds(ctx.db, new Date(ctx.clock.now()))) {
    const stamp = await ctx.store.stampState(eventId);
    if (stamp === 'unstamped') {
      ctx.log.warn({ eventId }, 'event state stamped by another replication history (failover?): rebuilding it from Postgres');
      due.push({ eventId, unstamped: true });
      continue;
    }
    // Loading on two passes with nobody rebuilding (rebuildEvent takes the rebuild lock, so one under
    // way is left alone): a rebuild died between marking the state and loading it (its worker, or its
    // primary in a failover), and confirms would be refused NOT_READY for good.
    if (stamp !== 'missing' && stamp !== 'loading') continue;
    if (before.has(eventId)) due.push({ eventId, unstamped: false });
    else missing.add(eventId);
  }
  // A few at once: after Redis lost its data every active event is due, and one after another an
  // event late in the list answered NOT_READY for the time every event before it took (14 s for the
  // second of two in attack round 15, behind one of 5,686 orders).
  await mapLimit(due, GUARD_REBUILDS_AT_ONCE, async ({ eventId, unstamped }) => {
    if (await rebuildEvent(ctx, eventId, unstamped ? { unstamped: true } : {})) rebuilt.push(eventId);
    else if (!unstamped) missing.add(eventId);
  });
  missingBefore.set(ctx, missing);
  return rebuilt;
}

/**
 * Puts back an event's waiting list from the record: every entry in arrival order, waiting, or offered
 * with the order made for it (and its order token, derived from the event's secret).
 */
async function restoreWaitlist(ctx: WorkerContext, eventId: string, rushSecret: Buffer): Promise<void> {
  const entries = await waitlistRepo.listEntries(ctx.db, eventId);
  await ctx.store.waitlists.restore(eventId, entries.map((e) => ({
    buyerId: e.buyerId, seq: e.seq, seats: e.seats, items: e.items,
    offer: e.offer === null ? null : { merchantUid: e.offer, orderToken: offerOrderToken(rushSecret, eventId, e.offer) },
  })));
  if (entries.length > 0) ctx.log.warn({ eventId, entries: entries.length }, 'put the waiting list back in Redis from Postgres');
}

/**
 * Records in Postgres how far each waiting room has admitted and when (queue_fronts), for a room Redis
 * loses: its rebuild puts the records back, and a buyer it had admitted who comes back is admitted again
 * at once (until their admission would have ended) instead of queueing for a second admission. About
 * once a second, in one worker at a time; only fronts that moved are written. @returns the events whose
 * front was recorded.
 */
export async function recordQueueFronts(ctx: WorkerContext): Promise<string[]> {
  const rooms = await eventsRepo.listRoomFronts(ctx.db, new Date(ctx.clock.now()));
  if (rooms.length === 0) return [];
  const fronts = await ctx.store.queues.fronts(rooms.map((r) => r.id));
  const moved = rooms.flatMap((r) => {
    const front = fronts.get(r.id) ?? null;
    return front !== null && (r.place === null || front > r.place) ? [{ id: r.id, front }] : [];
  });
  const now = ctx.clock.now();
  const ttlOf = new Map(rooms.map((r) => [r.id, (r.waitingRoom?.admission_ttl_seconds ?? 3_600) * 1000]));
  await mapLimit(moved, 4, async ({ id, front }) => {
    await eventsRepo.recordRoomFront(ctx.db, id, front, new Date(now));
    // What a rebuild needs of older records: that a buyer they cover was admitted over two admission
    // TTLs ago (told expired if they come back); the newest of them says it (a row a second otherwise).
    await eventsRepo.pruneRoomFronts(ctx.db, id, new Date(now - 2 * ttlOf.get(id)! - 60_000));
  });
  return moved.map((m) => m.id);
}

/** Events the guard rebuilds at once (each reads its snapshot from Postgres and loads it into Redis). */
export const GUARD_REBUILDS_AT_ONCE = 4;

/**
 * Memory over a season: removes from Redis the state of every event whose sale closed more than a day
 * ago with no order held (Postgres keeps everything), once nothing is in flight there (no live hold, no
 * pending hand-off). Under the rebuild lock, so it never interleaves with a load. Anything that needs
 * such an event later (a storefront read, a confirm, a late webhook's job) finds it not loaded and
 * queues a rebuild, which loads it from Postgres again. @returns the events archived.
 */
export async function archiveEvents(ctx: WorkerContext): Promise<string[]> {
  const archived: string[] = [];
  for (const eventId of await eventsRepo.listArchivableEventIds(ctx.db, new Date(ctx.clock.now()))) {
    if ((await ctx.store.eventState(eventId)) === null) continue;
    const token = await ctx.store.lockRebuild(eventId, 60_000);
    if (token === null) continue;
    try {
      if (!(await ctx.store.quiescent(eventId))) continue;
      await ctx.store.deleteEvent(eventId);
      archived.push(eventId);
      ctx.log.info({ eventId }, 'archived the event out of Redis (its season is over; Postgres keeps it)');
    } finally {
      await ctx.store.unlockRebuild(eventId, token).catch(() => undefined);
    }
  }
  return archived;
}

/**
 * An order is an orphan candidate only this long after its insert began: longer than the insert may
 * take (Postgres's statement timeout, 30 s) plus the API's Redis command timeout (5 s), after which the
 * API withdraws the order itself. A step that comes later still (a process that stalled) is refused:
 * the worker marks the orphan withdrawn in Redis in the step that finds it absent (withdrawOrphans-1).
 * Short, since until then a verified buyer's orphan counts against their ORDERS_PER_BUYER_MAX (at
 * 120 s, an API process that died between the two steps left its buyers refused ORDER_LIMIT for two
 * and a half minutes).
 */
export const ORPHAN_MIN_AGE_MS = 60_000;
/** How far back the orphan check looks: older orphans were withdrawn by earlier passes or loaded by a rebuild. */
export const ORPHAN_WINDOW_MS = 30 * 60_000;

/**
 * Withdraws orphans: orders pending in Postgres that Redis never received. The API inserts an order,
 * then makes it visible to the confirm script (with hold_at "order", reserves its places); when Redis
 * refuses (places taken at selection, not ready, down) the API withdraws the order again, and when
 * that withdrawal fails too (Postgres overloaded at the sell-out) the order stays pending in Postgres
 * and absent from Redis: its buyer never got its merchant_uid, so nobody can pay for it, but the record
 * and the fast copy disagree. Checked per event under its rebuild lock (no load interleaves) while its
 * state is whole, for orders inserted between ORPHAN_WINDOW_MS and `minAgeMs` ago.
 * @returns the orders withdrawn.
 */
export async function withdrawOrphans(ctx: WorkerContext, opts: { minAgeMs?: number } = {}): Promise<string[]> {
  const now = ctx.clock.now();
  const to = new Date(now - (opts.minAgeMs ?? ORPHAN_MIN_AGE_MS));
  const from = new Date(now - ORPHAN_WINDOW_MS);
  const withdrawn: string[] = [];
  for (const eventId of await eventsRepo.listActiveEventIds(ctx.db, new Date(now))) {
    if ((await ctx.store.stampState(eventId)) !== 'whole') continue;
    const candidates = await ordersRepo.pendingOrdersCreated(ctx.db, eventId, from, to, 10_000);
    if (candidates.length === 0) continue;
    const token = await ctx.store.lockRebuild(eventId, 60_000);
    if (token === null) continue;
    try {
      if ((await ctx.store.stampState(eventId)) !== 'whole') continue;
      // Found absent and marked withdrawn in one step: an API step that comes later is refused
      // (attack round 18: a process that stalled between its insert and its Redis step made the order
      // visible after the worker had withdrawn it, and its buyer paid for an order Postgres did not have).
      const orphans = await ctx.store.markOrphans(eventId, candidates);
      const gone = await withdrawOrders(ctx.db, orphans.map((merchantUid) => ({ merchantUid, eventId, reason: 'orphan' })));
      const ids = orphans.filter((_, i) => gone[i]);
      if (ids.length > 0) ctx.log.warn({ eventId, orders: ids.length }, 'withdrew orders pending in Postgres that Redis never received');
      withdrawn.push(...ids);
    } finally {
      await ctx.store.unlockRebuild(eventId, token).catch(() => undefined);
    }
  }
  return withdrawn;
}

/** A refund claimed this long ago and not done is asked about again (ms). */
export const REFUND_RETRY_AFTER_MS = 60_000;

/**
 * Money dropgate decided to return and has not: a refund claimed over REFUND_RETRY_AFTER_MS ago whose
 * cancel has not gone through (PortOne refused it or was down, and its job is waiting out an
 * exponential backoff that has grown to hours, failed for good, or was lost with Redis's data). Each
 * one's payment is asked of PortOne again (through its own API) and acted on: the decided refund is
 * finished, at most once per REFUND_RETRY_AFTER_MS a payment: each ask is one try under the round's
 * id (no backoff of its own: the next round asks again), so a refund PortOne keeps refusing costs one
 * cancel call a minute from here instead of a growing pile of jobs each retrying on its own backoff
 * (attack round 14 saw one more delayed job a minute). @returns the payments asked about.
 */
export async function retryRefunds(ctx: WorkerContext): Promise<string[]> {
  const now = ctx.clock.now();
  const stuck = await lifecycle.refundsStuck(ctx.db, new Date(now - REFUND_RETRY_AFTER_MS), 1_000);
  const round = Math.floor(now / REFUND_RETRY_AFTER_MS);
  await mapLimit(stuck, 16, async (r) => {
    // The refunded payment itself, through its own API (its key says which): an order-wide reconcile
    // asks the order's API, and a payment made through the other one was never found (attack round 20A).
    const data: PaymentOutcomeJob = { eventId: r.event_id, merchantUid: r.merchant_uid, impUid: r.imp_uid, hint: null, source: 'refund', receivedAt: Date.now() };
    // Kept a minute after it ends, so the sweep 30 s later finds the id taken (a removed one was added
    // again: two tries a minute, attack round 15), and cleaned up after that.
    await ctx.queues.payments.add('refund', data, {
      jobId: `rec-${r.merchant_uid}-refund-${r.imp_uid}-${round}`, attempts: 1,
      removeOnComplete: { age: REFUND_RETRY_AFTER_MS / 1000 }, removeOnFail: { age: REFUND_RETRY_AFTER_MS / 1000 },
    });
  });
  if (stuck.length > 0) ctx.log.warn({ refunds: stuck.length }, 'refunds not done a minute after they were decided: asking PortOne again');
  return stuck.map((r) => r.imp_uid);
}

