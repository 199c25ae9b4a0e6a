/**
 * The real stack a campaign runs against, all of it private to the campaign: a redis-server and a
 * Postgres cluster of its own (FLUSHALL and restarts must not touch the shared servers), the PortOne
 * simulator in this process, and the API and the worker as child processes (the worker is SIGKILLed
 * and restarted; a process that dies by itself is reported and restarted).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { compileCacheEnv } from '@dropgate/config';
import { createDb, type Db } from '@dropgate/db';
import { createRedis } from '@dropgate/redis';
import { closeQueues, createQueues, type Queues } from '@dropgate/jobs';
import { newWebhookSecret, startSimulator, type Faults, type Simulator } from '@dropgate/portone-sim';
import { freePort, startPrivatePostgres, startPrivateRedis, type PrivatePostgres, type PrivateRedis } from '@dropgate/testkit';
import { startConfirmInterceptor, type ConfirmInterceptor } from './interceptor.ts';
import { Supervised, type ProcessCrash } from './processes.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Delivery settings of every webhook: 8 retries 600 ms apart instead of 5 a minute apart (PortOne's),
 * so a webhook refused or unanswered during a fault (a restarting API) is retried within the
 * scenario; a held-back (reordered) webhook released after 1.5 s.
 */
export const BASE_FAULTS: Faults = Object.freeze({
  webhook_retries: 8,
  webhook_retry_ms: 600,
  webhook_timeout_ms: 5_000,
  webhook_reorder_max_hold_ms: 1_500,
});

/**
 * Timing of the stack, short so a scenario settles in seconds. The late-payment watch (8 s) outlasts
 * the latest payment a scenario makes: 1.5 s after its hold's TTL, and at most 6.5 s after another
 * payment of the same order settled it.
 */
export const STACK_TIMING = Object.freeze({
  SWEEP_INTERVAL_MS: '500',
  EXPIRY_GRACE_SECONDS: '15',
  LATE_PAYMENT_WATCH_SECONDS: '8',
  JOB_LOCK_MS: '1000',
  /**
   * The ledger sweep every second, reading every payment up to now: it races the webhooks, the
   * verifications and the expiries of every payment, as it would a webhook lost in production.
   */
  LEDGER_SWEEP_INTERVAL_MS: '1000',
  LEDGER_SETTLE_DELAY_MS: '0',
  /** The default, stated: an approval PortOne timed past it (and a slack) was approved late. */
  CONFIRM_BUDGET_MS: '3000',
});

export interface ChaosStack {
  readonly apiUrl: string;
  readonly confirmUrl: string;
  readonly noticeUrl: string;
  /** PortOne V2: the signed confirm call, the signed webhooks, the browser's manual confirmation. */
  readonly v2ConfirmUrl: string;
  readonly v2WebhookUrl: string;
  readonly v2ManualConfirmUrl: string;
  /** A confirm_url in front of the API that sends a forged confirm first (see interceptor.ts). */
  readonly interceptor: ConfirmInterceptor;
  readonly adminToken: string;
  readonly sim: Simulator;
  /** The campaign's own connections, for the checks. */
  readonly db: Db;
  readonly redis: Redis;
  readonly queues: Queues;
  readonly logDir: string;
  /** Processes that died by themselves, since the campaign started. */
  readonly crashes: readonly ProcessCrash[];
  killWorker(downMs: number): Promise<void>;
  /** SIGKILLs the API (requests in flight fail) and starts it again after `downMs`. */
  killApi(downMs: number): Promise<void>;
  /** `CLIENT PAUSE <ms> ALL`: every client's commands wait until the pause ends. */
  pauseRedis(ms: number): Promise<void>;
  /** SIGSTOP the worker for `ms`, then SIGCONT. @returns false when it was not running. */
  stallWorker(ms: number): Promise<boolean>;
  /**
   * The same, at the moment the worker next asks PortOne about a payment (within `withinMs`), before
   * PortOne answers: the worker is frozen in the middle of a settlement, holding its order's lock.
   * @returns 'stalled', 'not-running', or 'no-lookup' when none came in time.
   */
  stallWorkerOnLookup(ms: number, withinMs: number): Promise<'stalled' | 'not-running' | 'no-lookup'>;
  flushRedis(): Promise<void>;
  restartPostgres(downMs: number): Promise<void>;
  restOutage(mode: 'down' | 'flaky', rate: number, durationMs: number): Promise<void>;
  /** Waits until the API and the worker run (after a crash and its restart). */
  ensureRunning(): Promise<void>;
  close(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  await res.arrayBuffer();
  return res.status === 200;
}

/**
 * Starts everything; `logDir` receives the API's, the workers' and Postgres's logs. `workers` (default
 * 1): worker processes; the faults (SIGKILL, SIGSTOP) strike the first.
 */
export async function startChaosStack(opts: { logDir: string; log?: (line: string) => void; workers?: number }): Promise<ChaosStack> {
  mkdirSync(opts.logDir, { recursive: true });
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const redisServer: PrivateRedis = await startPrivateRedis();
    closers.push(() => redisServer.stop());
    const pgServer: PrivatePostgres = await startPrivatePostgres();
    closers.push(() => pgServer.destroy());
    const databaseUrl = pgServer.url.replace(/\/postgres$/, '/dropgate');

    const impKey = `chaos-${randomBytes(4).toString('hex')}`;
    const impSecret = randomBytes(16).toString('hex');
    // V2: secrets generated per campaign; the simulator signs with the webhook secret dropgate checks.
    const webhookSecret = newWebhookSecret();
    const storeId = `store-chaos-${randomBytes(4).toString('hex')}`;
    const v2ApiSecret = randomBytes(16).toString('hex');
    const sim = await startSimulator({ impKey, impSecret, faults: { ...BASE_FAULTS }, logLevel: 'silent', webhookSecret, storeId, v2ApiSecret });
    closers.push(() => sim.close());

    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const adminToken = `chaos-admin-${randomBytes(12).toString('hex')}`;
    const prefix = `{chaos-${randomBytes(5).toString('hex')}}`;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      ...compileCacheEnv(),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisServer.url,
      ADMIN_TOKEN: adminToken,
      PORTONE_API_URL: sim.url,
      PORTONE_IMP_KEY: impKey,
      PORTONE_IMP_SECRET: impSecret,
      PORTONE_V2_API_URL: sim.url,
      PORTONE_V2_API_SECRET: v2ApiSecret,
      PORTONE_V2_STORE_ID: storeId,
      PORTONE_WEBHOOK_SECRET: webhookSecret,
      QUEUE_PREFIX: prefix,
      LOG_LEVEL: 'warn',
      WORKER_CONCURRENCY: '8',
      WORKER_NICE: '0',
      ...STACK_TIMING,
    };
    const crashes: ProcessCrash[] = [];
    const onCrash = (c: ProcessCrash) => {
      crashes.push(c);
      opts.log?.(`!! ${c.name} exited by itself (code ${c.code}, signal ${c.signal}); restarting it`);
    };
    const api = new Supervised({
      name: 'api', script: join(REPO, 'services/api/src/server.ts'), env: { ...env, PORT: String(apiPort), WORKER_METRICS_PORT: '0' },
      logFile: join(opts.logDir, 'api.log'), ready: () => answers(`${apiUrl}/healthz`), onCrash,
    });
    /** A worker process named `name` (its log `<name>.log`), serving its metrics on `port`. */
    const workerProcess = (name: string, port: number) => new Supervised({
      name, script: join(REPO, 'services/worker/src/main.ts'), env: { ...env, PORT: '0', WORKER_METRICS_PORT: String(port) },
      logFile: join(opts.logDir, `${name}.log`), ready: () => answers(`http://127.0.0.1:${port}/healthz`), onCrash,
    });
    const worker = workerProcess('worker', workerPort);
    // Standby workers (`workers` > 1): no fault strikes them; they take the first one's jobs and order
    // locks over while it is dead or frozen (its stalled jobs after BullMQ's stalled check).
    const standby: Supervised[] = [];
    for (let n = 2; n <= (opts.workers ?? 1); n++) standby.push(workerProcess(`worker-${n}`, await freePort()));
    // The API creates the database and migrates it; the workers start after.
    await api.start();
    closers.push(() => api.close());
    await worker.start();
    closers.push(() => worker.close());
    for (const w of standby) {
      await w.start();
      closers.push(() => w.close());
    }

    const interceptor = await startConfirmInterceptor(`${apiUrl}/portone/v1/confirm`);
    closers.push(() => interceptor.close());
    const db = createDb(databaseUrl, { max: 4 });
    closers.push(() => db.destroy());
    const redis = createRedis(redisServer.url, { name: 'chaos-checks' });
    closers.push(async () => redis.disconnect());
    const queueRedis = createRedis(redisServer.url, { name: 'chaos-queues' });
    const queues = createQueues(queueRedis, prefix);
    closers.push(async () => {
      await closeQueues(queues);
      queueRedis.disconnect();
    });

    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    return {
      apiUrl,
      confirmUrl: `${apiUrl}/portone/v1/confirm`,
      noticeUrl: `${apiUrl}/portone/v1/webhook`,
      v2ConfirmUrl: `${apiUrl}/portone/v2/confirm`,
      v2WebhookUrl: `${apiUrl}/portone/v2/webhook`,
      v2ManualConfirmUrl: `${apiUrl}/portone/v2/manual-confirm`,
      interceptor,
      adminToken,
      sim,
      db,
      redis,
      queues,
      logDir: opts.logDir,
      crashes,
      async killWorker(downMs) {
        await worker.kill('SIGKILL');
        if (downMs > 0) await sleep(downMs);
        await worker.start();
      },
      stallWorker(ms) {
        return worker.stall(ms);
      },
      stallWorkerOnLookup(ms, withinMs) {
        return new Promise((resolve) => {
          const timer = setTimeout(() => {
            sim.onRestCall(null);
            resolve('no-lookup');
          }, withinMs);
          // A payment's lookup (V1 and V2: GET /payments/<id> or ?imp_uid[]=), not a ledger page
          // (/payments/status/...) or a token. Its answer waits until the worker is stopped.
          sim.onRestCall((call) => {
            if (call.method !== 'GET' || !call.url.startsWith('/payments') || call.url.startsWith('/payments/status')) return;
            sim.onRestCall(null);
            clearTimeout(timer);
            return new Promise<void>((stopped) => {
              worker.stall(ms, stopped)
                .then((ran) => resolve(ran ? 'stalled' : 'not-running'))
                .catch(() => resolve('not-running'))
                .finally(() => stopped());
            });
          });
        });
      },
      async killApi(downMs) {
        await api.kill('SIGKILL');
        if (downMs > 0) await sleep(downMs);
        await api.start();
      },
      async pauseRedis(ms) {
        // The pause applies from the next command on, this connection's too: the checks wait it out.
        await redis.call('CLIENT', 'PAUSE', String(ms), 'ALL');
        await sleep(ms);
      },
      async flushRedis() {
        await redis.flushall();
      },
      async restartPostgres(downMs) {
        await pgServer.stop('fast');
        if (downMs > 0) await sleep(downMs);
        await pgServer.start();
      },
      async restOutage(mode, rate, durationMs) {
        sim.setFaults({ ...BASE_FAULTS, ...(mode === 'down' ? { rest_down: true } : { rest_failure_rate: rate }) });
        try {
          await sleep(durationMs);
        } finally {
          sim.setFaults({ ...BASE_FAULTS });
        }
      },
      async ensureRunning() {
        await api.start();
        await worker.start();
        for (const w of standby) await w.start();
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
