/**
 * The order's settlement lock: every outcome of one order (a "paid" and a "cancelled" job, an expiry
 * and a webhook, a verification, the hold's recording) is decided one after the other, never
 * interleaved. The lease is JOB_LOCK_MS, renewed while the holder works (as BullMQ renews its job
 * locks), so a worker that dies mid-settlement frees the order within one lease, when BullMQ also
 * hands its job to another worker.
 */
import { acquireLock, eventKeys, extendLock, releaseLock } from '@dropgate/redis';
import { TransientError, type WorkerContext } from '../context.ts';

/** Runs `fn` holding the order's lock. A busy lock is a transient failure: the job retries with backoff. */
export async function withOrderLock<T>(ctx: WorkerContext, eventId: string, merchantUid: string, fn: () => Promise<T>): Promise<T> {
  const key = eventKeys(eventId).settleLock(merchantUid);
  const leaseMs = ctx.config.jobLockMs;
  // Outcomes of one order usually arrive close together (duplicate webhooks): wait a little first
  // (ORDER_LOCK_WAIT_MS, checking every 50 ms).
  let token = await acquireLock(ctx.redis, key, leaseMs);
  const giveUpAt = performance.now() + ctx.config.orderLockWaitMs;
  while (token === null) {
    if (performance.now() >= giveUpAt) throw new TransientError(`order ${merchantUid} is being settled`);
    await new Promise((r) => setTimeout(r, 50));
    token = await acquireLock(ctx.redis, key, leaseMs);
  }
  const held = token;
  // A renewal that finds the lock gone or another holder's means this holder stalled past its lease (a
  // paused process, a Redis failover that lost the key) and another job may be settling the order beside
  // it: the writes are idempotent and a payment's record only moves forward, but it is counted and
  // logged, once, for the operator (attack round 28A). Redis unreachable is not a loss.
  let lost = false;
  const renew = setInterval(() => void extendLock(ctx.redis, key, held, leaseMs).then((ours) => {
    if (ours || lost) return;
    lost = true;
    ctx.metrics.orderLocksLost.inc();
    ctx.log.warn({ eventId, merchantUid }, 'the order\'s settlement lock was lost while settling it: another job may have settled it at the same time');
  }).catch(() => undefined), Math.max(100, Math.floor(leaseMs / 3)));
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    await releaseLock(ctx.redis, key, held);
  }
}
