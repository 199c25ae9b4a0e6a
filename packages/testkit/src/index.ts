/**
 * Test support that depends on no service (the stack of API and worker is @dropgate/stack). Every test file owns its namespace: its own Postgres database, its own BullMQ queue
 * prefix, unique event ids, and (for tests that pause or flush Redis) its own redis-server process.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { chmod, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { Cluster, Redis } from 'ioredis';
import { request, type Dispatcher } from 'undici';
import { loadConfig, type Config } from '@dropgate/config';
import { dropDatabase, maintenanceUrl, migrationsFingerprint, openDatabase, pgConnection } from '@dropgate/db';
import type { Clock } from '@dropgate/domain';
import { HoldStore, deleteKeysMatching, type RedisClient } from '@dropgate/redis';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
const PG_BASE = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
const REDIS_BASE = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** The Redis tests share (TEST_REDIS_URL, default the local one). */
export const TEST_REDIS_URL = REDIS_BASE;

/** A short random suffix, valid inside event ids. */
export function rand(n = 8): string {
  return randomBytes(8).toString('hex').slice(0, n);
}

/** A unique event id (`<prefix>-<random>`), at most 28 characters. */
export function eventId(prefix = 'ev'): string {
  return `${prefix.slice(0, 18)}-${rand(8)}`;
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Runs `fn` with a client of the test server's maintenance database (creating and dropping databases). */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgConnection(maintenanceUrl(PG_BASE)));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const TEMPLATE_PREFIX = 'dgt_template_';

async function dropTemplate(c: pg.Client, name: string): Promise<void> {
  await c.query(`alter database "${name}" with is_template false`);
  await c.query(`drop database if exists "${name}" with (force)`);
}
let template: Promise<string> | undefined;

/**
 * How long a template of other migrations is kept after its last use. Another checkout (another
 * branch, a colleague's run) may be copying it at this moment: dropping every other template at once,
 * as this did before, failed that checkout's tests with "template database ... does not exist".
 */
export const STALE_TEMPLATE_MS = 24 * 3_600_000;
/** The start of a template's comment; the time it was last used (epoch ms) follows. */
export const TEMPLATE_USED_AT = 'dropgate test template, last used at ';

/**
 * Drops the templates other than `keep` last used more than STALE_TEMPLATE_MS before `nowMs`, and
 * those that do not say when (made before templates said it). @returns the names dropped.
 */
export async function dropStaleTemplates(keep: string, nowMs = Date.now()): Promise<string[]> {
  return withAdmin(async (c) => {
    const others = await c.query<{ datname: string; note: string | null }>(
      `select datname, shobj_description(oid, 'pg_database') as note from pg_database where datname like '${TEMPLATE_PREFIX}%' and datname <> $1`, [keep],
    );
    const dropped: string[] = [];
    for (const { datname, note } of others.rows) {
      const used = note?.startsWith(TEMPLATE_USED_AT) ? Number(note.slice(TEMPLATE_USED_AT.length)) : Number.NaN;
      if (Number.isFinite(used) && nowMs - used <= STALE_TEMPLATE_MS) continue;
      if (await dropTemplate(c, datname).then(() => true, () => false)) dropped.push(datname);
    }
    return dropped;
  });
}

/**
 * The name of a database migrated to the current migrations (`dgt_template_<fingerprint>`), made
 * once per server and version of the migrations: copying it (`create database ... template`) took
 * about 95 ms here against 355 ms for an empty database migrated by the stack that opens it, and
 * each test file opens a few. It is built under a name of its own, then renamed, so a database of
 * the final name is always whole; two processes building it at once both finish, one rename wins.
 * Templates of other versions of the migrations are dropped a day after their last use
 * (dropStaleTemplates).
 */
export function migratedTemplate(): Promise<string> {
  template ??= (async () => {
    const name = `${TEMPLATE_PREFIX}${migrationsFingerprint()}`;
    const exists = await withAdmin(async (c) => (await c.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1);
    if (!exists) {
      const building = `dgt_building_${rand(10)}`;
      const url = new URL(PG_BASE);
      url.pathname = `/${building}`;
      // Creates it and applies every migration.
      await (await openDatabase(url.toString(), { max: 1 })).destroy();
      await withAdmin(async (c) => {
        // A template nobody connects to: a copy needs its source idle.
        await c.query(`alter database "${building}" with is_template true allow_connections false`);
        try {
          await c.query(`alter database "${building}" rename to "${name}"`);
        } catch (error) {
          // Another process published it first (42P04: the name exists): ours is not needed.
          if ((error as { code?: string }).code !== '42P04') throw error;
          await dropTemplate(c, building);
        }
      });
    }
    // Used now: other checkouts keep it for a day from here.
    await withAdmin((c) => c.query(`comment on database "${name}" is '${TEMPLATE_USED_AT}${Date.now()}'`));
    await dropStaleTemplates(name);
    return name;
  })();
  template.catch(() => { template = undefined; });
  return template;
}

/**
 * A fresh database of its own (`dgt_<label>_<random>`), migrated (a copy of `migratedTemplate()`),
 * dropped by `drop()`.
 */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const name = `dgt_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase().slice(0, 30)}_${rand(8)}`;
  const url = new URL(PG_BASE);
  url.pathname = `/${name}`;
  const copy = async () => {
    const source = await migratedTemplate();
    await withAdmin((c) => c.query(`create database "${name}" template "${source}"`));
  };
  try {
    await copy();
  } catch (error) {
    // The template was dropped under us (3D000; a checkout whose testkit dropped every other
    // template): built again, once.
    if ((error as { code?: string }).code !== '3D000') throw error;
    template = undefined;
    await copy();
  }
  return {
    url: url.toString(),
    async drop() {
      await dropDatabase(url.toString());
    },
  };
}

/**
 * A port nothing listens on, for a server a test starts (and the port after it, for servers that take
 * consecutive ports). It is drawn at random from 10000–19999, below the kernel's ephemeral range
 * (32768+ on Linux): a port the kernel hands out (`listen(0)`) can be taken as the local port of any
 * outgoing connection (another test's Redis or Postgres client) between this call and the server's
 * `listen`, which made start-up tests fail at random. A Redis Cluster node's bus port (port + 10000)
 * falls in 20000–29999, where no server of ours listens otherwise.
 *
 * Test files running at the same time draw from separate slices of the range, one per vitest worker
 * (`VITEST_POOL_ID`): a port checked free here and listened on seconds later (a worker process still
 * starting) cannot be taken meanwhile by a file running beside it, which happened with four at once.
 *
 * Nor is a port handed out twice by one process within a few minutes (nor the port beside one handed
 * out): a test drawing two ports before it starts anything (`PORT`, then `WORKER_METRICS_PORT` for two
 * workers, which take it and the next) got the same one twice, and its API could not listen.
 */
const PORT_SLICES = 8;
const PORT_SLICE = 10_000 / PORT_SLICES;
const PORT_REMEMBERED_MS = 5 * 60_000;
const handedOut = new Map<number, number>();

function handedOutRecently(port: number, now: number): boolean {
  return [port - 1, port, port + 1].some((p) => (handedOut.get(p) ?? -Infinity) > now - PORT_REMEMBERED_MS);
}

export async function freePort(): Promise<number> {
  const slice = (Number(process.env['VITEST_POOL_ID'] ?? 0) || 0) % PORT_SLICES;
  const first = 10_000 + slice * PORT_SLICE;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = first + Math.floor(Math.random() * (PORT_SLICE - 1));
    if (handedOutRecently(port, Date.now())) continue;
    if ((await canListen(port)) && (await canListen(port + 1)) && (await canListen(port + 10_000))) {
      handedOut.set(port, Date.now());
      return port;
    }
  }
  throw new Error(`no free port found in ${first}-${first + PORT_SLICE - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export interface PrivateRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (as a Redis without persistence comes back). */
  restart(): Promise<void>;
}

/**
 * A redis-server of this test's own, for tests that pause (CLIENT PAUSE) or flush (FLUSHALL) Redis:
 * doing that to the shared server would disturb every other test running in parallel.
 */
export async function startPrivateRedis(fixedPort?: number): Promise<PrivateRedis> {
  const port = fixedPort ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  const started = Date.now();
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch {
      if (Date.now() - started > 10_000) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  const handle: PrivateRedis = {
    url,
    port,
    process: child,
    async stop() {
      const current = handle.process;
      if (current.exitCode !== null || current.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        current.once('exit', () => resolve());
        current.kill('SIGKILL');
      });
    },
    async restart() {
      await handle.stop();
      const again = await startPrivateRedis(port);
      handle.process = again.process;
    },
  };
  return handle;
}

export interface PrivateClusterNode {
  port: number;
  /** `127.0.0.1:<port>` */
  address: string;
  process: ChildProcess;
}

/** A Redis Cluster of this test's (or rehearsal's) own: 3 primaries, each with one replica. */
export interface PrivateCluster {
  /** Every node, primaries and replicas, as `host:port` seeds for REDIS_CLUSTER_NODES. */
  seeds: string[];
  nodes: PrivateClusterNode[];
  /** The address (`host:port`) of the primary currently serving `key`'s slot. */
  primaryOf(key: string): Promise<string>;
  /** The current primaries' addresses. */
  primaries(): Promise<string[]>;
  /** SIGKILLs the node at `address` (a primary dies: its replica takes over after the node timeout). */
  kill(address: string): Promise<void>;
  /** Resolves when every live node reports `cluster_state:ok` and every slot has a live primary. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /**
   * A plain connection to the node at `address` (not a cluster client): to talk to that server itself
   * (its replication, its slots, MIGRATE). Closed by `stop`.
   */
  client(address: string): Redis;
  /** Kills every node and removes their files. */
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);
const clusterChildren = new Set<ChildProcess>();
let clusterExitHook = false;

async function redisCli(args: string[], timeoutMs = 30_000): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', args, { timeout: timeoutMs });
  return stdout;
}

/**
 * Starts a private Redis Cluster: six `redis-server --cluster-enabled yes` on free ports (no
 * persistence, so a killed node's unreplicated writes are lost as in production), joined by
 * `redis-cli --cluster create --cluster-replicas 1`, and waits (by condition) until every node says
 * `cluster_state:ok` and every primary has an attached, synced replica. `nodeTimeoutMs` is the
 * cluster's failure detection time: a killed primary's replica is promoted about that long after.
 */
export async function startPrivateCluster(opts: { nodeTimeoutMs?: number; primaries?: number } = {}): Promise<PrivateCluster> {
  const count = (opts.primaries ?? 3) * 2;
  const dir = await mkdtemp(join(tmpdir(), 'dgt-cluster-'));
  const nodes: PrivateClusterNode[] = [];
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  if (!clusterExitHook) {
    clusterExitHook = true;
    // A test process that dies must not leave servers behind.
    process.once('exit', () => {
      for (const c of clusterChildren) c.kill('SIGKILL');
    });
  }
  // The checks below (PING, CLUSTER INFO/NODES/KEYSLOT, INFO) go through one plain connection per
  // node, kept for the cluster's life: a redis-cli process per check cost a spawn from the test
  // process each time, and waitHealthy polls all six nodes every 50 ms through a failover.
  const conns = new Map<number, Redis>();
  const drop = (port: number) => {
    conns.get(port)?.disconnect();
    conns.delete(port);
  };
  const ask = async (port: number, ...command: [string, ...string[]]): Promise<unknown> => {
    let conn = conns.get(port);
    if (!conn) {
      conn = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2_000, commandTimeout: 2_000 });
      conn.on('error', () => undefined);
      // A closed connection (the node killed, or the check timed out) is opened again by the next check.
      conn.once('end', () => { if (conns.get(port) === conn) conns.delete(port); });
      conns.set(port, conn);
    }
    try {
      return await conn.call(...command);
    } catch (error) {
      drop(port);
      throw error;
    }
  };
  const clients: Redis[] = [];
  const stop = async () => {
    for (const port of [...conns.keys()]) drop(port);
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.all(nodes.map((n) => new Promise<void>((resolve) => {
      clusterChildren.delete(n.process);
      if (n.process.exitCode !== null || n.process.signalCode !== null) return resolve();
      n.process.once('exit', () => resolve());
      n.process.kill('SIGKILL');
    })));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const child = spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 2_000),
        // A replica may always take over, however long it was disconnected (the test decides when).
        '--cluster-replica-validity-factor', '0',
        '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--maxmemory-policy', 'noeviction',
      ], { stdio: 'ignore' });
      clusterChildren.add(child);
      nodes.push({ port, address: `127.0.0.1:${port}`, process: child });
    }
    for (const n of nodes) await waitFor(async () => (await ask(n.port, 'PING').catch(() => '')) === 'PONG', 10_000, `redis-server on ${n.port}`);
    await redisCli(['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', '1', '--cluster-yes'], 60_000);
    const live = () => nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null);
    const clusterNodes = async (port: number) => String(await ask(port, 'CLUSTER', 'NODES')).trim().split('\n').map((line) => line.split(' '));
    const handle: PrivateCluster = {
      seeds: nodes.map((n) => n.address),
      nodes,
      async primaries() {
        const rows = await clusterNodes(live()[0]!.port);
        return rows.filter((r) => r[2]!.includes('master') && !r[2]!.includes('fail') && r.length > 8).map((r) => r[1]!.split('@')[0]!);
      },
      async primaryOf(key) {
        const slot = Number(await ask(live()[0]!.port, 'CLUSTER', 'KEYSLOT', key));
        const rows = await clusterNodes(live()[0]!.port);
        for (const r of rows) {
          if (!r[2]!.includes('master') || r[2]!.includes('fail')) continue;
          for (const range of r.slice(8)) {
            const [from, to] = range.split('-').map(Number);
            if (slot >= from! && slot <= (to ?? from!)) return r[1]!.split('@')[0]!;
          }
        }
        throw new Error(`no live primary serves slot ${slot} (key ${key})`);
      },
      async kill(address) {
        const n = nodes.find((x) => x.address === address);
        if (!n) throw new Error(`${address} is not a node of this cluster`);
        drop(n.port);
        if (n.process.exitCode !== null || n.process.signalCode !== null) return;
        await new Promise<void>((resolve) => {
          n.process.once('exit', () => resolve());
          n.process.kill('SIGKILL');
        });
        clusterChildren.delete(n.process);
      },
      async waitHealthy(timeoutMs = 30_000) {
        await waitFor(async () => {
          for (const n of live()) {
            const info = String(await ask(n.port, 'CLUSTER', 'INFO').catch(() => ''));
            if (!info.includes('cluster_state:ok')) return false;
          }
          // Every slot served by a primary that is not failed and is alive: right after a kill the
          // others still see the dead primary as healthy (until cluster-node-timeout), so its slots
          // count only once a live replica has taken them over.
          const rows = await clusterNodes(live()[0]!.port).catch(() => []);
          const alive = new Set(live().map((n) => n.address));
          let covered = 0;
          for (const r of rows) {
            if (!r[2]!.includes('master') || r[2]!.includes('fail')) continue;
            if (!alive.has(r[1]!.split('@')[0]!)) continue;
            for (const range of r.slice(8)) {
              if (range.startsWith('[')) continue;
              const [from, to] = range.split('-').map(Number);
              covered += (to ?? from!) - from! + 1;
            }
          }
          return covered === 16384;
        }, timeoutMs, 'the cluster to be healthy');
      },
      client(address) {
        const [host, port] = address.split(':');
        const c = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 });
        c.on('error', () => undefined);
        clients.push(c);
        return c;
      },
      stop,
    };
    await handle.waitHealthy(60_000);
    // Every primary has a replica that has synced (so a kill is a failover, not an outage).
    await waitFor(async () => {
      const rows = await clusterNodes(nodes[0]!.port);
      const replicas = rows.filter((r) => r[2]!.includes('slave'));
      if (replicas.length !== count / 2) return false;
      for (const r of replicas) {
        const port = Number(r[1]!.split('@')[0]!.split(':')[1]);
        const info = String(await ask(port, 'INFO', 'replication').catch(() => ''));
        if (!info.includes('master_link_status:up')) return false;
      }
      return true;
    }, 60_000, 'every replica to sync with its primary');
    return handle;
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`: swap the database name for your own. */
  url: string;
  port: number;
  dataDir: string;
  /** Stops the server: `fast` (default) ends sessions with 57P01 as an operator would, `immediate` as a crash. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data (waits until it accepts connections). */
  start(): Promise<void>;
  /** `pg_ctl restart -m fast`: every session is terminated (57P01), then the server comes back. */
  restart(): Promise<void>;
  /** Stops it (immediately) and deletes its data. */
  destroy(): Promise<void>;
}


/** The newest installed PostgreSQL's bin directory (Debian layout), or '' to use PATH. */
async function postgresBinDir(): Promise<string> {
  const base = '/usr/lib/postgresql';
  const versions = await readdir(base).catch(() => [] as string[]);
  const newest = versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))[0];
  return newest ? join(base, newest, 'bin') : '';
}

/**
 * A Postgres cluster of this test's own (initdb + pg_ctl, trust auth, on a free port, data under the
 * temp dir), for tests and the chaos campaign that stop or restart Postgres: doing that to the shared
 * server would break every other test. Postgres refuses to run as root, so as root the cluster runs as
 * the `postgres` user (runuser).
 */
export async function startPrivatePostgres(opts: { port?: number } = {}): Promise<PrivatePostgres> {
  const bin = await postgresBinDir();
  const tool = (name: string) => (bin ? join(bin, name) : name);
  const asRoot = userInfo().uid === 0;
  const run = async (name: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', tool(name), ...args]] : [tool(name), args];
    try {
      await execFileAsync(file, argv, { timeout: 60_000 });
    } catch (error) {
      const e = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${name} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`, { cause: error });
    }
  };
  const port = opts.port ?? (await freePort());
  const dataDir = await mkdtemp(join(tmpdir(), 'dgt-pg-'));
  if (asRoot) {
    const pgUser = await execFileAsync('id', ['-u', 'postgres']).then((r) => Number(r.stdout.trim()));
    const pgGroup = await execFileAsync('id', ['-g', 'postgres']).then((r) => Number(r.stdout.trim()));
    await chown(dataDir, pgUser, pgGroup);
  }
  await chmod(dataDir, 0o700);
  await run('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const serverOptions = [
    `-p ${port}`, `-k ${dataDir}`, '-c listen_addresses=127.0.0.1', '-c fsync=off',
    '-c full_page_writes=off', '-c max_connections=60', '-c shared_buffers=32MB',
  ].join(' ');
  let running = false;
  const handle: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    async start() {
      await run('pg_ctl', ['-D', dataDir, '-l', join(dataDir, 'server.log'), '-o', serverOptions, '-w', '-t', '30', 'start']);
      running = true;
    },
    async stop(mode = 'fast') {
      if (!running) return;
      await run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '30', 'stop']);
      running = false;
    },
    async restart() {
      await run('pg_ctl', ['-D', dataDir, '-l', join(dataDir, 'server.log'), '-o', serverOptions, '-m', 'fast', '-w', '-t', '30', 'restart']);
      running = true;
    },
    async destroy() {
      await handle.stop('immediate').catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await handle.start();
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return handle;
}

/**
 * A clock a test moves forward: the system time plus every `advance()` so far. Holds, sale windows,
 * the sweep's "overdue" and the expiry's grace follow it, so a test skips a hold's TTL instead of
 * waiting it out (BullMQ's own timers, backoff and the simulator still run in real time).
 */
export class TestClock implements Clock {
  #offsetMs = 0;
  now(): number {
    return Date.now() + this.#offsetMs;
  }
  advance(ms: number): void {
    this.#offsetMs += ms;
  }
}

/**
 * A clock that stands still unless a test moves it: paces (a waiting room's admissions) are then exact
 * however slowly a loaded machine runs the test's requests. TestClock moves with real time.
 */
export class FrozenClock implements Clock {
  #ms = Date.now();
  now(): number {
    return this.#ms;
  }
  advance(ms: number): void {
    this.#ms += ms;
  }
}

/**
 * What every stack a test runs inside its own process is configured with (testConfig here, the drop
 * tests' in-process stacks). Such a stack runs beside three other test files on a 2-core machine: a
 * process starved of CPU for a second is the machine's state, not the service's, and the event-loop
 * gate would shed a request a test then sees as a 503 (a race test's GET of the event did once).
 * Shedding by event-loop delay has its own tests (event-loop-gate.test).
 */
export const IN_PROCESS_STACK_ENV: Readonly<Record<string, string>> = { MAX_EVENT_LOOP_DELAY_MS: '60000' };

export function testConfig(overrides: Record<string, string>): Config {
  return loadConfig({}, {
    HOST: '127.0.0.1',
    PORT: '0',
    WORKER_METRICS_PORT: '0',
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    LOG_LEVEL: 'silent',
    PORTONE_IMP_KEY: 'test-key',
    PORTONE_IMP_SECRET: 'test-secret',
    // Tests read the availability they just changed; the read cache has tests of its own.
    READ_CACHE_MS: '0',
    ...IN_PROCESS_STACK_ENV,
    ...overrides,
  });
}

/** Where a test's API and worker run: their options (see @dropgate/stack and each service's test support). */
export interface TestEnvironmentOptions {
  label?: string;
  redisUrl?: string;
  /** Redis Cluster seeds (`host:port`, see {@link startPrivateCluster}): the stack runs on the cluster. */
  clusterNodes?: readonly string[];
  /**
   * Use this database (created if missing, e.g. on a private Postgres) instead of a fresh one on the
   * shared server; it is left in place by `dispose()`.
   */
  databaseUrl?: string;
  budgetMs?: number;
  portoneUrl?: string;
  env?: Record<string, string>;
}

/** A test's own database, queue prefix and configuration, and a Redis client for assertions. */
export interface TestEnvironment {
  config: Config;
  db: TestDatabase;
  prefix: string;
  /** A client for assertions: a Cluster when the environment runs on one. */
  redis: RedisClient;
  store: HoldStore;
  /** Removes the events' Redis keys and the queue keys, then drops the database. */
  dispose(eventIds: readonly string[]): Promise<void>;
}

export async function testEnvironment(opts: TestEnvironmentOptions = {}): Promise<TestEnvironment> {
  const db: TestDatabase = opts.databaseUrl
    ? { url: opts.databaseUrl, drop: async () => undefined }
    : await createTestDatabase(opts.label ?? 'stack');
  const prefix = `{dgt-${rand(10)}}`;
  let config: Config;
  try {
    config = testConfig({
      DATABASE_URL: db.url,
      REDIS_URL: opts.redisUrl ?? REDIS_BASE,
      CONFIRM_BUDGET_MS: String(opts.budgetMs ?? 3000),
      PORTONE_API_URL: opts.portoneUrl ?? 'http://127.0.0.1:9',
      SWEEP_INTERVAL_MS: '500',
      EXPIRY_GRACE_SECONDS: '5',
      LATE_PAYMENT_WATCH_SECONDS: '16',
      // Test files run in parallel against one Postgres (max_connections 100): keep pools small.
      WORKER_CONCURRENCY: '8',
      ...(opts.clusterNodes ? { REDIS_CLUSTER_NODES: opts.clusterNodes.join(',') } : {}),
      ...(opts.env ?? {}),
    });
  } catch (error) {
    // A configuration the test got wrong leaves no database behind.
    await db.drop().catch(() => undefined);
    throw error;
  }
  const redis: RedisClient = config.redisClusterNodes
    ? new Cluster([...config.redisClusterNodes], { scaleReads: 'master', redisOptions: { maxRetriesPerRequest: 1 } })
    : new Redis(config.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const store = new HoldStore(redis);
  return {
    config, db, prefix, redis, store,
    async dispose(eventIds) {
      try {
        for (const id of eventIds) await store.deleteEvent(id);
        await deleteKeysMatching(redis, `${prefix}*`);
      } catch {
        // A private Redis may be gone already.
      }
      redis.disconnect();
      await db.drop();
    },
  };
}

/** JSON over HTTP with the admin token when asked. */
export async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { admin?: boolean; headers?: Record<string, string>; raw?: string } = {},
): Promise<{ status: number; body: any; text: string; headers: Record<string, string> }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.admin) headers.authorization = `Bearer ${TEST_ADMIN_TOKEN}`;
  let payload: string | undefined;
  if (opts.raw !== undefined) payload = opts.raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  // undici's request(), not fetch: the tests send thousands of requests (races, forgeries), and fetch's
  // WHATWG streams cost each one about twice the CPU in the test process.
  const res = await request(new URL(path, base), { method: method.toUpperCase() as Dispatcher.HttpMethod, headers, body: payload });
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  const answerHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) answerHeaders[name] = Array.isArray(value) ? value.join(', ') : value;
  return { status: res.statusCode, body: parsed, text, headers: answerHeaders };
}

/** Creates an order through the storefront API; throws (with the answer) unless it is a 201. */
export async function newOrder(base: string, eventId: string, body: Record<string, unknown>): Promise<{ merchant_uid: string; amount: number; order_token: string }> {
  const res = await http(base, 'POST', `/events/${eventId}/orders`, body);
  if (res.status !== 201) throw new Error(`order for ${eventId} answered ${res.status}: ${res.text}`);
  return res.body as { merchant_uid: string; amount: number; order_token: string };
}

/**
 * `n` connections to `port` on `host` that send nothing, opened one after another (each once it is
 * connected or closed): what a client holding connections idle does. `closed()` counts those the
 * server has closed so far.
 */
export async function openIdleConnections(port: number, n: number, host = '127.0.0.1'): Promise<{ sockets: Socket[]; closed(): number; destroy(): void }> {
  const sockets: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < n; i++) {
    const s = connect(port, host);
    s.on('error', () => undefined);
    s.on('close', () => { closed++; });
    sockets.push(s);
    await new Promise<void>((resolve) => { s.once('connect', () => resolve()); s.once('close', () => resolve()); });
  }
  return { sockets, closed: () => closed, destroy: () => { for (const s of sockets) s.destroy(); } };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, label = 'condition'): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let impCounter = 0;
/** A unique imp_uid in PortOne's shape. */
export function impUid(): string {
  impCounter++;
  return `imp_${Date.now().toString().slice(-6)}${String(impCounter).padStart(6, '0')}${rand(4)}`;
}

/** A fresh Standard Webhooks secret for a test (`whsec_` + base64 of 24 random bytes): never a constant. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/**
 * Standard Webhooks headers for `body` as PortOne V2 signs it: HMAC-SHA256 of
 * `${id}.${timestamp}.${body}` with the base64-decoded secret, `v1,<base64>`.
 */
export function signWebhook(
  secret: string, body: string, opts: { id?: string; timestamp?: number } = {},
): { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string } {
  const id = opts.id ?? `msg_${rand(16)}`;
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` };
}
