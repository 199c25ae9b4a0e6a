/**
 * `npm run bench`: throughput and latency of the real stack (API + Redis + worker, each its own
 * process) driven over HTTP by autocannon from this process, beside a bare fastify endpoint (same
 * schemas, no I/O) measured in the same run, just before and just after each scenario. Scenarios:
 *
 * - orders: `POST /events/:id/orders`, seat and pool orders (the front door every buyer passes);
 * - race: confirms of overlapping seat orders for 1,000 seats (most refused SOLD_OUT), and the same
 *   bodies against the floor of a confirm (one EVALSHA of a one-line script, bare-server.ts);
 * - approve: confirms that all approve (pool), the worker recording every hold and verifying each
 *   payment with PortOne (portone-stand-in.ts, in a process of its own, knows every confirm's payment);
 * - seats: the race's confirms on a 1,000-seat and on a 100,000-seat event (p99 must stay flat);
 * - outcomes: paid outcomes settled into Postgres by one worker process (services/bench/src/outcomes.ts).
 *
 * With --rounds N every scenario runs N times, and the table shows each scenario's median round by
 * its ratio to bare, with the spread of all rounds (rounds.ts).
 *
 *   npm run bench -- [--only orders|race|approve|seats|outcomes] [--rounds 1] [--orders 30000] [--connections 100] [--profile]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadConfig } from '@dropgate/config';
import { createDb, dropDatabase } from '@dropgate/db';
import { HoldStore, createRedis, deleteKeysMatching } from '@dropgate/redis';
import { newMerchantUid, ticketCount, type PoolItem } from '@dropgate/domain';
import { sql } from 'kysely';
import { Queue } from 'bullmq';
import { QueueNames } from '@dropgate/jobs';
import { byScenario, medianRound, sizeLine, spreadLine } from './rounds.ts';
import { commandsPer, localPostgresCpu, processCpu, redisCommandStats, redisCpu } from '@dropgate/drop';

const { values: args } = parseArgs({
  options: {
    orders: { type: 'string', default: '30000' },
    connections: { type: 'string', default: '100' },
    /** Each scenario this many times; the table shows the median round and the spread (rounds.ts). */
    rounds: { type: 'string', default: '1' },
    profile: { type: 'boolean', default: false },
    /** Run one scenario only. */
    only: { type: 'string' },
    /** Diagnostic only: run without the worker, to see what the hand-off alone costs. */
    'no-worker': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
const SCENARIOS = ['orders', 'race', 'approve', 'seats', 'outcomes'] as const;
type Scenario = (typeof SCENARIOS)[number];
if (args.help) {
  console.log(`npm run bench -- [--only ${SCENARIOS.join('|')}] [--rounds N (1: each scenario N times, the median round shown with the spread)] [--orders N (30000)] [--connections N (100)] [--profile (CPU profiles of the API and the worker)]`);
  process.exit(0);
}
if (args.only !== undefined && !(SCENARIOS as readonly string[]).includes(args.only)) {
  console.error(`bench: --only must be one of ${SCENARIOS.join(', ')} (got ${JSON.stringify(args.only)})`);
  process.exit(2);
}
const ROUNDS = Number(args.rounds);
// A full round lasts about five minutes: ten stay well within the events' hold TTL (HOLD_TTL_SECONDS).
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 10) {
  console.error(`bench: --rounds must be a whole number from 1 to 10 (got ${JSON.stringify(args.rounds)})`);
  process.exit(2);
}
const ORDERS = Number(args.orders);
const CONNECTIONS = Number(args.connections);
const base = loadConfig();
const budgetMs = base.confirmBudgetMs;
const benchDbUrl = (() => { const u = new URL(base.databaseUrl); u.pathname = '/dropgate_bench'; return u.toString(); })();
const adminToken = randomBytes(24).toString('hex');
const reportsDir = join(process.cwd(), 'reports');
mkdirSync(reportsDir, { recursive: true });

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => resolve(typeof a === 'object' && a ? a.port : 0)); });
  });
}

/**
 * The bench events' hold TTL: the longest an event may have. At the default (300 s) the holds a
 * scenario approved expired while later scenarios ran, and the worker's expiry work (each expired
 * hold released, its payment asked about) ran beside them and was billed to them: a full run lasts
 * about five minutes, a run of --rounds 3 about fifteen.
 */
const HOLD_TTL_SECONDS = 3600;

/** The event-size row's two scenarios, and the label of each one's two runs merged. */
const SMALL = 'race on 1,000 seats';
const LARGE = 'race on 100,000 seats';
const twoRuns = (label: string) => `${label} (2 runs)`;

const children: ChildProcess[] = [];
/** Starts a service and resolves once `healthUrl` answers; rejects if the process exits first. */
async function start(name: string, script: string, env: Record<string, string>, healthUrl: string, extraArgs: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...extraArgs, script], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready`))));
  await Promise.race([waitHttp(healthUrl), exited]);
  return child;
}

async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(url)).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}

async function json(url: string, method: string, body?: unknown, admin = false) {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(admin ? { authorization: `Bearer ${adminToken}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return JSON.parse(text);
}


let db: ReturnType<typeof createDb> | undefined;
let store: HoldStore | undefined;
/** The worker's holds queue (its counts tell when every handed-off hold is recorded). */
let holdsQueue: Queue | undefined;
/** The payments queue: the worker's verification of each approved confirm runs there. */
let paymentsQueue: Queue | undefined;
/** PortOne's REST API for the worker (portone-stand-in.ts): knows the payments of every confirm body. */
let portoneUrl = '';
let seed = 7;
const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
let impCounter = 0;
const imp = () => `imp_${String(++impCounter).padStart(12, '0')}`;

interface Confirm { imp_uid: string; merchant_uid: string; amount: number }

/**
 * Creates the scenario's event through the API, then its orders in bulk straight into Postgres and
 * Redis (the same rows and hashes the order endpoint writes), so the API process spends the measured
 * phase, and its CPU profile, on confirms only.
 */
/** Events this run created: their Redis keys go when it ends, whatever happens. */
const createdEvents: string[] = [];
/** This run's BullMQ prefix: its queues' keys go too. */
const queuePrefix = `{dgbench-${randomBytes(3).toString('hex')}}`;

async function prepare(api: string, kind: 'race' | 'approve' | 'warmup', n: number, rows = 10): Promise<{ eventId: string; bodies: Confirm[]; ordersPerSec: number }> {
  const id = `bench-${kind}-${randomBytes(3).toString('hex')}`;
  createdEvents.push(id);
  // A race's orders pick among the first 1,000 seats (rows 1-10 of 100 seats), whatever the venue's size.
  const event = kind === 'race'
    ? { id, name: 'Bench sold-out race', hold_ttl_seconds: HOLD_TTL_SECONDS, seat_blocks: [{ section: 'S', rows, seats_per_row: 100, price: 1000 }] }
    : { id, name: `Bench ${kind}`, hold_ttl_seconds: HOLD_TTL_SECONDS, pools: [{ id: 'all', name: 'All', capacity: 1_000_000, price: 1000 }] };
  await json(`${api}/admin/events`, 'POST', event, true);
  const started = performance.now();
  const orders = Array.from({ length: n }, () => {
    const q = 1 + Math.floor(random() * 4);
    const muid = newMerchantUid(id);
    const buyer = `b${randomBytes(4).toString('hex')}`;
    if (kind === 'race') {
      const seats = new Set<string>();
      while (seats.size < q) { const k = Math.floor(random() * 1000); seats.add(`S-${Math.floor(k / 100) + 1}-${(k % 100) + 1}`); }
      return { muid, buyer, seats: [...seats], items: [] as PoolItem[], amount: q * 1000 };
    }
    return { muid, buyer, seats: [] as string[], items: [{ pool: 'all', quantity: q }], amount: q * 1000 };
  });
  await sql`insert into orders (merchant_uid, event_id, buyer_id, amount, currency, status)
    select m, ${id}, b, a, 'KRW', 'pending' from unnest(${orders.map((o) => o.muid)}::text[], ${orders.map((o) => o.buyer)}::text[], ${orders.map((o) => o.amount)}::bigint[]) as t(m, b, a)`.execute(db!);
  const seatRows = orders.flatMap((o) => o.seats.map((s) => [o.muid, s] as const));
  if (seatRows.length) {
    await sql`insert into order_seats (merchant_uid, event_id, seat_id, price)
      select m, ${id}, s, 1000 from unnest(${seatRows.map((r) => r[0])}::text[], ${seatRows.map((r) => r[1])}::text[]) as t(m, s)`.execute(db!);
  }
  const itemRows = orders.flatMap((o) => o.items.map((i) => [o.muid, i.pool, i.quantity] as const));
  if (itemRows.length) {
    await sql`insert into order_items (merchant_uid, event_id, pool_id, quantity, unit_price)
      select m, ${id}, p, q, 1000 from unnest(${itemRows.map((r) => r[0])}::text[], ${itemRows.map((r) => r[1])}::text[], ${itemRows.map((r) => r[2])}::int[]) as t(m, p, q)`.execute(db!);
  }
  for (let i = 0; i < orders.length; i += 2000) {
    await Promise.all(orders.slice(i, i + 2000).map((o) =>
      store!.createOrder(id, { merchantUid: o.muid, amount: o.amount, buyerId: o.buyer, seats: o.seats, items: o.items, tickets: ticketCount(o.seats, o.items) })));
  }
  const bodies = orders.map((o) => ({ imp_uid: imp(), merchant_uid: o.muid, amount: o.amount }));
  // PortOne knows each of these payments (ready: the buyer is paying), so the worker's verification
  // of an approved confirm does what it does at a real drop and keeps the hold.
  for (let i = 0; i < bodies.length; i += 10_000) {
    await json(`${portoneUrl}/bench/payments`, 'POST', bodies.slice(i, i + 10_000).map((b) => [b.imp_uid, b.merchant_uid, b.amount]));
  }
  return { eventId: id, bodies, ordersPerSec: n / ((performance.now() - started) / 1000) };
}

interface Run { rps: number; p50: number; p90: number; p99: number; max: number; codes: Record<string, number>; requests: number; cpu?: CpuParts }

/** Order bodies for the front-door scenario: half seat orders (1-4 of 10,000 seats), half pool orders. */
async function orderBodies(api: string, n: number): Promise<{ path: string; bodies: unknown[] }> {
  const id = `bench-orders-${randomBytes(3).toString('hex')}`;
  createdEvents.push(id);
  await json(`${api}/admin/events`, 'POST', {
    id, name: 'Bench orders', hold_ttl_seconds: HOLD_TTL_SECONDS, seat_blocks: [{ section: 'S', rows: 10, seats_per_row: 1000, price: 1000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: 1_000_000, price: 500 }],
  }, true);
  const bodies = Array.from({ length: n }, (_, i) => {
    const q = 1 + Math.floor(random() * 4);
    if (i % 2 === 1) return { buyer_id: `o${i}`, items: [{ pool: 'ga', quantity: q }] };
    const seats = new Set<string>();
    while (seats.size < q) { const k = Math.floor(random() * 10_000); seats.add(`S-${Math.floor(k / 1000) + 1}-${(k % 1000) + 1}`); }
    return { buyer_id: `o${i}`, seats: [...seats] };
  });
  return { path: `/events/${id}/orders`, bodies };
}

function drive(url: string, bodies: readonly unknown[], path = '/portone/v1/confirm'): Promise<Run> {
  let next = 0;
  const payloads = bodies.map((b) => JSON.stringify(b));
  const started = performance.now();
  let last = started;
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: `${url}${path}`,
      connections: CONNECTIONS,
      pipelining: 1,
      amount: payloads.length,
      timeout: 10,
      requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: payloads[next++ % payloads.length]! }) }],
    }, (err, result) => {
      if (err) return reject(err);
      const codes: Record<string, number> = {};
      for (const [k, v] of Object.entries(result.statusCodeStats ?? {})) codes[k] = (v as { count: number }).count;
      resolve({
        // autocannon's duration is rounded to its one-second ticks: time first request to last answer.
        rps: result.requests.total / ((last - started) / 1000),
        p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max,
        codes, requests: result.requests.total,
      });
    });
    instance.on('response', () => { last = performance.now(); });
  });
}

async function metric(api: string, name: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith(`${name}_`)) total += Number(line.split(' ').pop());
  return total;
}

function summarizeProfile(dir: string): string[] {
  const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort().pop();
  if (!file) return ['(no profile written)'];
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    if (!n) return;
    const url = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|services|packages)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)
    .map(([k, v]) => `${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
    .concat([`profile: ${join(dir, file)}`]);
}

const fmt = (n: number) => n.toFixed(n < 10 ? 2 : 0);

/**
 * CPU seconds used so far by each part of the run: the load generator (this process), the server
 * measured (the API or the bare endpoint), the worker, Redis (INFO cpu) and Postgres (every process
 * of the local server, from /proc; none when Postgres is elsewhere). Throughput on a shared machine
 * moves with whatever else runs; CPU per request does much less, and says where the time goes.
 */
type CpuParts = Record<'driver' | 'server' | 'worker' | 'redis' | 'postgres', number>;
async function cpuNow(server: ChildProcess, worker: ChildProcess | null): Promise<CpuParts> {
  const own = process.cpuUsage();
  return {
    driver: (own.user + own.system) / 1e6,
    // The server's and the worker's own CPU, with their reaped children's.
    server: processCpu(server.pid),
    worker: processCpu(worker?.pid),
    redis: (await redisCpu(store!.redis)) ?? 0,
    postgres: localPostgresCpu() ?? 0,
  };
}

/** Runs `work` and returns its result with the CPU each part spent, in µs per request. */
async function measured<T extends { requests: number }>(server: ChildProcess, worker: ChildProcess | null, work: () => Promise<T>): Promise<T & { cpu: CpuParts }> {
  const before = await cpuNow(server, worker);
  const result = await work();
  const after = await cpuNow(server, worker);
  const per = (k: keyof CpuParts) => ((after[k] - before[k]) * 1e6) / Math.max(1, result.requests);
  return { ...result, cpu: { driver: per('driver'), server: per('server'), worker: per('worker'), redis: per('redis'), postgres: per('postgres') } };
}

type MeasuredRun = Run & { cpu: CpuParts };

/**
 * Two runs as one: the rate over both (all requests over the time of both), latency percentiles and
 * CPU per request weighted by each run's requests (an approximation for the percentiles), the larger
 * maximum, the status codes added up.
 */
function mergeRuns(a: MeasuredRun, b: MeasuredRun): MeasuredRun {
  const n = a.requests + b.requests;
  const weighted = (x: number, y: number) => (x * a.requests + y * b.requests) / Math.max(1, n);
  const codes: Record<string, number> = { ...a.codes };
  for (const [k, v] of Object.entries(b.codes)) codes[k] = (codes[k] ?? 0) + v;
  const cpu = Object.fromEntries((Object.keys(a.cpu) as (keyof CpuParts)[]).map((k) => [k, weighted(a.cpu[k], b.cpu[k])])) as CpuParts;
  return {
    rps: n / (a.requests / a.rps + b.requests / b.rps),
    p50: weighted(a.p50, b.p50), p90: weighted(a.p90, b.p90), p99: weighted(a.p99, b.p99), max: Math.max(a.max, b.max),
    codes, requests: n, cpu,
  };
}

const cpuTotal = (c: CpuParts) => c.driver + c.server + c.worker + c.redis + c.postgres;
const cpuLine = (c: CpuParts) => `${fmt(cpuTotal(c))} µs/request: driver ${fmt(c.driver)}, server ${fmt(c.server)}, worker ${fmt(c.worker)}, Redis ${fmt(c.redis)}, Postgres ${fmt(c.postgres)}`;

/**
 * Waits (up to a minute) until the worker has recorded every hold handed off so far, so the next
 * scenario starts quiet and the worker's share of a run includes them; no `holds` (no worker):
 * nothing to wait for. The worker records holds as it relays their hand-offs, and queues a `holds`
 * job only for those it could not: done once Postgres has `expected` holds of the event and the
 * queue is empty. Polls Redis (the event's hand-offs left, the queues' counts) and counts the holds in
 * Postgres only once nothing is left there: a count of the event's holds every 100 ms (2.8 ms each
 * over 33,000 holds) billed about 13 µs a request to the approve row's Postgres column. Not the
 * worker's /metrics either: it would also count every order in Postgres, ten times a second.
 */
async function drained(holds: Queue | undefined, eventId?: string, expected = 0): Promise<void> {
  if (holds === undefined) return;
  const busy = async (queue: Queue | undefined) => {
    if (queue === undefined) return 0;
    const c = await queue.getJobCounts('waiting', 'active', 'prioritized');
    return (c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0);
  };
  const countHolds = async (id: string) =>
    Number((await db!.selectFrom('holds').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow()).n);
  for (let i = 0; i < 600; i++) {
    // Every hand-off relayed (recorded, or queued as a job), then the queues idle (the verifications
    // done), then the record checked: holds the relay recorded and those a job recorded.
    const quiet = (eventId === undefined || (await store!.handoffsLeft(eventId)) === 0)
      && (await busy(holds)) === 0 && (await busy(paymentsQueue)) === 0;
    if (quiet && (eventId === undefined || expected === 0 || (await countHolds(eventId)) >= expected)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  console.error(`bench: the worker had not recorded the holds of ${eventId ?? 'the run'} after a minute; the run's CPU leaves the rest out`);
}

/** The settlement benchmark in its own process (a stack of its own with the simulator); its report lines. */
function outcomesBench(n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['services/bench/src/outcomes.ts', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out.trim().split('\n').map((l) => `outcomes: ${l}`)) : reject(new Error(`the outcomes bench exited ${code}`))));
  });
}

async function main(): Promise<void> {
  await dropDatabase(benchDbUrl);
  const standIn = spawn(process.execPath, ['services/bench/src/portone-stand-in.ts', String(await freePort())], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(standIn);
  portoneUrl = await new Promise<string>((resolve) => standIn.stdout!.once('data', (d) => resolve(String(d).trim())));
  const apiPort = await freePort();
  const env = {
    DATABASE_URL: benchDbUrl, PORT: String(apiPort), WORKER_METRICS_PORT: String(await freePort()), ADMIN_TOKEN: adminToken,
    QUEUE_PREFIX: queuePrefix, LOG_LEVEL: 'warn', PORTONE_API_URL: portoneUrl,
    PORTONE_IMP_KEY: 'bench', PORTONE_IMP_SECRET: 'bench', SWEEP_INTERVAL_MS: '60000',
    // A background task that measures nothing of the paths timed here (as the sweep's long interval).
    LEDGER_SWEEP_INTERVAL_MS: '0',
  };
  const profileDir = join(reportsDir, 'profiles');
  const workerProfileDir = join(profileDir, 'worker');
  mkdirSync(workerProfileDir, { recursive: true });
  const api = `http://127.0.0.1:${apiPort}`;
  const apiChild = await start('api', 'services/api/src/server.ts', env, `${api}/healthz`, args.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
  const workerChild = args['no-worker'] ? null : await start('worker', 'services/worker/src/main.ts', env, `http://127.0.0.1:${env.WORKER_METRICS_PORT}/healthz`, args.profile ? ['--cpu-prof', `--cpu-prof-dir=${workerProfileDir}`] : []);
  db = createDb(benchDbUrl, { max: 4 });
  const redis = createRedis(base, { autoPipelining: true, name: 'dropgate-bench' });
  store = new HoldStore(redis);
  holdsQueue = args['no-worker'] ? undefined : new Queue(QueueNames.holds, { connection: redis, prefix: queuePrefix });
  paymentsQueue = args['no-worker'] ? undefined : new Queue(QueueNames.payments, { connection: redis, prefix: queuePrefix });
  const bareChild = spawn(process.execPath, ['services/bench/src/bare-server.ts', String(await freePort())], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(bareChild);
  const bare = await new Promise<string>((resolve) => bareChild.stdout!.once('data', (d) => resolve(String(d).trim())));

  console.error(`bench: ${ORDERS} orders per scenario, ${CONNECTIONS} connections, budget ${budgetMs} ms, node ${process.version}`);
  // Warm both servers up (JIT, connection pools) on a throwaway event.
  const warm = await prepare(api, 'warmup', 3000);
  await drive(bare, warm.bodies);
  await drive(api, warm.bodies);
  if (args.profile) await fetch(`${api}/metrics`); // marks the end of warm-up in the profile's timeline

  /**
   * Runs a scenario between two runs of the bare endpoint over the same bodies (two passes each, so
   * each lasts long enough to measure) and merges those: this VM's speed drifts within a minute (the
   * bare endpoint alone answered 9,500 and 14,000 requests a second in consecutive runs), and a
   * baseline taken on one side only put a scenario's ratio anywhere from 0.25 to 0.44.
   */
  const bracketed = async <T extends Run>(bodies: readonly unknown[], path: string | undefined, scenario: () => Promise<T>): Promise<{ run: T; baseline: MeasuredRun }> => {
    const bareRun = () => measured(bareChild, null, () => drive(bare, [...bodies, ...bodies], path));
    const before = await bareRun();
    const run = await scenario();
    const after = await bareRun();
    return { run, baseline: mergeRuns(before, after) };
  };
  const rows: { scenario: string; run: Run; bare: Run; approved: number; misses: number }[] = [];
  const notes: string[] = [];
  /** 'round N: ' before each note of a run of several rounds. */
  let roundTag = '';
  const note = (...texts: string[]) => notes.push(...texts.map((t) => roundTag + t));
  const scenarios = SCENARIOS.filter((s) => !args.only || args.only === s);
  /** Notes what Redis spent per request of `work`, by command (INFO commandstats before and after, nothing reset). */
  const withCommands = async <T extends { requests: number }>(label: string, work: () => Promise<T>): Promise<T> => {
    const before = await redisCommandStats(redis);
    const result = await work();
    const after = await redisCommandStats(redis);
    if (before && after) note(`${label}: Redis per request (INFO commandstats, the top commands by time): ${commandsPer(before, after, result.requests, 6)}`);
    return result;
  };
  type Row = (typeof rows)[number];
  /** One confirm scenario on a new event; its row goes in the table unless `tabled` is false. */
  const confirmRun = async (label: string, kind: 'race' | 'approve', venueRows?: number, tabled = true): Promise<Row & { run: MeasuredRun; bare: MeasuredRun }> => {
    console.error(`bench: preparing ${label} (${ORDERS} orders)...`);
    const prepared = await prepare(api, kind, ORDERS, venueRows);
    const missesBefore = await metric(api, 'dropgate_confirm_deadline_misses_total');
    // The worker's share includes recording the holds this run hands off, until they are all recorded.
    const { run, baseline } = await bracketed(prepared.bodies, undefined, () => withCommands(label, () =>
      measured(apiChild, workerChild, async () => { const r = await drive(api, prepared.bodies); await drained(holdsQueue, prepared.eventId, r.codes['200'] ?? 0); return r; })));
    const misses = (await metric(api, 'dropgate_confirm_deadline_misses_total')) - missesBefore;
    const row = { scenario: label, run, bare: baseline, approved: run.codes['200'] ?? 0, misses };
    if (tabled) rows.push(row);
    if (kind === 'race' && venueRows === undefined) {
      // The floor of any confirm deciding in Redis (bare-server.ts), over the same bodies, right after.
      const floor = await measured(bareChild, null, () => drive(bare, [...prepared.bodies, ...prepared.bodies], '/floor/v1/confirm'));
      rows.push({ scenario: 'floor: one EVALSHA, no logic', run: floor, bare: baseline, approved: floor.codes['200'] ?? 0, misses: 0 });
      note(`race against the floor: ${(run.rps / floor.rps).toFixed(2)} of its throughput, ${(cpuTotal(floor.cpu) / cpuTotal(run.cpu)).toFixed(2)} of its CPU a request (the floor ${fmt(cpuTotal(floor.cpu))} µs, the race ${fmt(cpuTotal(run.cpu))})`);
    }
    return row;
  };
  /** One run of `scenario`: its rows and notes. */
  const runScenario = async (scenario: Scenario): Promise<void> => {
    if (scenario === 'orders') {
      console.error(`bench: orders (${ORDERS} POST /events/:id/orders)...`);
      const { path, bodies } = await orderBodies(api, ORDERS);
      const { run, baseline } = await bracketed(bodies, path, () => withCommands('orders (seats and pool)', () =>
        measured(apiChild, workerChild, async () => { const r = await drive(api, bodies, path); await drained(holdsQueue); return r; })));
      rows.push({ scenario: 'orders (seats and pool)', run, bare: baseline, approved: run.codes['201'] ?? 0, misses: 0 });
    } else if (scenario === 'race') {
      await confirmRun('sold-out race (1,000 seats)', 'race');
    } else if (scenario === 'approve') {
      await confirmRun('all approve (pool)', 'approve');
    } else if (scenario === 'seats') {
      // Alternated (small, large, large, small), each side merged over its two runs: what weighs on
      // whichever runs first or right after a heavier scenario (the API's JIT warming up, the worker
      // and Postgres finishing earlier work) falls on both sides alike. Run in order once each, the
      // p99 ratio swung between 0.91x and 1.31x on one machine in one hour (2026-12-01).
      const s1 = await confirmRun(SMALL, 'race', 10, false);
      const l1 = await confirmRun(LARGE, 'race', 1000, false);
      const l2 = await confirmRun(LARGE, 'race', 1000, false);
      const s2 = await confirmRun(SMALL, 'race', 10, false);
      const merged = (label: string, a: Row & { run: MeasuredRun; bare: MeasuredRun }, b: typeof a): Row =>
        ({ scenario: twoRuns(label), run: mergeRuns(a.run, b.run), bare: mergeRuns(a.bare, b.bare), approved: a.approved + b.approved, misses: a.misses + b.misses });
      const smallRow = merged(SMALL, s1, s2);
      const largeRow = merged(LARGE, l1, l2);
      rows.push(smallRow, largeRow);
      const small = smallRow.run;
      const large = largeRow.run;
      note(`event size: p99 ${fmt(large.p99)} ms on 100,000 seats vs ${fmt(small.p99)} ms on 1,000 (${(large.p99 / small.p99).toFixed(2)}x), throughput ${(large.rps / small.rps).toFixed(2)}x`);
    } else {
      // 5,000 outcomes: about three seconds of settling here (1,000 took one, where the ramp-up of
      // the worker's batches weighed on the rate).
      console.error('bench: outcomes (5,000 paid outcomes settled by one worker)...');
      note(...(await outcomesBench(Math.min(ORDERS, 5000))));
    }
  };
  for (let round = 0; round < ROUNDS; round++) {
    if (ROUNDS > 1) {
      roundTag = `round ${round + 1}: `;
      console.error(`bench: round ${round + 1} of ${ROUNDS}`);
    }
    for (const scenario of scenarios as readonly Scenario[]) await runScenario(scenario);
  }
  // Each scenario's median round (the only one, without --rounds).
  const byRound = byScenario(rows);
  const tabled = byRound.map(medianRound);

  const lines = [
    '',
    `dropgate benchmark — ${ORDERS} requests per scenario, ${CONNECTIONS} connections, load generator in a separate process`,
    '',
    'scenario                      | requests/s | p50 ms | p90 ms | p99 ms | max ms | approved | ratio to bare | deadline misses',
    '------------------------------|------------|--------|--------|--------|--------|----------|---------------|----------------',
  ];
  for (const r of tabled) {
    lines.push(`${'bare fastify (same schema)'.padEnd(30)}| ${fmt(r.bare.rps).padStart(10)} | ${fmt(r.bare.p50).padStart(6)} | ${fmt(r.bare.p90).padStart(6)} | ${fmt(r.bare.p99).padStart(6)} | ${fmt(r.bare.max).padStart(6)} | ${'-'.padStart(8)} | ${'1.00'.padStart(13)} | -`);
    lines.push(`${r.scenario.padEnd(30)}| ${fmt(r.run.rps).padStart(10)} | ${fmt(r.run.p50).padStart(6)} | ${fmt(r.run.p90).padStart(6)} | ${fmt(r.run.p99).padStart(6)} | ${fmt(r.run.max).padStart(6)} | ${String(r.approved).padStart(8)} | ${(r.run.rps / r.bare.rps).toFixed(2).padStart(13)} | ${r.misses}`);
  }
  if (ROUNDS > 1) {
    lines.push('', `Each row above is the scenario's median round of ${ROUNDS} by its ratio to bare; all rounds:`, ...byRound.map(spreadLine));
    const small = byRound.find((g) => g[0]!.scenario === twoRuns(SMALL));
    const large = byRound.find((g) => g[0]!.scenario === twoRuns(LARGE));
    if (small && large) lines.push(sizeLine(small, large));
  }
  lines.push('');
  for (const r of tabled) lines.push(`${r.scenario}: status codes ${JSON.stringify(r.run.codes)}; max latency ${fmt(r.run.max)} ms vs budget ${budgetMs} ms`);
  lines.push('', 'CPU per request (every process of the run; the bare server takes the server column; work left for the worker is waited for):');
  for (const r of tabled) {
    if (!r.run.cpu || !r.bare.cpu) continue;
    lines.push(`  ${r.scenario}: ${cpuLine(r.run.cpu)}`, `  ${'bare fastify'.padEnd(r.scenario.length)}: ${cpuLine(r.bare.cpu)}  (${(cpuTotal(r.bare.cpu) / cpuTotal(r.run.cpu)).toFixed(2)} of the scenario's)`);
  }
  if (notes.length > 0) lines.push('', ...notes);
  console.log(lines.join('\n'));
  const out = join(reportsDir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ orders: ORDERS, connections: CONNECTIONS, budgetMs, rows: tabled, ...(ROUNDS > 1 ? { rounds: ROUNDS, allRounds: rows } : {}), notes }, null, 2));
  console.log(`\nresults: ${out}`);

  if (args.profile) {
    const stopped = (child: ChildProcess | null) => new Promise<void>((resolve) => {
      if (child === null || child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGINT');
    });
    await Promise.all([stopped(apiChild), stopped(workerChild)]);
    console.log('\nCPU profile of the API (self time, top 15):');
    console.log(summarizeProfile(profileDir).join('\n'));
    if (workerChild) {
      console.log('\nCPU profile of the worker (self time, top 15):');
      console.log(summarizeProfile(workerProfileDir).join('\n'));
    }
  }
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await db?.destroy();
  await holdsQueue?.close();
  await paymentsQueue?.close();
  // Leave nothing behind in the user's Redis: the events' keys and the queues'.
  if (store) {
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    for (const id of createdEvents) await store.deleteEvent(id).catch(() => undefined);
    await deleteKeysMatching(store.redis, `${queuePrefix}*`).catch(() => undefined);
    // The floor endpoint's hash, should the bare server have died before deleting it.
    await deleteKeysMatching(store.redis, '{bench-floor-*').catch(() => undefined);
    store.redis.disconnect();
  }
}
