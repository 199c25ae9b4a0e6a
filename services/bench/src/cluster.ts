/**
 * `npm run bench:cluster`: capacity on Redis Cluster (issue 12). On a private 3-primary, 3-replica
 * cluster (or the one REDIS_CLUSTER_NODES names), runs `npm start` with 1 then 2 API processes and
 * 1 then 2 workers, and for each drives all-approve confirms (every confirm holds a pool place and is
 * handed to the workers) with autocannon from this process. It reports confirms/s and latency, how
 * fast the workers record the holds in Postgres, and what one confirm costs the event's shard
 * (placeHold's µs of Redis CPU from INFO commandstats), hence how many confirms a second one event,
 * which lives on one shard, can take at most.
 *
 *   npm run bench:cluster [-- --orders 10000] [--connections 100]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { sql } from 'kysely';
import { loadConfig } from '@dropgate/config';
import { createDb, dropDatabase } from '@dropgate/db';
import { HoldStore, createRedis, eventKeys, isCluster, primaries } from '@dropgate/redis';
import { newMerchantUid } from '@dropgate/domain';
import { freePort, startPrivateCluster, type PrivateCluster } from '@dropgate/testkit';

const { values: args } = parseArgs({
  options: {
    orders: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '100' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('npm run bench:cluster -- [--orders N (10000)] [--connections N (100)]');
  process.exit(0);
}
const ORDERS = Number(args.orders);
const CONNECTIONS = Number(args.connections);
const env0 = loadConfig();
const dbUrl = (() => { const u = new URL(env0.databaseUrl); u.pathname = '/dropgate_bench_cluster'; return u.toString(); })();
const adminToken = randomBytes(24).toString('hex');
const children: ChildProcess[] = [];

async function waitHttp(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode})`);
    try { if ((await fetch(url)).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}

interface Run { rps: number; p50: number; p99: number; max: number; approved: number }

function drive(url: string, bodies: readonly string[]): Promise<Run> {
  let next = 0;
  const started = performance.now();
  let last = started;
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: `${url}/portone/v1/confirm`, connections: CONNECTIONS, pipelining: 1, amount: bodies.length, timeout: 10,
      requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length]! }) }],
    }, (err, result) => {
      if (err) return reject(err);
      const approved = (result.statusCodeStats as Record<string, { count: number }> | undefined)?.['200']?.count ?? 0;
      resolve({ rps: result.requests.total / ((last - started) / 1000), p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, approved });
    });
    instance.on('response', () => { last = performance.now(); });
  });
}

/** INFO commandstats of one node: EVALSHA calls and µs (the scripts; placeHold during the confirms). */
async function evalshaStats(node: ReturnType<typeof primaries>[number]): Promise<{ calls: number; usec: number }> {
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(String(await node.info('commandstats')));
  return m ? { calls: Number(m[1]), usec: Number(m[2]) } : { calls: 0, usec: 0 };
}

async function main(): Promise<void> {
  let cluster: PrivateCluster | null = null;
  let seeds = env0.redisClusterNodes;
  if (!seeds) {
    console.error('bench: starting a private Redis Cluster (3 primaries, 3 replicas)...');
    cluster = await startPrivateCluster();
    seeds = cluster.seeds;
  }
  const redis = createRedis({ redisUrl: env0.redisUrl, redisClusterNodes: seeds }, { autoPipelining: true, name: 'dropgate-bench' });
  await new Promise<void>((resolve) => (redis.status === 'ready' ? resolve() : redis.once('ready', () => resolve())));
  if (!isCluster(redis)) throw new Error('not a cluster');
  const store = new HoldStore(redis);
  const usPerPlaceHold: number[] = [];
  await dropDatabase(dbUrl);
  // The shard alone: placeHold straight at the event's shard from this process (autopipelined, no
  // HTTP, no worker): the most confirms a second one event can take, and the Redis CPU of each.
  const shardLine = await (async () => {
    const id = `benchs-${randomBytes(3).toString('hex')}`;
    await store.loadEvent({ id, opensAt: 0, closesAt: null, holdTtlMs: 600_000, maxPerBuyer: null, pools: [{ id: 'all', capacity: 10_000_000 }], seats: [], orders: [] }, 'bench');
    const muids = Array.from({ length: ORDERS }, () => newMerchantUid(id));
    for (let i = 0; i < muids.length; i += 2000) {
      await Promise.all(muids.slice(i, i + 2000).map((m, j) => store.createOrder(id, { merchantUid: m, amount: 1000, buyerId: `s${i + j}`, seats: [], items: [{ pool: 'all', quantity: 1 }], tickets: 1 })));
    }
    const shardAddress = cluster ? await cluster.primaryOf(eventKeys(id).meta) : null;
    const shard = primaries(redis).find((n) => `${n.options.host}:${n.options.port}` === shardAddress) ?? null;
    const before = shard ? await evalshaStats(shard) : null;
    const started = performance.now();
    for (let i = 0; i < muids.length; i += 500) {
      await Promise.all(muids.slice(i, i + 500).map((m, j) => store.placeHold(id, m, `imp_s${i + j}`, 1000, Date.now())));
    }
    const seconds = (performance.now() - started) / 1000;
    const after = shard ? await evalshaStats(shard) : null;
    await store.deleteEvent(id);
    const us = before && after && after.calls > before.calls ? (after.usec - before.usec) / (after.calls - before.calls) : 0;
    if (us > 0) usPerPlaceHold.push(us);
    return `shard alone: ${ORDERS.toLocaleString('en')} placeHolds straight at the event's shard in ${seconds.toFixed(1)} s = ${Math.round(ORDERS / seconds).toLocaleString('en')}/s, ${us.toFixed(1)} µs of Redis CPU each (INFO commandstats)`;
  })();
  console.error(`bench: ${shardLine}`);
  const rows: string[] = [];
  const configs = [[1, 1], [2, 1], [1, 2], [2, 2]] as const;
  try {
    for (const [apis, workers] of configs) {
      const port = await freePort();
      const api = `http://127.0.0.1:${port}`;
      const env = {
        ...process.env, DATABASE_URL: dbUrl, REDIS_CLUSTER_NODES: seeds.join(','), PORT: String(port), WORKER_METRICS_PORT: String(await freePort()),
        API_PROCESSES: String(apis), WORKER_PROCESSES: String(workers), ADMIN_TOKEN: adminToken, LOG_LEVEL: 'warn',
        QUEUE_PREFIX: `{dgbc-${randomBytes(3).toString('hex')}}`, PORTONE_API_URL: 'http://127.0.0.1:9', PORTONE_IMP_KEY: 'bench', PORTONE_IMP_SECRET: 'bench',
        SWEEP_INTERVAL_MS: '60000',
        // No PortOne here to list payments from (its URL goes nowhere).
        LEDGER_SWEEP_INTERVAL_MS: '0',
        // Measured here: how recording scales with workers, so they are not niced below the APIs.
        WORKER_NICE: '0',
      };
      const child = spawn(process.execPath, ['scripts/start.ts'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(child);
      await waitHttp(`${api}/readyz`, child);
      const db = createDb(dbUrl, { max: 4 });
      try {
        // One event (one shard): a pool every confirm can hold.
        const id = `benchc-${randomBytes(3).toString('hex')}`;
        const res = await fetch(`${api}/admin/events`, {
          method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
          body: JSON.stringify({ id, name: 'Bench cluster', pools: [{ id: 'all', name: 'All', capacity: 1_000_000, price: 1000 }] }),
        });
        if (res.status !== 201) throw new Error(`creating the event answered ${res.status}`);
        const orders = Array.from({ length: ORDERS }, (_, i) => ({ muid: newMerchantUid(id), buyer: `b${i}`, q: 1 + (i % 4) }));
        await sql`insert into orders (merchant_uid, event_id, buyer_id, amount, currency, status)
          select m, ${id}, b, a, 'KRW', 'pending' from unnest(${orders.map((o) => o.muid)}::text[], ${orders.map((o) => o.buyer)}::text[], ${orders.map((o) => o.q * 1000)}::bigint[]) as t(m, b, a)`.execute(db);
        await sql`insert into order_items (merchant_uid, event_id, pool_id, quantity, unit_price)
          select m, ${id}, 'all', q, 1000 from unnest(${orders.map((o) => o.muid)}::text[], ${orders.map((o) => o.q)}::int[]) as t(m, q)`.execute(db);
        for (let i = 0; i < orders.length; i += 2000) {
          await Promise.all(orders.slice(i, i + 2000).map((o) => store.createOrder(id, { merchantUid: o.muid, amount: o.q * 1000, buyerId: o.buyer, seats: [], items: [{ pool: 'all', quantity: o.q }], tickets: o.q })));
        }
        const shardAddress = cluster ? await cluster.primaryOf(eventKeys(id).meta) : null;
        const shard = primaries(redis).find((n) => `${n.options.host}:${n.options.port}` === shardAddress) ?? null;
        const before = shard ? await evalshaStats(shard) : null;
        const bodies = orders.map((o, i) => JSON.stringify({ imp_uid: `imp_${String(i).padStart(12, '0')}${randomBytes(2).toString('hex')}`, merchant_uid: o.muid, amount: o.q * 1000 }));
        const confirmStart = performance.now();
        const run = await drive(api, bodies);
        const after = shard ? await evalshaStats(shard) : null;
        // The workers record every approved hold in Postgres (write-behind): time until the last one.
        for (;;) {
          const row = await db.selectFrom('holds').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow();
          if (Number(row.n) >= run.approved || performance.now() - confirmStart > 300_000) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const recordedPerSec = run.approved / ((performance.now() - confirmStart) / 1000);
        let placeHoldUs = '';
        if (before && after && after.calls > before.calls) {
          const us = (after.usec - before.usec) / (after.calls - before.calls);
          usPerPlaceHold.push(us);
          placeHoldUs = `${us.toFixed(1)} µs`;
        }
        rows.push(`| ${apis} | ${workers} | ${Math.round(run.rps).toLocaleString('en')} | ${run.p50} | ${run.p99} | ${run.max} | ${run.approved.toLocaleString('en')} | ${Math.round(recordedPerSec).toLocaleString('en')} | ${placeHoldUs} |`);
        console.error(`bench: ${apis} API / ${workers} worker: ${Math.round(run.rps)} confirms/s, p99 ${run.p99} ms, holds recorded ${Math.round(recordedPerSec)}/s, EVALSHA ${placeHoldUs}`);
      } finally {
        await db.destroy();
        await new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill('SIGTERM'); });
      }
    }
  } finally {
    redis.disconnect();
    await cluster?.stop();
  }
  const us = usPerPlaceHold.length ? usPerPlaceHold.reduce((a, b) => a + b, 0) / usPerPlaceHold.length : 0;
  console.log([
    '',
    `dropgate cluster benchmark: ${ORDERS} all-approve confirms per configuration, ${CONNECTIONS} connections, one event (one shard), 3-primary cluster`,
    '',
    '| API processes | workers | confirms/s | p50 ms | p99 ms | max ms | approved | holds recorded/s | EVALSHA µs on the event\'s shard |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    shardLine,
    us > 0 ? `one event's shard: ${us.toFixed(1)} µs of Redis CPU per confirm (placeHold) → at most ~${Math.round(1e6 / us).toLocaleString('en')} confirms/s per event, one core of Redis` : '',
  ].join('\n'));
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
