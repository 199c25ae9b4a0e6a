/** Operations: liveness, readiness, Prometheus metrics. Outside load shedding on purpose. */
import type { FastifyPluginAsync } from 'fastify';
import { sql } from 'kysely';
import { events as eventsRepo } from '@dropgate/db';
import { eventKeys } from '@dropgate/redis';
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
  checks: { redis: string; postgres: string; inventory: string };
  eventsNotLoaded: string[];
}

export async function checkReadiness(deps: AppDeps): Promise<Readiness> {
  const checks = { redis: 'ok', postgres: 'ok', inventory: 'ok' };
  let eventsNotLoaded: string[] = [];
  const [redisOk, pgOk] = await Promise.all([
    timeout(deps.redis.ping(), 500).then(() => true, () => false),
    timeout(sql`select 1`.execute(deps.db), 1_000).then(() => true, () => false),
  ]);
  deps.metrics.dependencyUp.set({ dependency: 'redis' }, redisOk ? 1 : 0);
  deps.metrics.dependencyUp.set({ dependency: 'postgres' }, pgOk ? 1 : 0);
  if (!redisOk) checks.redis = 'unreachable';
  if (!pgOk) checks.postgres = 'unreachable';
  if (redisOk && pgOk) {
    try {
      const active = await timeout(eventsRepo.listActiveEventIds(deps.db, new Date()), 1_000);
      if (active.length > 0) {
        const pipe = deps.redis.pipeline();
        for (const id of active) pipe.hget(eventKeys(id).meta, 'state');
        const res = (await timeout(pipe.exec(), 500)) ?? [];
        eventsNotLoaded = active.filter((_, i) => res[i]?.[1] !== 'ready');
      }
      if (eventsNotLoaded.length > 0) checks.inventory = `not loaded: ${eventsNotLoaded.length} event(s)`;
    } catch {
      checks.inventory = 'unknown';
    }
  } else {
    checks.inventory = 'unknown';
  }
  const ready = checks.redis === 'ok' && checks.postgres === 'ok' && checks.inventory === 'ok';
  deps.metrics.ready.set(ready ? 1 : 0);
  return { ready, checks, eventsNotLoaded };
}

/** Reads inventory and live holds from Redis into the gauges, at scrape time. */
export async function collectInventory(deps: AppDeps, graceMs: number): Promise<void> {
  const ids = deps.catalog.knownIds();
  if (ids.length === 0) return;
  const now = Date.now();
  const pipe = deps.redis.pipeline();
  for (const id of ids) {
    const k = eventKeys(id);
    pipe.hgetall(k.counts).zcard(k.holds).zcount(k.holds, '-inf', now - graceMs);
  }
  const res = (await timeout(pipe.exec(), 1_000)) ?? [];
  const m = deps.metrics;
  m.inventory.reset();
  m.holdsLive.reset();
  m.holdsOverdue.reset();
  ids.forEach((id, i) => {
    const counts = res[i * 3]?.[1] as Record<string, string> | undefined;
    if (!counts || Object.keys(counts).length === 0) return;
    const n = (f: string) => Number(counts[f] ?? 0);
    if (n('seats_total') > 0) {
      m.inventory.set({ event: id, pool: '', state: 'held' }, n('seats_held'));
      m.inventory.set({ event: id, pool: '', state: 'sold' }, n('seats_sold'));
      m.inventory.set({ event: id, pool: '', state: 'available' }, n('seats_total') - n('seats_held') - n('seats_sold'));
    }
    for (const field of Object.keys(counts)) {
      const match = /^p:(.+):cap$/.exec(field);
      if (!match) continue;
      const pool = match[1]!;
      const held = n(`p:${pool}:held`);
      const sold = n(`p:${pool}:sold`);
      m.inventory.set({ event: id, pool, state: 'held' }, held);
      m.inventory.set({ event: id, pool, state: 'sold' }, sold);
      m.inventory.set({ event: id, pool, state: 'available' }, n(field) - held - sold);
    }
    m.holdsLive.set({ event: id }, Number(res[i * 3 + 1]?.[1] ?? 0));
    m.holdsOverdue.set({ event: id }, Number(res[i * 3 + 2]?.[1] ?? 0));
  });
}

export const opsRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const r = await checkReadiness(deps);
    if (r.ready) return { status: 'ready', checks: r.checks };
    return reply.status(503).send({
      code: 'NOT_READY',
      message: Object.entries(r.checks).filter(([, v]) => v !== 'ok').map(([k, v]) => `${k}: ${v}`).join('; '),
      checks: r.checks,
      events_not_loaded: r.eventsNotLoaded,
    });
  });

  app.get('/metrics', async (_request, reply) => {
    await Promise.all([
      checkReadiness(deps).catch(() => undefined),
      collectInventory(deps, deps.config.sweepIntervalMs * 2 + 30_000).catch(() => undefined),
    ]);
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
};
