/**
 * ioredis clients configured for the confirm deadline: no offline queue (a command while disconnected
 * fails at once instead of waiting), bounded connect time, and a `/N` database index from the URL.
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisConnectionOptions {
  /** Fail fast: no queueing while disconnected (the API). Workers and BullMQ want queueing. */
  failFast?: boolean;
  /** Per-command timeout (ms). */
  commandTimeoutMs?: number;
  /** Batch commands issued in the same tick into one write. */
  autoPipelining?: boolean;
  name?: string;
}

export function createRedis(url: string, opts: RedisConnectionOptions = {}): Redis {
  const options: RedisOptions = {
    connectionName: opts.name ?? 'dropgate',
    connectTimeout: 2_000,
    enableOfflineQueue: !opts.failFast,
    maxRetriesPerRequest: opts.failFast ? 0 : null,
    enableAutoPipelining: opts.autoPipelining ?? false,
    retryStrategy: (times) => Math.min(50 * times, 1_000),
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
  };
  const redis = new Redis(url, options);
  // Connection errors are reported through readiness and metrics; an unhandled 'error' would crash.
  redis.on('error', () => undefined);
  return redis;
}
