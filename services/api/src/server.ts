/**
 * `npm run api`: reads the configuration, migrates the database (creating it if missing), builds the
 * API and listens; closes gracefully on SIGINT/SIGTERM.
 */
import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { assertRedisReachable, closeOnSignals, exitOnStartupFailure, loadConfigOrExit, type Config } from '@dropgate/config';
import type { Clock } from '@dropgate/domain';
import { openDatabase } from '@dropgate/db';
import { HoldStore, RedisClock, clockKey, createRedis, whenReady } from '@dropgate/redis';
import { createQueues, closeQueues } from '@dropgate/jobs';
import { PortOneV2Client } from '@dropgate/portone';
import { clockReporter, createApiMetrics, createRegistry } from '@dropgate/telemetry';
import { buildApp, requestLogSerializer, type AppDeps } from './app.ts';
import { EventCatalog } from './lib/catalog.ts';
import { limitConnections } from './lib/connection-limit.ts';
import type { FastifyInstance } from 'fastify';

export interface RunningApi {
  app: FastifyInstance;
  deps: AppDeps;
  url: string;
  /** `/metrics` on this process's own port (API_METRICS_PORT + its index), or null when that is off. */
  metricsUrl: string | null;
  close(): Promise<void>;
}

/** This process's index among the API processes `npm start` runs (0 when run alone). */
function apiIndex(): number {
  const i = Number(process.env['DROPGATE_API_INDEX'] ?? 0);
  return Number.isInteger(i) && i >= 0 ? i : 0;
}

/** Connections the metrics port keeps at once: a scraper or two, and load balancer probes. */
export const METRICS_PORT_MAX_CONNECTIONS = 32;
/** A scraper sends its request as it connects: one that has not sent it whole by then is cut off (ms). */
export const METRICS_PORT_REQUEST_TIMEOUT_MS = 2_000;

/**
 * `/metrics` and `/healthz` of this API process on a port of its own: API processes that share PORT
 * (the kernel hands each connection to one of them) cannot be scraped one by one through it. The
 * requests go through the app's own routes (the same token and address checks, the same gauges);
 * nothing else is served there. It is scraped directly, never through a proxy, so what a client says
 * of its address (`X-Forwarded-For`, ...) is dropped before the address check, whatever TRUST_PROXY
 * says of the public port. Its connections are at most METRICS_PORT_MAX_CONNECTIONS (one that comes at
 * the bound makes room, as on the public port), a request must arrive within
 * METRICS_PORT_REQUEST_TIMEOUT_MS, and a connection kept alive after an answer is closed after 5 s:
 * idle connections to it had used up the process's open files and ended it (attack round 14).
 */
async function listenForMetrics(app: FastifyInstance, config: Config, port: number): Promise<{ server: Server; url: string }> {
  const host = config.host;
  const requestTimeout = Math.min(config.requestTimeoutMs, METRICS_PORT_REQUEST_TIMEOUT_MS);
  const server = createServer({ requestTimeout, headersTimeout: requestTimeout, connectionsCheckingInterval: 250 }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/metrics' || path === '/healthz') {
      for (const name of Object.keys(req.headers)) if (name.startsWith('x-forwarded-') || name === 'forwarded') delete req.headers[name];
      app.routing(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json', connection: 'close' }).end('{"code":"NOT_FOUND","message":"this port serves /metrics and /healthz only"}');
  });
  server.keepAliveTimeout = 5_000;
  server.setTimeout(config.connectionTimeoutMs, (socket) => socket.destroy());
  limitConnections(server, METRICS_PORT_MAX_CONNECTIONS);
  // A port taken meanwhile rejects (the entry point names API_METRICS_PORT) instead of an unhandled 'error'.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // This process's own port: it accepts its connections itself, and its bound holds.
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return { server, url: `http://${host}:${typeof addr === 'object' && addr ? addr.port : port}/metrics` };
}

/** PortOne's confirm deadline: no API request waits longer on one Redis command. */
export const REDIS_COMMAND_TIMEOUT_MS = 5_000;

/** Starts the API with `config`; used by `npm run api`, `npm start`, the drop runner and tests. */
export async function startApi(config: Config, opts: { logger?: boolean; queuePrefix?: string; clock?: Clock } = {}): Promise<RunningApi> {
  const db = await openDatabase(config.databaseUrl, { max: 10 });
  // No request waits on Redis forever: on a Redis Cluster whose primary died, ioredis can leave a
  // pipeline's commands queued on a live connection and never written (seen in the failover
  // rehearsal: an order request unanswered for a minute, now and then). A command unanswered after
  // PortOne's confirm deadline fails, and the request answers 503 like any Redis failure.
  const redis = createRedis(config, { failFast: true, autoPipelining: true, name: 'dropgate-api', commandTimeoutMs: REDIS_COMMAND_TIMEOUT_MS });
  // BullMQ needs its own connection with retries (maxRetriesPerRequest: null) for blocking commands.
  const queueRedis = createRedis(config, { failFast: false, autoPipelining: true, name: 'dropgate-api-queues' });
  const queues = createQueues(queueRedis, opts.queuePrefix ?? config.queuePrefix);
  const store = new HoldStore(redis, config.orderLimits);
  const catalog = new EventCatalog(db);
  await catalog.start();
  const registry = createRegistry();
  const metrics = createApiMetrics(registry, config.confirmBudgetMs);
  // Every decision's time: Redis's clock (see RedisClock), unless a test gives its own.
  const redisClock = opts.clock ? null : new RedisClock(redis, { key: clockKey(opts.queuePrefix ?? config.queuePrefix), onResult: clockReporter(metrics) });
  const clock: Clock = opts.clock ?? redisClock!;
  const onRequest = (endpoint: string, result: string, seconds: number) => {
    metrics.portoneRequests.inc({ endpoint, result });
    metrics.portoneDuration.observe({ endpoint }, seconds);
  };
  // The buyer waits on these calls (manual confirmation, pre-registration): short attempts, one retry.
  const portoneV2 = config.portone.v2ApiSecret
    ? new PortOneV2Client({
        baseUrl: config.portone.v2ApiUrl, secret: config.portone.v2ApiSecret, storeId: config.portone.v2StoreId,
        timeoutMs: Math.min(2000, config.portone.v2ConfirmTimeoutMs), retries: 1, backoffMs: 100, onRequest,
      })
    : null;
  const logger = opts.logger === false ? false : { level: config.logLevel, serializers: { req: requestLogSerializer } };
  const app = await buildApp({ config, db, redis, store, queues, catalog, registry, metrics, clock, portoneV2 }, { logger });
  // Requests are taken once the confirm's Redis client is ready: it keeps no offline queue, so a
  // request before then (a machine under load, a slow first connection) would be answered 503. A
  // Redis still unreachable after a few seconds does not keep the API down: readiness says 503 and
  // requests are refused until the client connects.
  await whenReady(redis, 5_000);
  await redisClock?.start();
  // Several API processes (npm start with API_PROCESSES > 1) each listen on PORT themselves, with
  // SO_REUSEPORT: the kernel spreads the connections over them, and no other process holds any.
  const shared = config.apiProcesses > 1 ? { reusePort: true } : {};
  const address = await app.listen({ port: config.port, host: config.host, ...shared } as { port: number; host: string });
  const own = config.apiMetricsPort > 0 ? await listenForMetrics(app, config, config.apiMetricsPort + apiIndex()) : null;
  return {
    app,
    deps: { config, db, redis, store, queues, catalog, registry, metrics, clock, portoneV2 },
    url: address,
    metricsUrl: own?.url ?? null,
    async close() {
      if (own) {
        own.server.closeAllConnections();
        await new Promise<void>((resolve) => own.server.close(() => resolve()));
      }
      await app.close();
      redisClock?.stop();
      catalog.stop();
      await closeQueues(queues);
      redis.disconnect();
      queueRedis.disconnect();
      await db.destroy();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const log = pino({ name: 'dropgate-api' });
  const config = loadConfigOrExit((m) => log.fatal(m));
  if (!config.adminToken) log.warn('ADMIN_TOKEN is not set: the admin API answers 401. Set ADMIN_TOKEN=<at least 16 characters> to enable it.');
  if (config.buyerTokenSecrets.length === 0) {
    log.info('BUYER_TOKEN_SECRET is not set: buyer ids are taken on the caller\'s word, and orders per buyer are not bounded (see the README\'s Security section)');
  }
  // A port in use, Postgres or Redis unreachable, a database that cannot be created: one line naming
  // the variable to change (exit 2), not a stack trace. The API serves while Redis restarts, but
  // starting without it would only answer 503 to everyone.
  let api: RunningApi;
  try {
    await assertRedisReachable(createRedis(config, { failFast: true, name: 'dropgate-api-probe' }), config);
    api = await startApi(config);
  } catch (error) {
    exitOnStartupFailure('dropgate-api', error, config);
  }
  closeOnSignals('dropgate-api', () => api.close(), { timeoutMs: config.shutdownTimeoutMs, log: (m, fields) => log.info(fields, m) });
}
