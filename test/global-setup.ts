/**
 * Before any test: Redis and Postgres must answer. `.ci/run` starts them; a developer gets a clear
 * message instead of a wall of connection errors. Then the migrated template of the test databases,
 * and beside it one process that loads the stack's modules into Node's compile cache.
 */
import { spawn } from 'node:child_process';
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
  await Promise.all([migratedTemplate(), warmCompileCache()]);
}

/** What the processes tests start (API, worker, simulator, drops, `npm start`) load, by package. */
const STACK_MODULES = ['@dropgate/api', '@dropgate/worker', '@dropgate/portone-sim', '@dropgate/drop', '@dropgate/stack', '@dropgate/chaos'];

/**
 * On a fresh clone Node's compile cache (NODE_COMPILE_CACHE, set in vitest.config.ts) is empty, and
 * the first tests start a dozen of those processes at once, each compiling the same modules (about
 * 15 core-seconds of a run). One process loading them first, while the template is built, fills it.
 * Best effort: a failure or a slow load only leaves the cache as it was.
 */
function warmCompileCache(): Promise<void> {
  const script = `await Promise.all(${JSON.stringify(STACK_MODULES)}.map((m) => import(m)));
(await import('node:module')).flushCompileCache?.();
process.exit(0);`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore', env: process.env });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', () => { clearTimeout(timer); resolve(); });
    child.once('exit', () => { clearTimeout(timer); resolve(); });
  });
}
