/**
 * `@dropgate/stack`: dropgate's back end in one process, the API and (optionally) a worker, on a
 * database and a queue prefix of their own. Tests that need both, the benchmarks and tools start it;
 * it sits above the API and the worker, so neither of them depends on the other.
 */
import type { RedisClient } from '@dropgate/redis';
import type { Config } from '@dropgate/config';
import type { Clock } from '@dropgate/domain';
import type { HoldStore } from '@dropgate/redis';
import { startApi, type RunningApi } from '@dropgate/api';
import { startWorker, type RunningWorker } from '@dropgate/worker';
import { testEnvironment, type TestDatabase, type TestEnvironmentOptions } from '@dropgate/testkit';

export interface StackOptions extends TestEnvironmentOptions {
  /** Start a worker in this process (default true). */
  worker?: boolean;
  /** Run the worker's periodic sweep and guard (default true). */
  timers?: boolean;
  /** The clock the API and worker decide by (default the system clock; see testkit's TestClock). */
  clock?: Clock;
}

export interface TestStack {
  config: Config;
  api: RunningApi;
  worker: RunningWorker | null;
  url: string;
  db: TestDatabase;
  prefix: string;
  /** A Redis client for assertions. */
  redis: RedisClient;
  store: HoldStore;
  close(): Promise<void>;
}

/** API (+ worker) on their own database and queue prefix. */
export async function startStack(opts: StackOptions = {}): Promise<TestStack> {
  const env = await testEnvironment(opts);
  const { config, prefix } = env;
  const api = await startApi(config, { logger: false, queuePrefix: prefix, ...(opts.clock ? { clock: opts.clock } : {}) });
  const worker = opts.worker === false ? null : await startWorker(config, {
    prefix, metricsServer: false, timers: opts.timers ?? true, ...(opts.clock ? { clock: opts.clock } : {}),
  });
  return {
    config,
    api,
    worker,
    url: api.url,
    db: env.db,
    prefix,
    redis: env.redis,
    store: env.store,
    async close() {
      const ids = await api.deps.db.selectFrom('events').select('id').execute().catch(() => []);
      await worker?.close();
      await api.close();
      await env.dispose(ids.map((r) => r.id));
    },
  };
}
