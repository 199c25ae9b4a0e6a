/**
 * Before any test: Redis and Postgres must answer. `.ci/run` starts them; a developer gets a clear
 * message instead of a wall of connection errors. Then the migrated template of the test databases.
 */
import pg from 'pg';
import { pgConnection } from '@dropgate/db';
import { migratedTemplate } from '@dropgate/testkit';
import { Redis } from 'ioredis';

export default async function setup(): Promise<void> {
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${redisUrl} (${(error as Error).message}): start it (redis-server --daemonize yes --port 6379 --save "" --appendonly no)`, { cause: error });
  } finally {
    redis.disconnect();
  }
  const pgUrl = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
  const client = new pg.Client(pgConnection(pgUrl));
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new Error(`Postgres is not reachable at ${pgUrl} (${(error as Error).message}): start it (pg_ctlcluster <version> main start)`, { cause: error });
  } finally {
    await client.end().catch(() => undefined);
  }
  // The migrated template every test database is copied from: built here once, before the test
  // processes start, rather than by each of them racing to build it.
  await migratedTemplate();
}
