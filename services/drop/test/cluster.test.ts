/**
 * Issue 12: rehearsal drops on a real Redis Cluster (3 primaries, 3 replicas, private to this file)
 * against `npm start` with API_PROCESSES=2 and WORKER_PROCESSES=2 (four OS processes):
 * - two drops at once, on events whose keys live on different shards: every invariant holds;
 * - a drop whose event's primary (also the job queues' primary) is SIGKILLed mid-drop: the replica takes
 *   over, holds and jobs acknowledged but not replicated may vanish, and the guard rebuilds the event
 *   from Postgres; every invariant holds
 *   (no oversell, every paid payment ticketed or refunded, every hold ended, Redis = Postgres).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { createTestDatabase, eventId, freePort, rand, startPrivateCluster, TEST_ADMIN_TOKEN, waitFor, type PrivateCluster, type TestDatabase } from '@dropgate/testkit';
import { HoldStore, eventKeys } from '@dropgate/redis';
import { closeQueues, createQueues } from '@dropgate/jobs';
import { runDrop, type DropResult } from '../src/index.ts';
import { smallOptions } from './helpers.ts';

const root = resolve(import.meta.dirname, '..', '..', '..');
const NODE = join(root, 'node_modules', '.bin', 'node');

let cluster: PrivateCluster;
let sim: Simulator;
let db: TestDatabase;
let stack: ChildProcess;
let apiUrl: string;
let output = '';
let env: Record<string, string>;
let redis: Cluster;

beforeAll(async () => {
  [cluster, sim, db] = await Promise.all([
    // Failure detected within 1 s: the failover test waits less.
    startPrivateCluster({ nodeTimeoutMs: 1_000 }),
    startSimulator({ port: 0, logLevel: 'silent' }),
    createTestDatabase('cluster_drop'),
  ]);
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    DATABASE_URL: db.url,
    REDIS_CLUSTER_NODES: cluster.seeds.join(','),
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    PORT: String(port),
    WORKER_METRICS_PORT: String(await freePort()),
    API_PROCESSES: '2',
    WORKER_PROCESSES: '2',
    QUEUE_PREFIX: `{dgt-${rand(8)}}`,
    PORTONE_API_URL: sim.url,
    PORTONE_IMP_KEY: 'k',
    PORTONE_IMP_SECRET: 's',
    SWEEP_INTERVAL_MS: '500',
    EXPIRY_GRACE_SECONDS: '5',
    LATE_PAYMENT_WATCH_SECONDS: '16',
    WORKER_CONCURRENCY: '4',
    WORKER_NICE: '0',
    LOG_LEVEL: 'warn',
  };
  stack = spawn(NODE, ['scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  stack.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  stack.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await waitFor(async () => {
    if (stack.exitCode !== null) throw new Error(`npm start exited ${stack.exitCode}:\n${output}`);
    return (await fetch(`${apiUrl}/readyz`).catch(() => null))?.status === 200;
  }, 90_000, 'npm start with 2 APIs and 2 workers on the cluster to be ready');
  redis = new Cluster([...cluster.seeds], { scaleReads: 'master', redisOptions: { maxRetriesPerRequest: 3 } });
  redis.on('error', () => undefined);
}, 180_000);

afterAll(async () => {
  if (stack && stack.exitCode === null) {
    const exited = new Promise((r) => stack.once('exit', r));
    stack.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (stack.exitCode === null) stack.kill('SIGKILL');
  }
  redis?.disconnect();
  await sim?.close();
  await db?.drop().catch(() => undefined);
  await cluster?.stop();
}, 60_000);

/** An event id whose keys are served by a primary `ok` accepts. */
async function eventWhere(ok: (shard: string) => boolean): Promise<{ id: string; shard: string }> {
  for (;;) {
    const id = eventId('cdrop');
    const shard = await cluster.primaryOf(eventKeys(id).meta);
    if (ok(shard)) return { id, shard };
  }
}

/** An event id whose keys are served by a primary not in `avoid`. */
const eventOnNewShard = (avoid: Set<string>) => eventWhere((shard) => !avoid.has(shard));

/** The stack's job queues, by state: what a drop that did not come to rest was waiting for. */
async function jobCounts(): Promise<string> {
  const queues = createQueues(redis, env.QUEUE_PREFIX);
  try {
    const counts = await Promise.all(Object.entries(queues).map(async ([name, q]) => `${name} ${JSON.stringify(await q.getJobCounts())}`));
    return counts.join('; ');
  } catch (error) {
    return `not read: ${(error as Error).message}`;
  } finally {
    await closeQueues(queues);
  }
}

function failures(r: DropResult): string[] {
  return r.invariants.results.filter((x) => !x.ok).map((x) => `${x.id} ${x.name}: ${x.violations.join('; ')}`);
}

/**
 * Buyer requests the API never answered (the buyers give up after 60 s). After a failover, ioredis
 * could leave the API's Redis commands queued forever and an order request hanging (one drop in three
 * under load) until the API's Redis commands got a timeout.
 */
function unanswered(r: DropResult): string[] {
  return r.summary.buyers.errors.filter((e) => e.includes('no answer'));
}

const drop = (id: string, overrides: Parameters<typeof smallOptions>[0] = {}) =>
  runDrop(smallOptions({ apiUrl, simUrl: sim.url, cluster: true, eventId: id, ...overrides }), { env: { ...env, LOG_LEVEL: 'silent' } });

describe('rehearsal drops on a 3-shard Redis Cluster, 2 API and 2 worker processes', () => {
  it('two drops at once on two shards: every invariant holds', async () => {
    const a = await eventOnNewShard(new Set());
    const b = await eventOnNewShard(new Set([a.shard]));
    const [ra, rb] = await Promise.all([drop(a.id), drop(b.id, { seed: 77 })]);
    for (const r of [ra, rb]) {
      expect(failures(r), output).toEqual([]);
      expect(unanswered(r)).toEqual([]);
      expect(r.summary.inventory.sold).toBeGreaterThan(0);
      expect(r.summary.confirms.by_code['SOLD_OUT'] ?? 0).toBeGreaterThan(0);
      expect(r.summary.inventory.held).toBe(0);
    }
    // Each event's keys live on its own shard: different primaries, and KEYSLOT agrees for its keys.
    expect(a.shard).not.toBe(b.shard);
    for (const ev of [a, b]) {
      const node = redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === ev.shard)!;
      expect(await node.exists(eventKeys(ev.id).meta, eventKeys(ev.id).seats, eventKeys(ev.id).counts, eventKeys(ev.id).holds)).toBeGreaterThanOrEqual(3);
      expect(await node.cluster('KEYSLOT', eventKeys(ev.id).seats)).toBe(await node.cluster('KEYSLOT', eventKeys(ev.id).meta));
    }
  }, 180_000);

  it('a primary SIGKILLed mid-drop: its replica takes over, the guard rebuilds the event, every invariant holds', async () => {
    // The event on the shard of the job queues: the primary that dies takes jobs with it too, and every
    // worker's blocking read of a queue was on it (idle ones never came back before the fix of
    // packages/redis/test/cluster-reconnect.test.ts: 2 drops in 20 had jobs waiting untaken at the end).
    const queueShard = await cluster.primaryOf(`${env.QUEUE_PREFIX}:payments:meta`);
    const ev = await eventWhere((shard) => shard === queueShard);
    const store = new HoldStore(redis);
    const running = drop(ev.id, { buyers: 400, seats: 80, pool: 40, concurrency: 40, buyerDelayMs: 600, seed: 4242, settleTimeout: 90 });
    running.catch(() => undefined);
    // Mid-drop: once sales and holds are under way.
    await waitFor(async () => {
      const inv = (await store.inventories([ev.id])).get(ev.id);
      return inv && (inv.seats?.sold ?? 0) + (inv.seats?.held ?? 0) > 10;
    }, 60_000, 'the drop to be selling');
    const epochBefore = await redis.hget(eventKeys(ev.id).meta, 'epoch');
    expect(await store.stampState(ev.id)).toBe('whole');
    const primary = await cluster.primaryOf(eventKeys(ev.id).meta);
    const killedAt = Date.now();
    await cluster.kill(primary);
    await cluster.waitHealthy(60_000);
    const promoted = await cluster.primaryOf(eventKeys(ev.id).meta);
    expect(promoted).not.toBe(primary);
    // The guard finds the event stamped by another replication history and rebuilds it from Postgres.
    await waitFor(async () => (await store.stampState(ev.id).catch(() => null)) === 'whole' && (await redis.hget(eventKeys(ev.id).meta, 'epoch')) !== epochBefore, 60_000, 'the event to be rebuilt on the promoted replica');
    const rebuiltAfterMs = Date.now() - killedAt;
    const result = await running;
    expect(failures(result), `${output}\nsettled: ${JSON.stringify(result.summary.timing)}\njobs: ${await jobCounts()}`).toEqual([]);
    expect(unanswered(result)).toEqual([]);
    expect(result.summary.inventory.held).toBe(0);
    expect(result.summary.inventory.sold).toBeGreaterThan(0);
    expect(rebuiltAfterMs).toBeLessThan(60_000);
  }, 240_000);
});
