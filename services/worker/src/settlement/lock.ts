/**
 * The order's settlement lock: every outcome of one order (a "paid" and a "cancelled" job, an expiry
 * and a webhook, a verification) is decided one after the other, never interleaved.
 */
import { acquireLock, eventKeys, releaseLock } from '@dropgate/redis';
import { TransientError, type WorkerContext } from '../context.ts';

/** Runs `fn` holding the order's lock. A busy lock is a transient failure: the job retries with backoff. */
export async function withOrderLock<T>(ctx: WorkerContext, eventId: string, merchantUid: string, fn: () => Promise<T>): Promise<T> {
  const key = eventKeys(eventId).settleLock(merchantUid);
  // Outcomes of one order usually arrive close together (duplicate webhooks): wait a little first.
  let token = await acquireLock(ctx.redis, key, 60_000);
  for (let attempt = 0; token === null; attempt++) {
    if (attempt >= 40) throw new TransientError(`order ${merchantUid} is being settled`);
    await new Promise((r) => setTimeout(r, 50));
    token = await acquireLock(ctx.redis, key, 60_000);
  }
  try {
    return await fn();
  } finally {
    await releaseLock(ctx.redis, key, token);
  }
}
