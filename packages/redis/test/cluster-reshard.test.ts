/**
 * An event's hash slot moving between Redis Cluster nodes (resharding: `CLUSTER SETSLOT ... MIGRATING`
 * and `IMPORTING`, keys moved one by one). Meanwhile a key already moved is answered `ASK` by its old
 * node, and a script over keys on both nodes `TRYAGAIN`. Attack round 19 moved an event's keys but its
 * meta hash and held it there: with the clients' auto-pipelining, ioredis handed the `ASK` back as an
 * error (order creation answered 500, hundreds of times a run), and once crashed the worker inside its
 * pipelining (redis/ioredis#1931), which stopped `npm start`. Cluster clients no longer auto-pipeline:
 * the `ASK` is followed, and what cannot be answered during the move is "not available" (503).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'ioredis';
import { HoldStore, createRedis, eventKeys, isRedisUnavailableError, whenReady } from '@dropgate/redis';
import { eventId, startPrivateCluster, type PrivateCluster } from '@dropgate/testkit';

let cluster: PrivateCluster;
let client: Cluster;

beforeAll(async () => {
  cluster = await startPrivateCluster();
}, 120_000);
afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

describe('an event whose hash slot is being moved', () => {
  it('reads follow ASK to the moved keys, a script over both nodes is "not available", and all is answered once the move ends', async () => {
    // As the API makes its client: fail fast, and asking for auto-pipelining.
    client = createRedis({ redisUrl: '', redisClusterNodes: cluster.seeds }, { failFast: true, autoPipelining: true, name: 'reshard' }) as Cluster;
    expect(await whenReady(client, 10_000)).toBe(true);
    const store = new HoldStore(client);
    const id = eventId('reshard');
    const k = eventKeys(id);
    await store.loadEvent({ id, opensAt: 0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: 4, pools: [{ id: 'ga', capacity: 5 }], seats: [], orders: [] }, 'test');
    await client.hset(k.buyers, 'b1', '2');

    const fromAddress = await cluster.primaryOf(k.meta);
    const toAddress = (await cluster.primaries()).find((a) => a !== fromAddress)!;
    const from = cluster.client(fromAddress);
    const to = cluster.client(toAddress);
    const slot = Number(await from.cluster('KEYSLOT', k.meta));
    const [fromId, toId] = [String(await from.cluster('MYID')), String(await to.cluster('MYID'))];
    await to.cluster('SETSLOT', slot, 'IMPORTING', fromId);
    await from.cluster('SETSLOT', slot, 'MIGRATING', toId);
    // Every key of the event but its meta hash moved; the meta stays behind for now.
    const keys = (await from.cluster('GETKEYSINSLOT', slot, 1000)) as string[];
    expect(keys).toContain(k.buyers);
    const [toHost, toPort] = toAddress.split(':');
    for (const key of keys.filter((x) => x !== k.meta)) expect(await from.migrate(toHost!, toPort!, key, 0, 5_000)).toBe('OK');

    // The order's preflight: the meta (still here) and the buyer's count (moved, ASK) together.
    expect(await store.orderPreflight(id, 'b1')).toEqual({ state: 'ready', buyerTickets: 2 });
    const many = await Promise.all(Array.from({ length: 50 }, () => store.orderPreflight(id, 'b1')));
    expect(many.every((p) => p.buyerTickets === 2 && p.state === 'ready')).toBe(true);
    // A script over the meta and a moved key cannot run until the move ends (TRYAGAIN, retried, then
    // given up): an error that counts as Redis not available.
    const during = await client.eval("return redis.call('HGET', KEYS[1], 'state') .. redis.call('HGET', KEYS[2], 'b1')", 2, k.meta, k.buyers).then(() => null, (e: unknown) => e);
    expect(during).toBeInstanceOf(Error);
    expect(isRedisUnavailableError(during), String(during)).toBe(true);

    // The move ends.
    expect(await from.migrate(toHost!, toPort!, k.meta, 0, 5_000)).toBe('OK');
    for (const n of [from, to]) await n.cluster('SETSLOT', slot, 'NODE', toId);
    await cluster.waitHealthy(30_000);
    expect(await store.orderPreflight(id, 'b1')).toEqual({ state: 'ready', buyerTickets: 2 });
    expect(await client.eval("return redis.call('HGET', KEYS[1], 'state') .. redis.call('HGET', KEYS[2], 'b1')", 2, k.meta, k.buyers)).toBe('ready2');
  }, 90_000);

  it('what a slot on the move answers counts as Redis not available (503), not as a failure (500)', () => {
    for (const message of ['ASK 3999 127.0.0.1:7002', 'MOVED 3999 127.0.0.1:7002', 'TRYAGAIN Multiple keys request during rehashing of slot', 'Too many Cluster redirections. Last error: ReplyError: ASK 1 127.0.0.1:7002']) {
      expect(isRedisUnavailableError(Object.assign(new Error(message), { name: 'ReplyError' })), message).toBe(true);
    }
    expect(isRedisUnavailableError(new Error('ERR wrong number of arguments'))).toBe(false);
  });
});
