/**
 * The order's settlement lock: every outcome of one order (a "paid" and a "cancelled" job, an expiry
 * and a webhook, a verification) is decided one after the other, never interleaved.
 */
import { randomUUID } from 'node:crypto';
import { eventKeys } from '@dropgate/redis';
import { TransientError, type WorkerContext } from '../context.ts';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** Runs `fn` holding the order's lock. A busy lock is a transient failure: the job retries with backoff. */
export async function withOrderLock<T>(ctx: WorkerContext, eventId: string, merchantUid: string, fn: () => Promise<T>): Promise<T> {
  const key = `${eventKeys(eventId).order(merchantUid)}:settle-lock`;
  const token = randomUUID();
  // Outcomes of one order usually arrive close together (duplicate webhooks): wait a little first.
  for (let attempt = 0; ; attempt++) {
    if ((await ctx.redis.set(key, token, 'PX', 60_000, 'NX')) === 'OK') break;
    if (attempt >= 40) throw new TransientError(`order ${merchantUid} is being settled`);
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await fn();
  } finally {
    await ctx.redis.eval(RELEASE, 1, key, token);
  }
}
