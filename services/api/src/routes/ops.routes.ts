/** Operations: liveness, readiness, Prometheus metrics. Outside load shedding on purpose. */
import { BlockList, isIPv4 } from 'node:net';
import type { FastifyPluginAsync } from 'fastify';
import { sql } from 'kysely';
import { events as eventsRepo } from '@dropgate/db';
import { checkEveryShard } from '@dropgate/redis';
import { scrapeAllowed } from '@dropgate/telemetry';
import type { AppDeps } from '../deps.ts';

function timeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), ms); }),
  ]);
}

export interface Readiness {
  ready: boolean;
  checks: { redis: string; postgres: string; inventory: string; clock: string };
  eventsNotLoaded: string[];
}

export async function checkReadiness(deps: AppDeps): Promise<Readiness> {
  const checks = { redis: 'ok', postgres: 'ok', inventory: 'ok', clock: 'ok' };
  // An API that never measured its offset from Redis's clock decides by its host's alone (see RedisClock).
  if ((deps.clock as { everMeasured?: boolean }).everMeasured === false) checks.clock = 'not measured against Redis';
  let eventsNotLoaded: string[] = [];
  const [redisOk, pgOk] = await Promise.all([
    // Every shard: an event on a shard that is down cannot be served (one ping on a single Redis).
    timeout(checkEveryShard(deps.redis, 500), 700).then((problem) => problem === null, () => false),
    timeout(sql`select 1`.execute(deps.db), 1_000).then(() => true, () => false),
  ]);
  deps.metrics.dependencyUp.set({ dependency: 'redis' }, redisOk ? 1 : 0);
  deps.metrics.dependencyUp.set({ dependency: 'postgres' }, pgOk ? 1 : 0);
  if (!redisOk) checks.redis = 'unreachable';
  if (!pgOk) checks.postgres = 'unreachable';
  if (redisOk && pgOk) {
    try {
      const active = await timeout(eventsRepo.listActiveEventIds(deps.db, new Date(deps.clock.now())), 1_000);
      const states = await timeout(deps.store.eventStates(active), 500);
      eventsNotLoaded = active.filter((id) => states.get(id) !== 'ready');
      if (eventsNotLoaded.length > 0) checks.inventory = `not loaded: ${eventsNotLoaded.length} event(s)`;
    } catch {
      checks.inventory = 'unknown';
    }
  } else {
    checks.inventory = 'unknown';
  }
  const ready = checks.redis === 'ok' && checks.postgres === 'ok' && checks.inventory === 'ok' && checks.clock === 'ok';
  deps.metrics.ready.set(ready ? 1 : 0);
  return { ready, checks, eventsNotLoaded };
}

/** Reads inventory and live holds from Redis into the gauges, at scrape time. */
export async function collectInventory(deps: AppDeps, graceMs: number): Promise<void> {
  const ids = deps.catalog.knownIds();
  if (ids.length === 0) return;
  const all = (await timeout(deps.store.inventories(ids, deps.clock.now() - graceMs), 1_000)) ?? new Map();
  const m = deps.metrics;
  m.inventory.reset();
  m.holdsLive.reset();
  m.holdsOverdue.reset();
  for (const [id, inv] of all) {
    if (!inv) continue;
    const places = [...(inv.seats ? [['', inv.seats] as const] : []), ...inv.pools];
    for (const [pool, c] of places) {
      m.inventory.set({ event: id, pool, state: 'held' }, c.held);
      m.inventory.set({ event: id, pool, state: 'sold' }, c.sold);
      m.inventory.set({ event: id, pool, state: 'available' }, c.available);
    }
    m.holdsLive.set({ event: id }, inv.liveHolds);
    m.holdsOverdue.set({ event: id }, inv.overdueHolds);
  }
}

/** Reads the waiting rooms and waiting lists of the events that have them into the gauges, at scrape time. */
export async function collectQueues(deps: AppDeps): Promise<void> {
  const m = deps.metrics;
  m.queueWaiting.reset();
  m.queueActive.reset();
  m.queueAdmitted.reset();
  m.queuePace.reset();
  m.waitlistWaiting.reset();
  m.waitlistOffers.reset();
  for (const id of deps.catalog.knownIds()) {
    // Only events this process has served (their definition is loaded): a room or list nobody used
    // here has nothing to show, and a scrape must not load every event's seat map.
    const def = deps.catalog.peek(id);
    if (def?.waitlistOfferTtlSeconds !== null && def?.waitlistOfferTtlSeconds !== undefined) {
      const w = await timeout(deps.store.waitlists.counts(id), 1_000);
      if (w) {
        m.waitlistWaiting.set({ event: id }, w.waiting);
        m.waitlistOffers.set({ event: id }, w.offers);
      }
    }
    if (!def?.waitingRoom) continue;
    const q = await timeout(deps.store.queues.snapshot(id), 1_000);
    if (!q) continue;
    m.queueWaiting.set({ event: id }, q.waiting);
    m.queueActive.set({ event: id }, q.active);
    m.queueAdmitted.set({ event: id }, q.admitted);
    m.queuePace.set({ event: id }, def.waitingRoom.mode === 'dynamic' ? q.pace ?? def.waitingRoom.admit_per_second : def.waitingRoom.admit_per_second);
  }
}

/**
 * Shares `work` between callers: one run at a time, and a run that started less than `reuseMs` ago
 * (or is still running) answers every caller. Readiness and the scrape-time gauges read Redis and
 * Postgres (a readiness check cost Postgres about 0.6 ms, a scrape 0.5 ms and 20 Redis commands): a
 * public endpoint flooded with them must not cost one read each.
 */
export function shared<T>(work: () => Promise<T>, reuseMs: number, now: () => number = () => performance.now()): () => Promise<T> {
  let last: { at: number; result: Promise<T>; running: boolean } | null = null;
  return () => {
    const t = now();
    if (last && (last.running || t - last.at < reuseMs)) return last.result;
    const run: { at: number; result: Promise<T>; running: boolean } = { at: t, result: work(), running: true };
    last = run;
    void run.result.then(() => { run.running = false; }, () => { run.running = false; if (last === run) last = null; });
    return run.result;
  };
}

/** Loopback, private and link-local addresses: where Prometheus scrapes from without METRICS_TOKEN. */
const PRIVATE_NETWORKS = new BlockList();
for (const [net, bits] of [['127.0.0.0', 8], ['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['169.254.0.0', 16]] as const) {
  PRIVATE_NETWORKS.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [['::1', 128], ['fc00::', 7], ['fe80::', 10]] as const) PRIVATE_NETWORKS.addSubnet(net, bits, 'ipv6');

/** Whether `ip` (as TRUST_PROXY resolves the client) is a loopback, private or link-local address. */
export function privateAddress(ip: string): boolean {
  const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  try {
    return PRIVATE_NETWORKS.check(bare, isIPv4(bare) ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
}

/** How long a scrape's reading of the gauges answers the scrapes after it (ms). */
export const OPS_REUSE_MS = 250;

export const opsRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  // Readiness answers what is true when it is asked (a probe right after a change sees it), so a
  // check is shared only while it runs: one check at a time per process, however many probes.
  const readiness = shared(() => checkReadiness(deps), 0);
  const gauges = shared(() => Promise.all([
    readiness().catch(() => undefined),
    collectInventory(deps, deps.config.sweepIntervalMs * 2 + 30_000).catch(() => undefined),
    collectQueues(deps).catch(() => undefined),
  ]).then(() => undefined), OPS_REUSE_MS);

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const r = await readiness();
    if (r.ready) return { status: 'ready', checks: r.checks };
    return reply.status(503).send({
      code: 'NOT_READY',
      message: Object.entries(r.checks).filter(([, v]) => v !== 'ok').map(([k, v]) => `${k}: ${v}`).join('; '),
      checks: r.checks,
      events_not_loaded: r.eventsNotLoaded,
    });
  });

  app.get('/metrics', async (request, reply) => {
    // What the metrics show (every event, its sales and queues) is the operator's: with METRICS_TOKEN,
    // only a scrape carrying it; without, only a scrape from a loopback or private address (a
    // Prometheus beside the API), as TRUST_PROXY resolves the client.
    if (deps.config.metricsToken === undefined && !privateAddress(request.ip)) {
      return reply.status(403).send({ code: 'FORBIDDEN', message: '/metrics answers private addresses only; set METRICS_TOKEN to scrape from elsewhere' });
    }
    if (!scrapeAllowed(request.headers.authorization, deps.config.metricsToken)) {
      return reply.status(401).send({ code: 'UNAUTHORIZED', message: '/metrics needs Authorization: Bearer <METRICS_TOKEN>' });
    }
    // The counters and histograms are the process's own, exact at every scrape; the gauges read from
    // Redis and Postgres are at most OPS_REUSE_MS old.
    await gauges();
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
};
