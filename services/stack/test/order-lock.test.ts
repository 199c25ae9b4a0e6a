/**
 * The order's settlement lock, lost while its holder still works (a worker paused past its lease, a
 * Redis failover that lost the key): another job may settle the order beside the holder, so the holder
 * counts and logs the loss, once, and leaves the other holder's lock alone (attack round 28A). Real
 * Redis, Postgres and worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { withOrderLock } from '@dropgate/worker';
import { eventKeys } from '@dropgate/redis';

let stack: TestStack;
beforeAll(async () => {
  // A short lease: renewed every 200 ms.
  stack = await startStack({ label: 'order_lock', env: { JOB_LOCK_MS: '600' } });
});
afterAll(async () => {
  await stack?.close();
});

const lost = async () => (await stack.worker!.ctx.metrics.orderLocksLost.get()).values[0]?.value ?? 0;

describe('the order settlement lock', () => {
  it('a holder whose lock another took counts the loss once and does not release the other\'s lock', async () => {
    const ctx = stack.worker!.ctx;
    const id = eventId('lk');
    const muid = `${id}.o0000000001`;
    const key = eventKeys(id).settleLock(muid);
    const before = await lost();
    await withOrderLock(ctx, id, muid, async () => {
      expect(await stack.redis.pttl(key)).toBeGreaterThan(0);
      // The lease ran out under a paused holder, and another job took the lock.
      await stack.redis.set(key, 'another-holder', 'PX', 60_000);
      await waitFor(async () => (await lost()) > before || null, 10_000, 'the loss counted');
    });
    expect(await lost()).toBe(before + 1);
    expect(await stack.redis.get(key)).toBe('another-holder');
    await stack.redis.del(key);
    // A holder that keeps its lock counts nothing.
    await withOrderLock(ctx, id, muid, async () => {
      // Renewed: its time left goes back up (to the lease) while the holder works.
      let least = await stack.redis.pttl(key);
      await waitFor(async () => {
        const left = await stack.redis.pttl(key);
        if (left > least) return true;
        least = left;
        return null;
      }, 5_000, 'the lock renewed');
    });
    expect(await lost()).toBe(before + 1);
  });
});
