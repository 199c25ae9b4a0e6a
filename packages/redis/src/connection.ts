/**
 * ioredis clients configured for the confirm deadline: no offline queue (a command while disconnected
 * fails at once instead of waiting), bounded connect time, and a `/N` database index from the URL.
 *
 * With Redis Cluster seeds (`REDIS_CLUSTER_NODES`) the same factory returns an ioredis `Cluster`
 * instead, so every service (API, worker, BullMQ, the drop rehearsal, the bench) switches by
 * configuration alone. Every key of one event shares the hash tag `{ev:<id>}` and every BullMQ key the
 * hash-tagged queue prefix, so each script, MULTI and pipeline of one event runs on one shard; what
 * spans events (scans, readiness, multi-event reads) goes through the helpers below.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A single Redis or a Redis Cluster: both speak the same commands for keys of one slot. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL, or (a `Config` fits) a URL and optional Redis Cluster seeds that take precedence. */
export type RedisTarget = string | { readonly redisUrl: string; readonly redisClusterNodes?: readonly string[] | undefined };

export interface RedisConnectionOptions {
  /** Fail fast: no queueing while disconnected (the API). Workers and BullMQ want queueing. */
  failFast?: boolean;
  /** Per-command timeout (ms). */
  commandTimeoutMs?: number;
  /** Batch commands issued in the same tick into one write. */
  autoPipelining?: boolean;
  name?: string;
}

/** The cluster seeds of `target`, or undefined for a single Redis. */
export function clusterSeeds(target: RedisTarget): readonly string[] | undefined {
  if (typeof target === 'string') return undefined;
  return target.redisClusterNodes && target.redisClusterNodes.length > 0 ? target.redisClusterNodes : undefined;
}

function seedNode(seed: string): { host: string; port: number } {
  const at = seed.lastIndexOf(':');
  return { host: seed.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(seed.slice(at + 1)) };
}

/** A client for `target`: a single Redis for a URL, a Cluster when the target names cluster seeds. */
export function createRedis(target: string, opts?: RedisConnectionOptions): Redis;
export function createRedis(target: RedisTarget, opts?: RedisConnectionOptions): RedisClient;
export function createRedis(target: RedisTarget, opts: RedisConnectionOptions = {}): RedisClient {
  const seeds = clusterSeeds(target);
  const redis = seeds ? createCluster(seeds, opts) : createSingle(typeof target === 'string' ? target : target.redisUrl, opts);
  // Connection errors are reported through readiness and metrics; an unhandled 'error' would crash.
  redis.on('error', () => undefined);
  return redis;
}

function createSingle(url: string, opts: RedisConnectionOptions): Redis {
  const options: RedisOptions = {
    connectionName: opts.name ?? 'dropgate',
    connectTimeout: 2_000,
    enableOfflineQueue: !opts.failFast,
    maxRetriesPerRequest: opts.failFast ? 0 : null,
    enableAutoPipelining: opts.autoPipelining ?? false,
    retryStrategy: (times) => Math.min(50 * times, 1_000),
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
  };
  return new Redis(url, options);
}

/**
 * A Redis Cluster client. Reads and writes go to primaries only (`scaleReads: 'master'`): a replica
 * may lag, and the confirm path must read what it decides on. ioredis follows `MOVED` (refreshing its
 * slot map) and `ASK` by itself; `TRYAGAIN` (a multi-key command during a slot migration) and
 * `CLUSTERDOWN` (a failover in progress) are retried after a short delay. The fail-fast client (the
 * API) keeps no offline queue, so a confirm during a failover is refused at once (503) instead of
 * waiting past its deadline; workers and BullMQ queue and retry until the replica has taken over.
 *
 * No ready check (`CLUSTER INFO` saying `cluster_state:ok` before the client is ready): a `connect()`
 * whose check failed mid-failover reconnected by itself but never settled its promise, and BullMQ
 * awaits that promise when it reconnects a worker's blocking connection, so the worker never took a
 * job again (packages/redis/test/cluster-reconnect.test.ts). The client is ready once it has the slot
 * map; a command meanwhile gets `CLUSTERDOWN`, retried as above.
 */
function createCluster(seeds: readonly string[], opts: RedisConnectionOptions): Cluster {
  const options: ClusterOptions = {
    scaleReads: 'master',
    enableReadyCheck: false,
    enableOfflineQueue: !opts.failFast,
    // Never auto-pipelined (whatever `autoPipelining` asks): while a slot moves between nodes, ioredis's
    // auto-pipelines handed `ASK` back as an error or a wrong reply instead of following it, and once
    // threw inside the client (redis/ioredis#1931), ending the process (packages/redis/test/
    // cluster-reshard.test.ts).
    enableAutoPipelining: false,
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    retryDelayOnMoved: 0,
    slotsRefreshTimeout: 2_000,
    // Rediscover the topology now and then, so a replica promoted by a failover is found even by a
    // client that has not been redirected yet.
    slotsRefreshInterval: 5_000,
    clusterRetryStrategy: (times) => Math.min(50 * times, 1_000),
    redisOptions: {
      connectionName: opts.name ?? 'dropgate',
      connectTimeout: 2_000,
      maxRetriesPerRequest: opts.failFast ? 0 : null,
      ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
    },
  };
  return new Cluster(seeds.map(seedNode), options);
}

/**
 * Resolves true once `redis` is ready (connected, its ready check answered), or false after
 * `timeoutMs`. A fail-fast client keeps no offline queue: until it is ready it refuses every command
 * ("Stream isn't writeable"), so a server that takes requests before then answers them 503.
 */
export function whenReady(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ready);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.on('ready', onReady);
  });
}

/** True for a Redis Cluster client. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/** Every primary's own connection: the cluster's primaries, or the single Redis itself. */
export function primaries(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/**
 * Every key matching `pattern`, scanned on every primary (SCAN on a cluster client would walk one
 * random node only). Each batch is handed to `onKeys` with the node's own connection.
 */
export async function scanEachPrimary(redis: RedisClient, pattern: string, onKeys: (node: Redis, keys: string[]) => Promise<void>): Promise<void> {
  for (const node of primaries(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await onKeys(node, keys);
    } while (cursor !== '0');
  }
}

/**
 * Unlinks every key matching `pattern` on every primary. On a cluster each key is unlinked on its
 * own (a multi-key UNLINK of keys in different slots is refused with CROSSSLOT even on one node).
 */
export async function deleteKeysMatching(redis: RedisClient, pattern: string): Promise<number> {
  let removed = 0;
  await scanEachPrimary(redis, pattern, async (node, keys) => {
    if (isCluster(redis)) {
      const pipe = node.pipeline();
      for (const key of keys) pipe.unlink(key);
      await pipe.exec();
    } else {
      await node.unlink(...keys);
    }
    removed += keys.length;
  });
  return removed;
}

/**
 * Pings every primary (every shard must answer for the cluster to serve all events); on a cluster,
 * also asks one node whether the cluster considers itself whole (`cluster_state:ok`).
 * @returns null when all is well, else what is wrong.
 */
export async function checkEveryShard(redis: RedisClient, timeoutMs = 500): Promise<string | null> {
  const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), timeoutMs).unref())]);
  if (!isCluster(redis)) {
    try {
      await within(redis.ping());
      return null;
    } catch {
      return 'unreachable';
    }
  }
  if (redis.status !== 'ready') return `cluster client ${redis.status}`;
  const nodes = redis.nodes('master');
  if (nodes.length === 0) return 'no primary known';
  // All at once: the answer takes one round trip, not one per shard.
  const [state, ...answers] = await Promise.all([
    within(nodes[0]!.cluster('INFO')).then((info) => (/cluster_state:ok/.test(String(info)) ? null : 'cluster_state is not ok'), () => 'cluster state unknown'),
    ...nodes.map((n) => within(n.ping()).then(() => null, () => `${n.options.host}:${n.options.port} unreachable`)),
  ]);
  const down = answers.filter((a): a is string => a !== null);
  if (down.length > 0) return down.join(', ');
  return state ?? null;
}
