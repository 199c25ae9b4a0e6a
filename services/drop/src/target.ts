/**
 * What a drop runs against: the API (and its worker), the PortOne simulator, and direct access to
 * Postgres and Redis for the invariant checks. Each of the API and the simulator is either started in
 * this process on a free port, or an already running one given by URL.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import type { RedisClient } from '@dropgate/redis';
import { loadConfig, type Config } from '@dropgate/config';
import { createDb, databaseName, dropDatabase, maintenanceUrl, pgConnection, type Db } from '@dropgate/db';
import { HoldStore, createRedis, deleteKeysMatching } from '@dropgate/redis';
import { startApi, type RunningApi } from '@dropgate/api';
import { startWorker, type RunningWorker } from '@dropgate/worker';
import { startSimulator, type Faults, type Ledger, type Simulator } from '@dropgate/portone-sim';
import { startPrivateCluster, type PrivateCluster } from '@dropgate/testkit';
import { closeQueues, createQueues, type Queues } from '@dropgate/jobs';
import { startSimProcess, startStackProcess } from './processes.ts';

/** The simulator's controls, in-process or over HTTP (`/sim/*`). */
export interface SimControl {
  readonly url: string;
  ledger(): Promise<Ledger>;
  getFaults(): Promise<Faults>;
  setFaults(faults: Faults): Promise<void>;
  /** Resolves when no webhook is pending (in-process only; null otherwise). */
  readonly settled: (() => Promise<void>) | null;
}

export interface DropTarget {
  readonly apiUrl: string;
  readonly sim: SimControl;
  readonly adminToken: string;
  /** dropgate's database and Redis, for the invariant checks. */
  readonly db: Db;
  readonly redis: RedisClient;
  readonly budgetMs: number;
  readonly inProcess: { readonly api: boolean; readonly sim: boolean };
  /** Processes this drop started: the simulator's (`--sim-process`), `npm start`'s (`--stack-process`). */
  readonly pids: { readonly simulator: number | null; readonly stack: number | null };
  /** One sweep of the in-process worker (null when the worker runs elsewhere). */
  readonly sweep: (() => Promise<unknown>) | null;
  /** Jobs of the in-process worker not finished yet, by queue and state (e.g. `payments delayed: 2`). */
  readonly pendingJobs: (() => Promise<Record<string, number>>) | null;
  /** Human-readable: what runs where. */
  readonly description: string;
  /** The Redis Cluster the drop started for itself (`--cluster` without REDIS_CLUSTER_NODES), else null. */
  readonly cluster: PrivateCluster | null;
  /**
   * Stops what this process started. An in-process stack also removes what it left in the shared
   * Redis: its queue keys, and the keys of `cleanupEventIds` (after the worker stopped, so its guard
   * does not rebuild them from Postgres). Postgres keeps the record.
   */
  close(cleanupEventIds?: readonly string[]): Promise<void>;
}

export interface TargetOptions {
  /** The environment `loadConfig` reads (DATABASE_URL, REDIS_URL, ADMIN_TOKEN, CONFIRM_BUDGET_MS...). */
  env: Record<string, string | undefined>;
  apiUrl: string | null;
  simUrl: string | null;
  budgetMs: number;
  /** In-process database name, on DATABASE_URL's server. */
  database: string;
  /** In-process: use exactly this database URL instead (tests pass their own). */
  databaseUrl?: string;
  /** In-process: drop and recreate the database first, removing the previous drop (the CLI does). */
  freshDatabase: boolean;
  /** Level of the in-process worker's log, on stderr. Default `error`. */
  logLevel?: 'silent' | 'error' | 'warn' | 'info' | 'debug';
  /** On Redis Cluster: REDIS_CLUSTER_NODES from `env`, or else a private cluster started here. */
  cluster?: boolean;
  /** Without `simUrl`: start the simulator in a child process (`npm run sim`) instead of in this one. */
  simProcess?: boolean;
  /**
   * Without `apiUrl`: run the API and the worker through `npm start` in child processes (this many of
   * each) instead of in this process. Null or absent: in this process.
   */
  stack?: { apiProcesses: number; workerProcesses: number } | null;
}

async function getJson(url: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url} answered ${res.status}: ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
}

function inProcessSim(sim: Simulator): SimControl {
  return {
    url: sim.url,
    ledger: async () => sim.ledger(),
    getFaults: async () => sim.getFaults(),
    setFaults: async (faults) => sim.setFaults(faults),
    settled: () => sim.settled(),
  };
}

function remoteSim(url: string, own = false): SimControl {
  return {
    url,
    ledger: async () => (await getJson(`${url}/sim/ledger`)) as Ledger,
    getFaults: async () => (await getJson(`${url}/sim/faults`)) as Faults,
    setFaults: async (faults) => {
      await getJson(`${url}/sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults) });
    },
    // The drop's own simulator process does nothing but this drop: it is settled when nothing is pending.
    settled: own
      ? async () => {
        while (((await getJson(`${url}/sim/pending`)) as { pending: number }).pending > 0) await new Promise((r) => setTimeout(r, 50));
      }
      : null,
  };
}

/** Jobs not finished yet, by queue and state (e.g. `payments waiting: 2`). */
async function pendingJobCounts(queues: Queues): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, q] of Object.entries(queues)) {
    // Delayed jobs are not counted: an expiry job waits for its hold's TTL even when the hold was
    // paid long ago, a late-payment watch waits by design, a retry waits its backoff. What they
    // would change shows in the state the settle check reads (live holds, unsettled payments).
    const c = await q.getJobCounts('waiting', 'active', 'prioritized');
    for (const [state, n] of Object.entries(c)) if (n > 0) out[`${name} ${state}`] = n;
  }
  return out;
}

/** The database URL on `base`'s server named `name`. */
export function databaseUrlOn(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Drops the drop database (after removing the Redis keys of the events it holds, so nothing of the
 * previous drop is left in the shared Redis). Refuses names that look like someone else's database.
 */
export async function recreateDatabase(url: string, redis: RedisClient): Promise<void> {
  const name = databaseName(url);
  if (!/drop/.test(name) && !/^dgt_/.test(name)) throw new Error(`refusing to recreate database ${name}: its name must contain "drop"`);
  const admin = new pg.Client(pgConnection(maintenanceUrl(url)));
  // A connection error fails the query in flight; without a listener it would also kill the process.
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) return;
  } finally {
    await admin.end();
  }
  const old = new pg.Client(pgConnection(url));
  old.on('error', () => undefined);
  await old.connect();
  try {
    const events = await old.query<{ id: string }>('select id from events').catch(() => ({ rows: [] as { id: string }[] }));
    const store = new HoldStore(redis);
    for (const { id } of events.rows) await store.deleteEvent(id);
  } finally {
    await old.end();
  }
  await dropDatabase(url);
}

async function reachable(url: string, what: string): Promise<void> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    await res.arrayBuffer();
  } catch (error) {
    throw new Error(`${what} is not reachable at ${url}: ${(error as Error).message}`, { cause: error });
  }
}

/** Starts (or connects to) everything a drop needs. @throws ConfigError on a bad environment. */
export async function openTarget(opts: TargetOptions): Promise<DropTarget> {
  let base = loadConfig(opts.env);
  const closers: (() => Promise<void>)[] = [];
  let cleanupIds: readonly string[] = [];
  const close = async (cleanupEventIds: readonly string[] = []) => {
    cleanupIds = cleanupEventIds;
    for (const c of closers.reverse()) await c().catch(() => undefined);
    closers.length = 0;
  };
  try {
    let cluster: PrivateCluster | null = null;
    if (opts.cluster && !base.redisClusterNodes) {
      if (opts.apiUrl !== null) throw new Error('--cluster with --api-url: the running API has its own Redis; set REDIS_CLUSTER_NODES to the cluster it uses');
      // A private cluster (3 primaries, 3 replicas; failure detected within 2 s), stopped last.
      const started = await startPrivateCluster({ nodeTimeoutMs: 2_000 });
      cluster = started;
      closers.push(() => started.stop());
      opts = { ...opts, env: { ...opts.env, REDIS_CLUSTER_NODES: started.seeds.join(',') } };
      base = loadConfig(opts.env);
    }
    const onCluster = base.redisClusterNodes ? `, Redis Cluster ${cluster ? 'of its own (3 primaries, 3 replicas)' : base.redisClusterNodes.join(',')}` : '';
    let sim: SimControl;
    const impKey = `drop-key-${randomBytes(4).toString('hex')}`;
    const impSecret = randomBytes(16).toString('hex');
    // V2: the in-process simulator signs with a fresh secret; a running one tells its own (/sim/v2/settings).
    let webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
    let storeId = `store-drop-${randomBytes(4).toString('hex')}`;
    const v2ApiSecret = opts.env['PORTONE_V2_API_SECRET'] || randomBytes(16).toString('hex');
    let simWhere = 'in-process';
    let simPid: number | null = null;
    if (opts.simUrl === null && opts.simProcess) {
      const started = await startSimProcess({
        ...(opts.env['PATH'] !== undefined ? { PATH: opts.env['PATH'] } : {}),
        PORTONE_WEBHOOK_SECRET: webhookSecret, PORTONE_V2_STORE_ID: storeId, PORTONE_V2_API_SECRET: v2ApiSecret,
      });
      closers.push(() => started.close());
      sim = remoteSim(started.url, true);
      simWhere = `in a process of its own (pid ${started.pid})`;
      simPid = started.pid;
    } else if (opts.simUrl !== null) {
      simWhere = `${opts.simUrl} (running)`;
      await reachable(`${opts.simUrl}/sim/healthz`, 'the PortOne simulator');
      sim = remoteSim(opts.simUrl);
      const settings = (await getJson(`${opts.simUrl}/sim/v2/settings`).catch(() => null)) as { webhook_secret?: string; store_id?: string } | null;
      if (settings?.webhook_secret) webhookSecret = settings.webhook_secret;
      if (settings?.store_id) storeId = settings.store_id;
    } else {
      const started = await startSimulator({ impKey, impSecret, logLevel: 'silent', webhookSecret, storeId, v2ApiSecret });
      closers.push(() => started.close());
      sim = inProcessSim(started);
    }

    if (opts.apiUrl !== null) {
      if (!base.adminToken) throw new Error('ADMIN_TOKEN is not set: --api-url needs the running API\'s admin token to create the event');
      await reachable(`${opts.apiUrl}/healthz`, 'the dropgate API');
      const db = createDb(base.databaseUrl, { max: 3 });
      closers.push(() => db.destroy());
      const redis = createRedis(base, { name: 'dropgate-drop' });
      closers.push(async () => redis.disconnect());
      return {
        apiUrl: opts.apiUrl,
        sim,
        adminToken: base.adminToken,
        db,
        redis,
        budgetMs: opts.budgetMs,
        inProcess: { api: false, sim: opts.simUrl === null },
        pids: { simulator: simPid, stack: null },
        sweep: null,
        pendingJobs: null,
        description: `API ${opts.apiUrl} (running), simulator ${opts.simProcess ? simWhere : `${sim.url}${opts.simUrl === null ? ' (in-process)' : ' (running)'}`}${onCluster}`,
        cluster,
        close,
      };
    }

    const redis = createRedis(base, { name: 'dropgate-drop' });
    closers.push(async () => redis.disconnect());
    const prefix = `{drop-${randomBytes(6).toString('hex')}}`;
    // Runs after the API and the worker have stopped (closers run last-in, first-out).
    closers.push(async () => {
      for (const id of cleanupIds) await new HoldStore(redis).deleteEvent(id);
      await deleteKeysMatching(redis, `${prefix}*`);
    });
    const dbUrl = opts.databaseUrl ?? databaseUrlOn(base.databaseUrl, opts.database);
    if (opts.freshDatabase) await recreateDatabase(dbUrl, redis);
    const adminToken = randomBytes(24).toString('hex');
    const overrides: Record<string, string> = {
      HOST: '127.0.0.1',
      PORT: '0',
      WORKER_METRICS_PORT: '0',
      DATABASE_URL: dbUrl,
      ADMIN_TOKEN: adminToken,
      CONFIRM_BUDGET_MS: String(opts.budgetMs),
      PORTONE_API_URL: sim.url,
      // With a running simulator the credentials are whatever it accepts (any, unless it was started
      // with its own): ours are only checked by an in-process one.
      PORTONE_IMP_KEY: impKey,
      PORTONE_IMP_SECRET: impSecret,
      // V2 (used by --portone v2 and v2-manual; harmless for V1 drops): the simulator is V2 PortOne too.
      PORTONE_V2_API_URL: sim.url,
      PORTONE_V2_API_SECRET: v2ApiSecret,
      PORTONE_V2_STORE_ID: storeId,
      PORTONE_WEBHOOK_SECRET: webhookSecret,
      // Abandoned holds must end seconds after their TTL, not minutes, and a payment finished after
      // its hold expired must be found within the drop (configurations without the watch ignore it).
      SWEEP_INTERVAL_MS: '500',
      EXPIRY_GRACE_SECONDS: '5',
      LATE_PAYMENT_WATCH_SECONDS: '16',
      QUEUE_PREFIX: prefix,
      // The simulator sends plain webhooks from loopback: no token, no allowlist.
      WEBHOOK_TOKEN: '',
      WEBHOOK_ALLOWED_IPS: '',
      TRUST_PROXY: 'false',
      LOG_LEVEL: opts.logLevel ?? 'error',
    };
    const config: Config = loadConfig(opts.env, overrides);
    const dbName = new URL(dbUrl).pathname.slice(1);
    if (opts.stack) {
      // npm start: the API and the worker as they run in production, each in processes of their own.
      const { apiProcesses, workerProcesses } = opts.stack;
      const stack = await startStackProcess({
        ...opts.env, ...overrides, API_PROCESSES: String(apiProcesses), WORKER_PROCESSES: String(workerProcesses),
        // npm start nices workers below the APIs (WORKER_NICE 10). On a machine busy with the drop's
        // own buyers and simulator that starves settlement (a paid order holds its pool's row lock
        // while its worker waits for a CPU), unlike the in-process stack; a drop runs them level
        // unless told otherwise.
        WORKER_NICE: opts.env['WORKER_NICE'] ?? '0',
      });
      closers.push(() => stack.close());
      const bullRedis = createRedis(base, { name: 'dropgate-drop-queues' });
      closers.push(async () => bullRedis.disconnect());
      const queues = createQueues(bullRedis, prefix);
      closers.push(() => closeQueues(queues));
      const db = createDb(dbUrl, { max: 3 });
      closers.push(() => db.destroy());
      const plural = (n: number, what: string) => `${n} ${what} process${n === 1 ? '' : 'es'}`;
      return {
        apiUrl: stack.url,
        sim,
        adminToken,
        db,
        redis,
        budgetMs: opts.budgetMs,
        inProcess: { api: false, sim: opts.simUrl === null && !opts.simProcess },
        pids: { simulator: simPid, stack: stack.pid },
        // The worker sweeps on its own (SWEEP_INTERVAL_MS).
        sweep: null,
        pendingJobs: () => pendingJobCounts(queues),
        description: `API and worker through npm start (${plural(apiProcesses, 'API')}, ${plural(workerProcesses, 'worker')}; database ${dbName}, queue prefix ${prefix}), simulator ${simWhere}${onCluster}`,
        cluster,
        close,
      };
    }
    const api: RunningApi = await startApi(config, { logger: false, queuePrefix: prefix });
    closers.push(() => api.close());
    const logger = pino({ name: 'dropgate-worker', level: config.logLevel }, pino.destination(2));
    const worker: RunningWorker = await startWorker(config, { prefix, metricsServer: false, timers: true, logger });
    closers.push(() => worker.close());
    const db = createDb(dbUrl, { max: 3 });
    closers.push(() => db.destroy());
    const queues = worker.ctx.queues;
    return {
      apiUrl: api.url,
      sim,
      adminToken,
      db,
      redis,
      budgetMs: opts.budgetMs,
      inProcess: { api: true, sim: opts.simUrl === null && !opts.simProcess },
      pids: { simulator: simPid, stack: null },
      sweep: () => worker.sweep(),
      pendingJobs: () => pendingJobCounts(queues),
      description: `API and worker in-process (database ${dbName}, queue prefix ${prefix}), simulator ${simWhere}${onCluster}`,
      cluster,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
