/**
 * Drop-sized lifecycle tests: hundreds of orders through confirm with paid, failed, abandoned and late
 * payments, duplicated and lost webhooks; then a worker killed mid-drop, and Redis flushed mid-drop.
 * After everything settles, invariants 1-3 of design.md hold exactly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { startPrivateRedis, eventId, http, waitFor, type PrivateRedis } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { eventKeys } from '@dropgate/redis';
import { createDropEvent, invariantViolations, runDrop, waitSettled } from './support/drop.ts';
import { compileCacheEnv } from '@dropgate/config';

// Each test closes its stack when it ends: several open at once would crowd Postgres's connections.
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(opts: { redis?: PrivateRedis; worker?: boolean } = {}): Promise<{ sim: Simulator; stack: TestStack }> {
  const sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50, webhook_loss: 0.2, webhook_duplicates: 1 } });
  const stack = await startStack({
    label: 'drop', portoneUrl: sim.url, worker: opts.worker ?? true,
    ...(opts.redis ? { redisUrl: opts.redis.url } : {}),
    env: { EXPIRY_GRACE_SECONDS: '30', JOB_LOCK_MS: '2000' },
  });
  cleanups.push(async () => { await stack.close(); await sim.close(); });
  return { sim, stack };
}

describe('a drop settles with invariants 1-3 intact', () => {
  it('hundreds of orders: paid, failed, abandoned, late; lost and duplicated webhooks', async () => {
    const { sim, stack } = await setup();
    const id = eventId('drop');
    await createDropEvent(stack.url, id, 60, 60, 5, stack.config.adminToken!);
    const result = await runDrop({ api: stack.url, sim, eventId: id, orders: 300, seats: 60, pool: 60, shares: { failed: 0.15, abandoned: 0.15, late: 0.15 } });
    expect(result.confirmCodes.APPROVED).toBeGreaterThan(30);
    expect(result.confirmCodes.SOLD_OUT).toBeGreaterThan(30);
    const settleMs = await waitSettled(stack.api.deps.db, stack.store, sim, id, stack.url, 40_000);
    console.log((await invariantViolations(stack.api.deps.db, stack.store, sim, id, stack.url)).join('\n'));
    console.log(`drop of 300 orders settled ${settleMs} ms after the last payment window; confirms ${JSON.stringify(result.confirmCodes)}`);
    expect(await invariantViolations(stack.api.deps.db, stack.store, sim, id, stack.url)).toEqual([]);
    const ledger = sim.ledger();
    expect(ledger.payments.filter((p) => p.status === 'paid').length).toBeGreaterThan(20);
    expect(ledger.webhooks.some((w) => w.lost)).toBe(true);
  }, 180_000);

  it('the worker process killed with SIGKILL mid-drop and restarted: every hold still ends correctly', async () => {
    const { sim, stack } = await setup({ worker: false });
    const children: ChildProcess[] = [];
    const spawnWorker = () => {
      const child = spawn(process.execPath, ['services/worker/src/main.ts'], {
        env: {
          PATH: process.env.PATH ?? '', ...compileCacheEnv(), DATABASE_URL: stack.config.databaseUrl, REDIS_URL: stack.config.redisUrl, QUEUE_PREFIX: stack.prefix,
          JOB_LOCK_MS: '2000', WORKER_CONCURRENCY: '8', WORKER_METRICS_PORT: '0', LOG_LEVEL: 'silent', PORTONE_API_URL: sim.url, PORTONE_IMP_KEY: 'k', PORTONE_IMP_SECRET: 's',
          SWEEP_INTERVAL_MS: '500', EXPIRY_GRACE_SECONDS: '30', LATE_PAYMENT_WATCH_SECONDS: '16',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(child);
      return child;
    };
    cleanups.push(async () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); });
    const id = eventId('kill');
    await createDropEvent(stack.url, id, 50, 50, 5, stack.config.adminToken!);
    let first: ChildProcess | null = spawnWorker();
    let killed = false;
    await runDrop({
      api: stack.url, sim, eventId: id, orders: 200, seats: 50, pool: 50, shares: { failed: 0.15, abandoned: 0.15, late: 0.1 },
      onProgress: async (done) => {
        if (done === 100 && first) {
          first.kill('SIGKILL');
          killed = true;
          first = null;
          await new Promise((r) => setTimeout(r, 300));
          spawnWorker();
        }
      },
    });
    expect(killed).toBe(true);
    await waitSettled(stack.api.deps.db, stack.store, sim, id, stack.url);
    expect(await invariantViolations(stack.api.deps.db, stack.store, sim, id, stack.url)).toEqual([]);
  }, 180_000);

  it('FLUSHALL mid-drop: confirms refused until rebuilt, then the drop goes on; nothing sold twice, every paid payment ticketed or refunded', async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.stop());
    const { sim, stack } = await setup({ redis });
    const control = new Redis(redis.url);
    cleanups.push(async () => control.disconnect());
    const id = eventId('flush');
    await createDropEvent(stack.url, id, 50, 50, 5, stack.config.adminToken!);
    let flushed = false;
    let sawNotReady = false;
    const result = await runDrop({
      api: stack.url, sim, eventId: id, orders: 200, seats: 50, pool: 50, shares: { failed: 0.1, abandoned: 0.1, late: 0.1 }, concurrency: 8,
      onProgress: async (done) => {
        if (done === 80 && !flushed) {
          flushed = true;
          // The flush and the event's rebuild lock in one transaction: no rebuild can start until the
          // lock goes, so the event is certainly not whole while readiness is asked (the guard looks
          // every second; under load it used to rebuild before the probe was answered).
          const lock = eventKeys(id).rebuildLock;
          await control.multi().flushall().set(lock, 'held by the test', 'PX', 60_000).exec();
          // Until it is rebuilt the event is not whole: readiness fails and confirms are refused.
          const ready = await http(stack.url, 'GET', '/readyz');
          if (ready.status === 503) sawNotReady = true;
          await control.del(lock);
          await waitFor(async () => (await stack.store.eventState(id)) === 'ready', 15_000, 'the rebuild');
        }
      },
    });
    expect(flushed).toBe(true);
    expect(sawNotReady).toBe(true);
    expect(result.confirmCodes.APPROVED).toBeGreaterThan(0);
    await waitSettled(stack.api.deps.db, stack.store, sim, id, stack.url);
    expect(await invariantViolations(stack.api.deps.db, stack.store, sim, id, stack.url)).toEqual([]);
  }, 180_000);
});

describe('the invariant check can fail', () => {
  it('reports a ticket without money, and Redis and Postgres disagreeing', async () => {
    const { sim, stack } = await setup();
    const id = eventId('broken');
    await createDropEvent(stack.url, id, 5, 5, 300, stack.config.adminToken!);
    const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'x', seats: ['D-1-1'] });
    await stack.api.deps.db.insertInto('tickets').values({ event_id: id, merchant_uid: o.body.merchant_uid, imp_uid: 'imp_forged', seat_id: 'D-1-1' }).execute();
    const problems = await invariantViolations(stack.api.deps.db, stack.store, sim, id, stack.url);
    expect(problems).toContain('1. seats: Redis counts 0 sold, Postgres has 1 seat tickets');
    expect(problems.some((p) => p.startsWith('2.') && p.includes('imp_forged, which PortOne never saw'))).toBe(true);
  });
});
