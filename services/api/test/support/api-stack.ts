/**
 * The API alone on a test environment of its own (database, queue prefix, Redis namespace): what the
 * API's own tests start. Tests that need a worker too live in @dropgate/stack's tests.
 */
import type { HoldStore, RedisClient } from '@dropgate/redis';
import type { Config } from '@dropgate/config';
import type { Clock } from '@dropgate/domain';

import { testEnvironment, type TestDatabase, type TestEnvironmentOptions } from '@dropgate/testkit';
import { startApi, type RunningApi } from '../../src/server.ts';

export interface ApiStack {
  config: Config;
  api: RunningApi;
  url: string;
  db: TestDatabase;
  prefix: string;
  redis: RedisClient;
  store: HoldStore;
  close(): Promise<void>;
}

export async function startApiStack(opts: TestEnvironmentOptions & { clock?: Clock } = {}): Promise<ApiStack> {
  const env = await testEnvironment(opts);
  const api = await startApi(env.config, { logger: false, queuePrefix: env.prefix, ...(opts.clock ? { clock: opts.clock } : {}) });
  return {
    config: env.config, api, url: api.url, db: env.db, prefix: env.prefix, redis: env.redis, store: env.store,
    async close() {
      const ids = await api.deps.db.selectFrom('events').select('id').execute().catch(() => []);
      await api.close();
      await env.dispose(ids.map((r) => r.id));
    },
  };
}
