/**
 * Faults to inject on purpose, for tests and the chaos campaign: states a real Redis reaches only by
 * accident (a stale replica after a failover, a manual edit), written here so that only this package
 * knows the key and field names.
 */
import type { RedisClient } from './connection.ts';
import { eventKeys } from './keys.ts';

/** Redis forgets that `seatId` was sold: the seat looks free, the sold count drops by one. */
export async function forgetSeatSale(redis: RedisClient, eventId: string, seatId: string): Promise<void> {
  const k = eventKeys(eventId);
  await redis.multi().hset(k.seats, seatId, '').hincrby(k.counts, 'seats_sold', -1).zrem(k.seatIndex('sold'), seatId).zadd(k.seatIndex('available'), 0, seatId).exec();
}
