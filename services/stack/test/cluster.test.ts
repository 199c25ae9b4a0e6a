/**
 * Issue 12: the same invariants on a real Redis Cluster (3 primaries, 3 replicas, private to this
 * file), with two APIs and two workers sharing it: the sold-out race on events that live on different
 * shards, and the hold lifecycle (paid → tickets, failed → released, abandoned → expired).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { eventId, http, newOrder, startPrivateCluster, TestClock, waitFor, type PrivateCluster } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { startApi, type RunningApi } from '@dropgate/api';
import { startWorker, type RunningWorker } from '@dropgate/worker';
import type { Cluster } from 'ioredis';
import { eventKeys, isCluster } from '@dropgate/redis';
import { checkInvariants, ledgerOf } from '@dropgate/invariants';

let cluster: PrivateCluster;
let sim: Simulator;
let stack: TestStack;
let api2: RunningApi;
let worker2: RunningWorker;
const clock = new TestClock();
const ids: string[] = [];

beforeAll(async () => {
  [cluster, sim] = await Promise.all([startPrivateCluster(), startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } })]);
  stack = await startStack({ label: 'cluster', clusterNodes: cluster.seeds, portoneUrl: sim.url, clock, env: { EXPIRY_GRACE_SECONDS: '60' } });
  // A second API and a second worker on the same cluster, database and queues.
  api2 = await startApi(stack.config, { logger: false, queuePrefix: stack.prefix, clock });
  worker2 = await startWorker(stack.config, { prefix: stack.prefix, metricsServer: false, clock });
}, 120_000);
afterAll(async () => {
  await worker2?.close();
  await api2?.close();
  await stack?.close();
  await sim?.close();
  await cluster?.stop();
});

/** An event id whose keys live on a primary not in `avoid` (ids are random: draw until one fits). */
async function eventOnNewShard(prefix: string, avoid: Set<string>): Promise<{ id: string; shard: string }> {
  for (;;) {
    const id = eventId(prefix);
    const shard = await cluster.primaryOf(eventKeys(id).meta);
    if (!avoid.has(shard)) return { id, shard };
  }
}

async function createEvent(base: string, body: Record<string, unknown>): Promise<void> {
  const res = await http(base, 'POST', '/admin/events', body, { admin: true });
  expect(res.status, res.text).toBe(201);
  ids.push(String(body.id));
}

async function pool<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i]!, i); }
  }));
  return out;
}

describe('on a 3-shard Redis Cluster with 2 APIs and 2 workers', () => {
  it('runs on the cluster client, and readiness checks every shard', async () => {
    expect(isCluster(stack.api.deps.redis)).toBe(true);
    expect(isCluster(worker2.ctx.redis)).toBe(true);
    expect((await cluster.primaries()).length).toBe(3);
    // Every key an event's scripts take (every member of its key layout) is in one slot, and so is
    // every BullMQ key under the hash-tagged queue prefix.
    const node = (stack.redis as Cluster).nodes('master')[0]!;
    const k = eventKeys('slot-check');
    const names = [k.meta, k.seats, k.seatIndex('available'), k.seatIndex('held'), k.seatIndex('sold'), k.counts, k.buyers, k.holds, k.handoff,
      k.order('m'), k.answers('m'), k.webhooks('m'), k.webhookDelivery('w'), k.queue, k.queueWaiting, k.queueActive, k.queueAdmitted,
      k.queuePolls, k.waitlist, k.waitlistEntries, k.waitlistOffers, k.waitlistLock, k.rebuildLock, k.settleLock('m'), k.manualConfirmLock('m')];
    const slots = new Set(await Promise.all(names.map(async (name) => Number(await node.cluster('KEYSLOT', name)))));
    expect(slots.size).toBe(1);
    const queueSlots = new Set(await Promise.all([`${stack.prefix}:holds:wait`, `${stack.prefix}:payments:id`, `${stack.prefix}:sweep-lock`].map(async (name) => Number(await node.cluster('KEYSLOT', name)))));
    expect(queueSlots.size).toBe(1);
    // Ready once every shard answers (right after start-up the client may still be discovering them).
    await waitFor(async () => (await http(stack.url, 'GET', '/readyz')).status === 200, 20_000, '/readyz 200 on the cluster');
  });

  it('sold-out race on two events on different shards: exactly the inventory, never a seat twice', async () => {
    const a = await eventOnNewShard('cra', new Set());
    const b = await eventOnNewShard('crb', new Set([a.shard]));
    expect(a.shard).not.toBe(b.shard);
    const apis = [stack.url, api2.url];
    for (const [i, ev] of [a, b].entries()) {
      await createEvent(apis[i]!, { id: ev.id, name: 'Race', seat_blocks: [{ section: 'R', rows: 5, seats_per_row: 10, price: 1000 }], pools: [{ id: 'gen', name: 'G', capacity: 100, price: 500 }] });
    }
    // The keys of each event are on its shard, and only there.
    for (const ev of [a, b]) {
      const owner = stack.redis as Cluster;
      const onShard = owner.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === ev.shard)!;
      expect(await onShard.exists(eventKeys(ev.id).meta, eventKeys(ev.id).seats, eventKeys(ev.id).counts)).toBe(3);
      const slot = Number(await onShard.cluster('KEYSLOT', eventKeys(ev.id).meta));
      expect(Number(await onShard.cluster('KEYSLOT', eventKeys(ev.id).order('x')))).toBe(slot);
    }
    const seatIds = Array.from({ length: 50 }, (_, i) => `R-${Math.floor(i / 10) + 1}-${(i % 10) + 1}`);
    type Spec = { ev: string; buyer_id: string; seats?: string[]; items?: { pool: string; quantity: number }[] };
    const specs: Spec[] = [];
    for (const ev of [a.id, b.id]) {
      for (let i = 0; i < 300; i++) {
        const n = 1 + (i % 3);
        specs.push(i % 2 === 0
          ? { ev, buyer_id: `s-${i}`, seats: Array.from({ length: n }, (_, j) => seatIds[(i * 7 + j * 13) % 50]!).filter((s, k, all) => all.indexOf(s) === k) }
          : { ev, buyer_id: `p-${i}`, items: [{ pool: 'gen', quantity: n }] });
      }
    }
    const orders = await pool(specs, 16, async (spec, i) => {
      const { ev, ...body } = spec;
      const o = await newOrder(apis[i % 2]!, ev, body);
      return { spec, muid: o.merchant_uid, amount: o.amount };
    });
    // Genuine payments, each confirmed through the other API than its order's, that the buyers then
    // leave open (abandoned: PortOne keeps them ready). The workers verify every approved one with
    // PortOne at once, and a made-up imp_uid would have its hold released by then (integrity.test),
    // so the availability read below would race the verifications.
    const answers = await pool(orders, 64, async (o, i) => {
      const { confirm } = await sim.pay({ merchant_uid: o.muid, amount: o.amount, confirm_url: `${apis[(i + 1) % 2]!}/portone/v1/confirm`, outcome: 'abandoned' });
      expect(confirm, `the simulator called no confirm for ${o.muid}`).not.toBeNull();
      return { o, status: confirm!.status, body: confirm!.body as { code?: string } };
    });
    for (const ev of [a.id, b.id]) {
      const mine = answers.filter((x) => x.o.spec.ev === ev);
      const approved = mine.filter((x) => x.status === 200);
      const seatOwner = new Map<string, string>();
      let poolHeld = 0;
      for (const x of approved) {
        for (const s of x.o.spec.seats ?? []) {
          expect(seatOwner.has(s), `seat ${s} approved twice`).toBe(false);
          seatOwner.set(s, x.o.muid);
        }
        poolHeld += (x.o.spec.items ?? []).reduce((n, it) => n + it.quantity, 0);
      }
      expect(poolHeld).toBeLessThanOrEqual(100);
      // The race was real: more demand than places, refusals on each shard.
      expect(mine.length - approved.length).toBeGreaterThan(0);
      for (const x of mine.filter((y) => y.status !== 200)) expect(x.body.code).toBe('SOLD_OUT');
      const avail = (await http(stack.url, 'GET', `/events/${ev}`)).body.availability;
      expect(avail.seats.held).toBe(seatOwner.size);
      expect(avail.pools[0].held).toBe(poolHeld);
      // Both workers drain the hand-offs of both shards: Postgres records every approved hold.
      await waitFor(async () => {
        const rows = await stack.api.deps.db.selectFrom('holds').select('merchant_uid').where('event_id', '=', ev).execute();
        return rows.length === approved.length;
      }, 60_000, `every hold of ${ev} recorded`);
    }
  });

  it('the relay\'s read of many events: one that fails on its shard is reported, the others\' entries still come back', async () => {
    const a = await eventOnNewShard('rl', new Set());
    const b = await eventOnNewShard('rl', new Set([a.shard]));
    // Events no worker relays (not in Postgres): a's stream has one entry; b's key is not a stream at
    // all, so reading it fails on b's shard only.
    await stack.redis.xadd(eventKeys(a.id).handoff, '*', 'uid', `${a.id}.o1`, 'imp', 'imp-a', 'seq', '1', 'exp', '1', 'at', '1');
    await stack.redis.set(eventKeys(b.id).handoff, 'not a stream');
    try {
      const failures: string[] = [];
      const read = await stack.store.readNewHandoffs([a.id, b.id], 'probe', 10, (id, error) => failures.push(`${id}: ${(error as Error).message}`));
      expect([...read.keys()]).toEqual([a.id]);
      expect(read.get(a.id)!.map((h) => [h.merchantUid, h.impUid])).toEqual([[`${a.id}.o1`, 'imp-a']]);
      expect(failures).toEqual([expect.stringMatching(new RegExp(`^${b.id}: WRONGTYPE`))]);
      // Without a handler the failure is thrown, once every read has finished.
      await expect(stack.store.readNewHandoffs([a.id, b.id], 'probe', 10)).rejects.toThrow(/WRONGTYPE/);
    } finally {
      await stack.redis.del(eventKeys(a.id).handoff);
      await stack.redis.del(eventKeys(b.id).handoff);
    }
  });

  it('hold lifecycle: paid → tickets, failed → released, abandoned → expired; invariants hold', async () => {
    const { id } = await eventOnNewShard('clc', new Set());
    await createEvent(api2.url, { id, name: 'Lifecycle', hold_ttl_seconds: 30, seat_blocks: [{ section: 'L', rows: 1, seats_per_row: 3, price: 10_000 }] });
    const confirmUrl = `${stack.url}/portone/v1/confirm`;
    const noticeUrl = `${api2.url}/portone/v1/webhook`;
    const detail = async (muid: string) => (await http(stack.url, 'GET', `/orders/${muid}`, undefined, { admin: true })).body;
    const orderIs = (muid: string, status: string) => waitFor(async () => ((await detail(muid)).status === status ? detail(muid) : null), 30_000, `${muid} ${status}`);

    const paidOrder = await newOrder(stack.url, id, { buyer_id: 'b1', seats: ['L-1-1'] });
    const paid = await sim.pay({ merchant_uid: paidOrder.merchant_uid, amount: paidOrder.amount, confirm_url: confirmUrl, notice_url: noticeUrl, outcome: 'paid' });
    expect(paid.confirm?.status).toBe(200);
    expect((await orderIs(paidOrder.merchant_uid, 'paid')).tickets).toHaveLength(1);

    const failedOrder = await newOrder(api2.url, id, { buyer_id: 'b2', seats: ['L-1-2'] });
    await sim.pay({ merchant_uid: failedOrder.merchant_uid, amount: failedOrder.amount, confirm_url: confirmUrl, notice_url: noticeUrl, outcome: 'failed' });
    await orderIs(failedOrder.merchant_uid, 'released');

    const abandoned = await newOrder(stack.url, id, { buyer_id: 'b3', seats: ['L-1-3'] });
    await sim.pay({ merchant_uid: abandoned.merchant_uid, amount: abandoned.amount, confirm_url: confirmUrl, notice_url: noticeUrl, outcome: 'abandoned' });
    await waitFor(async () => (await stack.store.orderState(id, abandoned.merchant_uid))?.status === 'held', 10_000, 'held');
    await waitFor(async () => (await stack.api.deps.db.selectFrom('holds').select('status').where('merchant_uid', '=', abandoned.merchant_uid).executeTakeFirst()) !== undefined, 20_000, 'hold recorded');
    // Past its TTL (the test clock), the sweep of one of the workers expires it after asking PortOne.
    clock.advance(31_000);
    await orderIs(abandoned.merchant_uid, 'expired');
    const avail = (await http(api2.url, 'GET', `/events/${id}`)).body.availability;
    expect(avail.seats).toMatchObject({ sold: 1, held: 0, available: 2 });
    await sim.settled();
    const report = await checkInvariants({ eventId: id, db: stack.api.deps.db, redis: stack.redis, apiUrl: stack.url, ledger: ledgerOf(sim.ledger(), id), adminToken: stack.config.adminToken! });
    expect(report.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.violations.join('; ')}`)).toEqual([]);
  });
});
