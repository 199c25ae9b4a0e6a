/**
 * Short leases in Redis: SET NX PX with a random token, extended while the holder works and released
 * (by script) only while the token is still ours. A holder that dies loses its lock within one lease.
 * Used for the order's settlement lock and the event's rebuild lock.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from './connection.ts';
import { withScripts } from './scripts.ts';

/** Takes the lock at `key` for `ttlMs`. @returns its token, or null when someone else holds it. */
export async function acquireLock(redis: RedisClient, key: string, ttlMs: number): Promise<string | null> {
  const token = randomUUID();
  return (await redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK' ? token : null;
}

/** Extends the lock at `key` to `ttlMs` from now if `token` still holds it. @returns true when it did. */
export async function extendLock(redis: RedisClient, key: string, token: string, ttlMs: number): Promise<boolean> {
  return Number(await withScripts(redis).extendLock(key, token, ttlMs)) === 1;
}

/** Releases the lock at `key` if `token` still holds it. @returns true when it was released. */
export async function releaseLock(redis: RedisClient, key: string, token: string): Promise<boolean> {
  return Number(await withScripts(redis).releaseLock(key, token)) === 1;
}
