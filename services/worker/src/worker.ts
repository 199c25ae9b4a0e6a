/**
 * The worker process: BullMQ workers for every queue, the periodic sweep and Redis guard, and a small
 * HTTP server for `/metrics` and `/healthz`.
 */
import { createServer, type Server } from 'node:http';
import { Worker, UnrecoverableError, type Job, type Processor } from 'bullmq';
import { pino, type Logger } from 'pino';
import { sql } from 'kysely';
import type { Config } from '@dropgate/config';
import type { Clock } from '@dropgate/domain';
import { openDatabase, events as eventsRepo, orders as ordersRepo } from '@dropgate/db';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { createHandoffRelay } from './processors/relay.ts';
import { HoldStore, RedisClock, checkEveryShard, clockKey, createRedis, type RedisClient } from '@dropgate/redis';
import { QueueNames, createQueues, closeQueues, jobIds, type QueueName, type PersistHoldJob, type PaymentOutcomeJob, type ExpireHoldJob, type MaintenanceJob } from '@dropgate/jobs';
import { PaymentGateway, PortOneClient, PortOneV2Client } from '@dropgate/portone';
import { clockReporter, createRegistry, createWorkerMetrics, scrapeAllowed } from '@dropgate/telemetry';
import { EventNotLoadedError, measuredJob, type WorkerContext } from './context.ts';
import { persistHold } from './processors/persist-hold.processor.ts';
import { paymentOutcome } from './processors/payment-outcome.processor.ts';
import { archiveEvents, guard, guardQueues, rebuildEvent, recordQueueFronts, retryRefunds, sweep, withdrawOrphans } from './processors/maintenance.processor.ts';
import { periodicTask } from './periodic.ts';
import { countLedgerFromZero, sweepLedger } from './processors/ledger.processor.ts';
import { expireHold } from './settlement/index.ts';

/** How long the relay waits for a batch's hold recordings before queueing the rest as `holds` jobs. */
export { INLINE_BUDGET_MS } from './processors/relay.ts';
/** The BullMQ priority of the lookups a lost queue or event requeues (behind live jobs). */
export { RECOVERY_PRIORITY } from './processors/maintenance.processor.ts';
export { withOrderLock } from './settlement/lock.ts';

export interface WorkerOptions {
  /** Queue key prefix (tests use their own). */
  prefix?: string;
  logger?: Logger;
  /** Listen for /metrics (default true; tests pass false). */
  metricsServer?: boolean;
  /** Run the periodic sweep and guard (default true). */
  timers?: boolean;
  /** The time decisions are taken at (default the system clock; tests move their own forward). */
  clock?: Clock;
}

export interface RunningWorker {
  ctx: WorkerContext;
  metricsUrl: string | null;
  /** Runs one sweep now (tests, and the drop runner to settle quickly). */
  sweep(): ReturnType<typeof sweep>;
  guard(): ReturnType<typeof guard>;
  /** The job queues' guard (a failover of their shard, or Redis losing them: see guardQueues). */
  guardQueues(): ReturnType<typeof guardQueues>;
  /** Reads PortOne's paid payments against the record and settles those it lacks (see sweepLedger). */
  sweepLedger(opts?: Parameters<typeof sweepLedger>[1]): ReturnType<typeof sweepLedger>;
  /** Archives the events whose season is over now (see archiveEvents). */
  archive(): ReturnType<typeof archiveEvents>;
  /** Withdraws orders pending in Postgres that Redis never received (see withdrawOrphans). */
  withdrawOrphans(opts?: { minAgeMs?: number }): ReturnType<typeof withdrawOrphans>;
  /** Asks again about refunds decided over a minute ago and not done (see retryRefunds). */
  retryRefunds(): ReturnType<typeof retryRefunds>;
  /** Records how far each waiting room has admitted (see recordQueueFronts). */
  recordQueueFronts(): ReturnType<typeof recordQueueFronts>;
  /** Moves pending hold hand-offs into the holds queue now. */
  relay(): Promise<number>;
  /** The text `/metrics` serves, collected now (with or without the metrics server). */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Whether a failed attempt was the job's last: its attempts are used up, or it failed for a reason no
 * retry changes (UnrecoverableError, which BullMQ fails at once, with attempts left: a payment for an
 * order Postgres does not have). A job of one attempt by design (the refund retry, asked again by the
 * next round) is not counted when it merely failed.
 */
export function failedForGood(job: { attemptsMade: number; opts: { attempts?: number } }, error: Error): boolean {
  if (error instanceof UnrecoverableError || error.name === 'UnrecoverableError') return true;
  const attempts = job.opts.attempts ?? 1;
  return attempts > 1 && job.attemptsMade >= attempts;
}

export async function startWorker(config: Config, opts: WorkerOptions = {}): Promise<RunningWorker> {
  const log = opts.logger ?? pino({ name: 'dropgate-worker', level: config.logLevel });
  const prefix = opts.prefix ?? config.queuePrefix;
  const db = await openDatabase(config.databaseUrl, { max: Math.min(50, config.workerConcurrency + 5) });
  // Many jobs run at once: their commands written in the same tick share one write (as in the API).
  const redis = createRedis(config, { name: 'dropgate-worker', autoPipelining: true });
  const bullRedis = createRedis(config, { name: 'dropgate-worker-bullmq', autoPipelining: true });
  const queues = createQueues(bullRedis, prefix);
  const registry = createRegistry();
  const metrics = createWorkerMetrics(registry);
  const onRequest = (endpoint: string, result: string, seconds: number) => {
    metrics.portoneRequests.inc({ endpoint, result });
    metrics.portoneDuration.observe({ endpoint }, seconds);
  };
  const v1 = new PortOneClient({
    baseUrl: config.portone.apiUrl,
    // Without credentials every call is refused by PortOne; the worker still records holds, and
    // outcome jobs retry until the credentials are fixed.
    impKey: config.portone.impKey ?? 'unset',
    impSecret: config.portone.impSecret ?? 'unset',
    onRequest,
  });
  // Without a V2 secret, a V2 payment cannot be asked about: its jobs fail as refused (see PaymentGateway).
  const v2 = config.portone.v2ApiSecret
    ? new PortOneV2Client({ baseUrl: config.portone.v2ApiUrl, secret: config.portone.v2ApiSecret, storeId: config.portone.v2StoreId, onRequest })
    : null;
  const portone = new PaymentGateway(v1, v2);
  // Every decision's time: Redis's clock (see RedisClock), unless a test gives its own.
  const redisClock = opts.clock ? null : new RedisClock(redis, { key: clockKey(prefix), onResult: clockReporter(metrics) });
  await redisClock?.start();
  const ctx: WorkerContext = { config, db, redis, store: new HoldStore(redis, config.orderLimits), queues, portone, metrics, log, clock: opts.clock ?? redisClock! };
  countLedgerFromZero(ctx);

  const processors: Record<QueueName, Processor> = {
    holds: (job: Job<PersistHoldJob>) => persistHold(ctx, job.data),
    payments: (job: Job<PaymentOutcomeJob>) => paymentOutcome(ctx, job.data, job.attemptsMade),
    expiry: (job: Job<ExpireHoldJob>) => expireHold(ctx, job.data.eventId, job.data.merchantUid, job.data.seq),
    maintenance: async (job: Job<MaintenanceJob>) => {
      if (job.data.kind !== 'rebuild') throw new UnrecoverableError(`unknown maintenance job ${String(job.data.kind)}`);
      return (await rebuildEvent(ctx, job.data.eventId, { force: job.data.force ?? false })) ? 'rebuilt' : 'locked';
    },
  };

  const lastLoadRequest = new Map<string, number>();
  /** Queues a rebuild of the event (at most one request a second per event), as the API does for a confirm. */
  const requestLoad = (eventId: string | undefined) => {
    if (!eventId) return;
    const now = Date.now();
    if ((lastLoadRequest.get(eventId) ?? 0) > now - 1_000) return;
    lastLoadRequest.set(eventId, now);
    queues.maintenance.add('rebuild', { kind: 'rebuild', eventId }, { jobId: jobIds.rebuild(eventId, `load-${Math.floor(now / 1000)}`) }).catch(() => undefined);
  };

  // BullMQ leaves a connection passed in open when its worker closes: close() disconnects these.
  const workerConnections: RedisClient[] = [];
  const workers = (Object.values(QueueNames) as QueueName[]).map((name) => {
    const connection = createRedis(config, { name: `dropgate-worker-${name}` });
    workerConnections.push(connection);
    const worker = new Worker(
      name,
      async (job: Job) => {
        try {
          return await measuredJob(metrics, name, () => processors[name](job));
        } catch (error) {
          // An event not in Redis (lost, or archived after its season) is loaded again on demand.
          if (error instanceof EventNotLoadedError) requestLoad((job.data as { eventId?: string }).eventId);
          log.debug({ err: error, queue: name, jobId: job.id, attempt: job.attemptsMade }, 'job attempt failed');
          throw error;
        }
      },
      {
        connection,
        prefix,
        concurrency: name === 'maintenance' ? 2 : config.workerConcurrency,
        // A job whose worker died is picked up again after the lock lapses (at-least-once).
        lockDuration: config.jobLockMs,
        stalledInterval: Math.max(250, Math.floor(config.jobLockMs / 2)),
        maxStalledCount: 5,
        ...(name === 'holds' && config.holdsPerSecond > 0 ? { limiter: { max: config.holdsPerSecond, duration: 1_000 } } : {}),
      },
    );
    // At 0 from the start, so an alert on its increase sees the first one.
    metrics.jobsFailedForGood.inc({ queue: name }, 0);
    worker.on('error', (error) => log.warn({ err: error, queue: name }, 'worker error'));
    worker.on('failed', (job, error) => {
      if (!job || !failedForGood(job, error)) return;
      metrics.jobsFailedForGood.inc({ queue: name });
      log.error({ err: error, queue: name, jobId: job.id }, 'job failed for good');
    });
    return worker;
  });

  // Periodic work runs in-process, not as BullMQ repeatable jobs: it must keep running when Redis has
  // lost its data (repeatable job definitions live in Redis). A Redis lock keeps one sweep at a time.
  const timers: NodeJS.Timeout[] = [];
  // A run stalled for a minute (or ten intervals of the sweep) no longer holds its task up.
  const stallMs = Math.max(60_000, 10 * config.sweepIntervalMs);
  const take = async (key: string, ms: number) => (await redis.set(`${prefix}:${key}`, String(process.pid), 'PX', ms, 'NX')) === 'OK';
  const periodic = (what: string, run: () => Promise<unknown>, lock?: { key: string; ms: number }) =>
    periodicTask(what, run, { log, stallMs, ...(lock ? { lock: { take, ...lock } } : {}) });
  const runSweep = periodic('sweep', () => sweep(ctx), { key: 'sweep-lock', ms: Math.max(1_000, config.sweepIntervalMs) });
  const runGuard = periodic('guard', () => guard(ctx));
  const runQueueGuard = periodic('queue guard', () => guardQueues(ctx));
  // Archiving ended seasons: once a minute, one worker at a time.
  const runArchive = periodic('archiving', () => archiveEvents(ctx), { key: 'archive-lock', ms: 50_000 });
  // Orphan orders: every 10 s, one worker at a time.
  const runOrphans = periodic('withdrawing orphan orders', () => withdrawOrphans(ctx), { key: 'orphan-lock', ms: 8_000 });
  // Refunds decided and not done: every 30 s, one worker at a time.
  const runRefunds = periodic('retrying refunds', () => retryRefunds(ctx), { key: 'refund-lock', ms: 25_000 });
  // PortOne's paid payments against the record: every LEDGER_SWEEP_INTERVAL_MS, one worker at a time.
  const runLedger = periodic('sweeping the ledger', () => sweepLedger(ctx), { key: 'ledger-lock', ms: Math.max(1_000, config.ledgerSweepIntervalMs - 1_000) });
  // How far each waiting room has admitted: every second, one worker at a time.
  const runFronts = periodic('recording waiting-room fronts', () => recordQueueFronts(ctx), { key: 'front-lock', ms: 900 });
  // The queues' stamp is checked once at start, and the start waits for that pass (see below).
  const firstQueueGuard = opts.timers !== false ? runQueueGuard() : Promise.resolve();
  if (opts.timers !== false) {
    timers.push(setInterval(() => void runSweep(), config.sweepIntervalMs));
    timers.push(setInterval(() => void runOrphans(), 10_000));
    timers.push(setInterval(() => void runRefunds(), 30_000));
    timers.push(setInterval(() => void runGuard(), 1_000));
    timers.push(setInterval(() => void runQueueGuard(), 1_000));
    timers.push(setInterval(() => void runFronts(), 1_000));
    timers.push(setInterval(() => void runArchive(), 60_000));
    if (config.ledgerSweepIntervalMs > 0) timers.push(setInterval(() => void runLedger(), config.ledgerSweepIntervalMs));
  }
  // The relay always runs: without it no hold is recorded. It polls the active events' hand-off
  // streams every 50 ms (the event list is refreshed every second).
  const consumer = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const relayHandoffs = createHandoffRelay(ctx, consumer);
  let activeEvents: string[] = [];
  let relaying = false;
  let listedAt = 0;
  const runRelay = async () => {
    if (relaying) return;
    relaying = true;
    try {
      if (Date.now() - listedAt > 1_000) {
        activeEvents = await eventsRepo.listActiveEventIds(db, new Date());
        listedAt = Date.now();
      }
      await relayHandoffs(activeEvents);
    } catch (error) {
      log.warn({ err: error }, 'hand-off relay failed; retrying');
    } finally {
      relaying = false;
    }
  };
  timers.push(setInterval(() => void runRelay(), 50));

  let server: Server | null = null;
  let metricsUrl: string | null = null;
  if (opts.metricsServer !== false) {
    server = createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      if (req.url !== '/metrics') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"NOT_FOUND","message":"try /metrics"}');
        return;
      }
      if (!scrapeAllowed(req.headers.authorization, config.metricsToken)) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"code":"UNAUTHORIZED","message":"/metrics needs Authorization: Bearer <METRICS_TOKEN>"}');
        return;
      }
      void collect()
        .then(() => registry.metrics())
        .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
        .catch(() => res.writeHead(500).end());
    });
    // A port taken between the start-up check and here rejects (the entry point names
    // WORKER_METRICS_PORT) instead of crashing the process with an unhandled 'error' event.
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(config.workerMetricsPort, config.host, () => {
        server!.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    metricsUrl = typeof addr === 'object' && addr ? `http://${config.host}:${addr.port}/metrics` : null;
  }

  async function collect(): Promise<void> {
    const [redisUp, pgUp] = await Promise.all([
      checkEveryShard(redis).then((problem) => (problem === null ? 1 : 0), () => 0),
      sql`select 1`.execute(db).then(() => 1, () => 0),
    ]);
    metrics.dependencyUp.set({ dependency: 'redis' }, redisUp);
    metrics.dependencyUp.set({ dependency: 'postgres' }, pgUp);
    if (redisUp) {
      await Promise.all(
        (Object.keys(queues) as QueueName[]).map(async (name) => {
          const counts = await queues[name].getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
          metrics.queueJobs.set({ queue: name, state: 'waiting' }, (counts.waiting ?? 0) + (counts.prioritized ?? 0));
          for (const state of ['active', 'delayed', 'failed', 'completed'] as const) metrics.queueJobs.set({ queue: name, state }, counts[state] ?? 0);
        }),
      );
    }
    if (pgUp) {
      // Active events only: a season that is over stops being reported (Prometheus keeps its history).
      const counts = await ordersRepo.countOrdersByStatus(db, await eventsRepo.listActiveEventIds(db, new Date(ctx.clock.now())));
      metrics.orders.reset();
      for (const row of counts) metrics.orders.set({ event: row.event_id, status: row.status }, row.n);
    }
  }

  // A worker is started once its queues' stamp is checked: fresh queues are stamped before anyone
  // waiting for the start sends buyers, and lost ones are requeued. The first pass used to wait for the
  // guard's timer, a second or more after start on a busy machine: a drop started at once had hundreds
  // of orders by then, and the pass took the missing stamp of fresh queues for lost ones and reconciled
  // every one of them with PortOne (a drop test's queues were still busy with them 45 s on). Its jobs
  // are being processed meanwhile: only the start's promise waits.
  await firstQueueGuard;

  return {
    ctx,
    metricsUrl,
    sweep: () => sweep(ctx),
    metrics: async () => {
      await collect();
      return registry.metrics();
    },
    relay: async () => relayHandoffs(await eventsRepo.listActiveEventIds(db, new Date())),
    guard: () => guard(ctx),
    guardQueues: () => guardQueues(ctx),
    sweepLedger: (o) => sweepLedger(ctx, o),
    archive: () => archiveEvents(ctx),
    withdrawOrphans: (o) => withdrawOrphans(ctx, o),
    retryRefunds: () => retryRefunds(ctx),
    recordQueueFronts: () => recordQueueFronts(ctx),
    async close() {
      for (const t of timers) clearInterval(t);
      redisClock?.stop();
      await Promise.all(workers.map((w) => w.close()));
      for (const connection of workerConnections) connection.disconnect();
      await closeQueues(queues);
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      redis.disconnect();
      bullRedis.disconnect();
      await db.destroy();
    },
  };
}
