/**
 * Test support. Every test file owns its namespace: its own Postgres database, its own BullMQ queue
 * prefix, unique event ids, and (for tests that pause or flush Redis) its own redis-server process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '@dropgate/config';
import { ensureDatabase, pgConnection } from '@dropgate/db';
import { HoldStore } from '@dropgate/redis';
import { startApi, type RunningApi } from '@dropgate/api';
import { startWorker, type RunningWorker } from '@dropgate/worker';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
const PG_BASE = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
const REDIS_BASE = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A short random suffix, valid inside event ids. */
export function rand(n = 8): string {
  return randomBytes(8).toString('hex').slice(0, n);
}

/** A unique event id (`<prefix>-<random>`), at most 28 characters. */
export function eventId(prefix = 'ev'): string {
  return `${prefix.slice(0, 18)}-${rand(8)}`;
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh database of its own (`dgt_<label>_<random>`), dropped by `drop()`. */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const name = `dgt_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase().slice(0, 30)}_${rand(8)}`;
  const url = new URL(PG_BASE);
  url.pathname = `/${name}`;
  await ensureDatabase(url.toString());
  return {
    url: url.toString(),
    async drop() {
      const admin = new URL(PG_BASE);
      admin.pathname = '/postgres';
      const client = new pg.Client(pgConnection(admin.toString()));
      await client.connect();
      try {
        await client.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface PrivateRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (as a Redis without persistence comes back). */
  restart(): Promise<void>;
}

/**
 * A redis-server of this test's own, for tests that pause (CLIENT PAUSE) or flush (FLUSHALL) Redis:
 * doing that to the shared server would disturb every other test running in parallel.
 */
export async function startPrivateRedis(fixedPort?: number): Promise<PrivateRedis> {
  const port = fixedPort ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  const started = Date.now();
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch {
      if (Date.now() - started > 10_000) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  const handle: PrivateRedis = {
    url,
    port,
    process: child,
    async stop() {
      const current = handle.process;
      if (current.exitCode !== null || current.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        current.once('exit', () => resolve());
        current.kill('SIGKILL');
      });
    },
    async restart() {
      await handle.stop();
      const again = await startPrivateRedis(port);
      handle.process = again.process;
    },
  };
  return handle;
}

export interface StackOptions {
  label?: string;
  redisUrl?: string;
  budgetMs?: number;
  portoneUrl?: string;
  /** Start a worker in this process (default true). */
  worker?: boolean;
  /** Run the worker's periodic sweep and guard (default true). */
  timers?: boolean;
  env?: Record<string, string>;
}

export interface TestStack {
  config: Config;
  api: RunningApi;
  worker: RunningWorker | null;
  url: string;
  db: TestDatabase;
  prefix: string;
  /** A Redis client for assertions. */
  redis: Redis;
  store: HoldStore;
  close(): Promise<void>;
}

export function testConfig(overrides: Record<string, string>): Config {
  return loadConfig({}, {
    HOST: '127.0.0.1',
    PORT: '0',
    WORKER_METRICS_PORT: '0',
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    LOG_LEVEL: 'silent',
    PORTONE_IMP_KEY: 'test-key',
    PORTONE_IMP_SECRET: 'test-secret',
    ...overrides,
  });
}

/** API (+ worker) on their own database and queue prefix. */
export async function startStack(opts: StackOptions = {}): Promise<TestStack> {
  const db = await createTestDatabase(opts.label ?? 'stack');
  const prefix = `{dgt-${rand(10)}}`;
  const config = testConfig({
    DATABASE_URL: db.url,
    REDIS_URL: opts.redisUrl ?? REDIS_BASE,
    CONFIRM_BUDGET_MS: String(opts.budgetMs ?? 3000),
    PORTONE_API_URL: opts.portoneUrl ?? 'http://127.0.0.1:9',
    SWEEP_INTERVAL_MS: '500',
    EXPIRY_GRACE_SECONDS: '5',
    LATE_PAYMENT_WATCH_SECONDS: '16',
    // Test files run in parallel against one Postgres (max_connections 100): keep pools small.
    WORKER_CONCURRENCY: '8',
    ...(opts.env ?? {}),
  });
  const api = await startApi(config, { logger: false, queuePrefix: prefix });
  const worker = opts.worker === false ? null : await startWorker(config, { prefix, metricsServer: false, timers: opts.timers ?? true });
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  return {
    config,
    api,
    worker,
    url: api.url,
    db,
    prefix,
    redis,
    store: new HoldStore(redis),
    async close() {
      const ids = await api.deps.db.selectFrom('events').select('id').execute().catch(() => []);
      await worker?.close();
      await api.close();
      try {
        for (const { id } of ids) await new HoldStore(redis).deleteEvent(id);
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await redis.unlink(...keys);
        } while (cursor !== '0');
      } catch {
        // A private Redis may be gone already.
      }
      redis.disconnect();
      await db.drop();
    },
  };
}

/** JSON over HTTP with the admin token when asked. */
export async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { admin?: boolean; headers?: Record<string, string>; raw?: string } = {},
): Promise<{ status: number; body: any; text: string }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.admin) headers.authorization = `Bearer ${TEST_ADMIN_TOKEN}`;
  let payload: string | undefined;
  if (opts.raw !== undefined) payload = opts.raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(new URL(path, base), { method, headers, body: payload });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  return { status: res.status, body: parsed, text };
}

/** Creates an order through the storefront API; throws (with the answer) unless it is a 201. */
export async function newOrder(base: string, eventId: string, body: Record<string, unknown>): Promise<{ merchant_uid: string; amount: number }> {
  const res = await http(base, 'POST', `/events/${eventId}/orders`, body);
  if (res.status !== 201) throw new Error(`order for ${eventId} answered ${res.status}: ${res.text}`);
  return res.body as { merchant_uid: string; amount: number };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, label = 'condition'): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let impCounter = 0;
/** A unique imp_uid in PortOne's shape. */
export function impUid(): string {
  impCounter++;
  return `imp_${Date.now().toString().slice(-6)}${String(impCounter).padStart(6, '0')}${rand(4)}`;
}
