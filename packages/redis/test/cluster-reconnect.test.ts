/**
 * A Redis Cluster client that reconnects during a failover must come back. BullMQ reconnects a
 * worker's blocking connection with `connect()` when a blocking read goes unanswered (what a killed
 * primary leaves), and waits for that promise before it takes another job. With ioredis's ready check
 * on, a `connect()` made while the cluster reports `cluster_state:fail` (a primary failed, its replica
 * not promoted yet) never settled: the client reconnected by itself and became ready, but the promise
 * was left pending, and the worker with it. A rehearsal drop on the cluster (services/drop/test/
 * cluster.test.ts) then had its expiry and hold queues' jobs waiting, untaken, until the drop gave up,
 * or paid payments neither ticketed nor refunded when it was the payments queue that waited.
 *
 * Here, on a real cluster: 30 clients made by createRedis reconnect one after another through a
 * primary's failover, and every reconnect settles and the client works once the replica took over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'ioredis';
import { createRedis } from '@dropgate/redis';
import { rand, startPrivateCluster, type PrivateCluster } from '@dropgate/testkit';

let cluster: PrivateCluster;
const clients: Cluster[] = [];

beforeAll(async () => {
  cluster = await startPrivateCluster({ nodeTimeoutMs: 1_000 });
}, 120_000);
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

describe('a cluster client reconnecting through a failover', () => {
  it('every connect() settles, also one made while the cluster reports a failed primary, and each client works after', async () => {
    const key = `{reconnect-${rand(6)}}:k`;
    const target = { redisUrl: '', redisClusterNodes: cluster.seeds };
    for (let i = 0; i < 30; i++) {
      const c = createRedis(target, { name: `reconnect-${i}` }) as Cluster;
      clients.push(c);
      await c.ping();
    }
    const primary = await cluster.primaryOf(key);
    // A surviving primary's view of the cluster, every 50 ms: when it says the cluster has failed.
    const watcher = cluster.client((await cluster.primaries()).find((a) => a !== primary)!);
    let failing = false;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const info = String(await watcher.cluster('INFO').catch(() => ''));
        failing = info.includes('cluster_state:fail');
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    await cluster.kill(primary);
    let duringFail = 0;
    const outcomes = await Promise.all(clients.map(async (c, i) => {
      await new Promise((r) => setTimeout(r, i * 150));
      c.disconnect();
      await new Promise((r) => setTimeout(r, 20));
      if (failing) duringFail++;
      return Promise.race([
        c.connect().then(() => 'settled', () => 'settled'),
        new Promise<string>((r) => setTimeout(() => r(`client ${i}: connect() still pending after 15 s`), 15_000)),
      ]);
    }));
    watching = false;
    await watch;

    // The reconnects went through the failover, not only around it.
    expect(duringFail).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o !== 'settled')).toEqual([]);
    await cluster.waitHealthy(30_000);
    for (const [i, c] of clients.entries()) {
      await c.set(key, String(i));
      expect(await c.get(key)).toBe(String(i));
    }
  }, 90_000);
});
