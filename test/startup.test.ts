/**
 * Start-up as an operator meets it (issue 13, "a fresh machine"): a port already in use, Postgres
 * unreachable or refusing to create the database, Redis refusing: each stops start-up within seconds
 * with one line naming the variable to change, and no stack trace. `npm start` writes JSON lines
 * when its output is not a terminal, and readable lines (pino-pretty) on one.
 *
 * Every case spawns the real entry point with Node from node_modules/.bin, as npm scripts do.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { compileCacheEnv, explainStartupFailure } from '@dropgate/config';
import { pgConnection } from '@dropgate/db';
import { deleteKeysMatching } from '@dropgate/redis';
import { createTestDatabase, freePort, openIdleConnections, rand, TEST_ADMIN_TOKEN, waitFor, type TestDatabase } from '@dropgate/testkit';
import { METRICS_PORT_MAX_CONNECTIONS } from '@dropgate/api';

const root = resolve(import.meta.dirname, '..');
const NODE = join(root, 'node_modules', '.bin', 'node');
const START = 'scripts/start.ts';
const API = 'services/api/src/server.ts';
const WORKER = 'services/worker/src/main.ts';
const SIM = 'services/portone-sim/src/main.ts';
const PG_ADMIN = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** How long a refused start-up may take (the worker's Postgres pool waits up to 5 s for a connection). */
const EXIT_WITHIN_MS = 20_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` with `env` until it exits (killed, and the test failed, after `withinMs`). */
function runUntilExit(script: string, env: Record<string, string>, withinMs = EXIT_WITHIN_MS): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(NODE, [script], { cwd: root, env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} still running after ${withinMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, withinMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes are drained; 'close' comes after.
      child.on('close', () => resolveRun({ code, signal, stdout, stderr }));
    });
  });
}

let db: TestDatabase;
let held: Server;
let heldPort: number;
let deadPort: number;
const roles: string[] = [];

/** Queue prefixes the runs used: their BullMQ keys go when the file ends. */
const prefixes: string[] = [];
const prefix = () => {
  const p = `{st-${rand(8)}}`;
  prefixes.push(p);
  return p;
};

/** The environment of a run: a database and free ports of this file, the rest from `env`. */
function baseEnv(env: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...compileCacheEnv(),
    DATABASE_URL: db.url,
    REDIS_URL: REDIS,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    QUEUE_PREFIX: prefix(),
    PORTONE_API_URL: 'http://127.0.0.1:9',
    PORTONE_IMP_KEY: 'k',
    PORTONE_IMP_SECRET: 's',
    WORKER_NICE: '0',
    ...env,
  };
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client(pgConnection(PG_ADMIN));
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The refusal: non-zero exit, a line naming `variable`, and nothing that looks like a stack trace. */
function expectRefusal(run: Run, variable: string): void {
  const output = `${run.stdout}\n${run.stderr}`;
  expect(run.code, output).not.toBe(0);
  expect(run.code, output).not.toBeNull();
  const lines = run.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines.filter((l) => new RegExp(`\\b${variable}\\b`).test(l)), output).toHaveLength(1);
  expect(output).not.toMatch(/^\s+at /m);
  expect(output).not.toMatch(/Error:|\{\s*$/m);
}

beforeAll(async () => {
  db = await createTestDatabase('startup');
  held = createServer();
  await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
  heldPort = (held.address() as { port: number }).port;
  deadPort = await freePort();
});

afterAll(async () => {
  await new Promise((r) => held.close(r));
  await db.drop();
  for (const role of roles) await adminQuery(`drop role if exists "${role}"`);
  const redis = new Redis(REDIS);
  try {
    for (const p of prefixes) await deleteKeysMatching(redis, `${p}:*`);
  } finally {
    redis.disconnect();
  }
});

describe('a port already in use', () => {
  it('npm start names PORT', async () => {
    expectRefusal(await runUntilExit(START, { PORT: String(heldPort), WORKER_METRICS_PORT: String(await freePort()) }), 'PORT');
  });

  it('the API names PORT (its listen fails after the database and Redis are ready)', async () => {
    expectRefusal(await runUntilExit(API, { PORT: String(heldPort) }), 'PORT');
  });

  it('the API names API_METRICS_PORT', async () => {
    expectRefusal(await runUntilExit(API, { PORT: String(await freePort()), API_METRICS_PORT: String(heldPort) }), 'API_METRICS_PORT');
  });

  it('npm start names API_METRICS_PORT when its range lands on PORT', async () => {
    const port = await freePort();
    expectRefusal(await runUntilExit(START, { PORT: String(port), WORKER_METRICS_PORT: String(await freePort()), API_PROCESSES: '2', API_METRICS_PORT: String(port - 1) }), 'API_METRICS_PORT');
  });

  it('the worker names WORKER_METRICS_PORT', async () => {
    expectRefusal(await runUntilExit(WORKER, { WORKER_METRICS_PORT: String(heldPort) }), 'WORKER_METRICS_PORT');
  });

  it('the simulator names SIM_PORT', async () => {
    expectRefusal(await runUntilExit(SIM, { SIM_PORT: String(heldPort) }), 'SIM_PORT');
  });
});

describe('Postgres', () => {
  it('unreachable: npm start and the API name DATABASE_URL', async () => {
    const url = `postgres://127.0.0.1:${deadPort}/dropgate`;
    expectRefusal(await runUntilExit(START, { DATABASE_URL: url, PORT: String(await freePort()), WORKER_METRICS_PORT: String(await freePort()) }), 'DATABASE_URL');
    expectRefusal(await runUntilExit(API, { DATABASE_URL: url, PORT: String(await freePort()) }), 'DATABASE_URL');
  });

  it('refusing to create the database (a user without CREATEDB): names DATABASE_URL, with the password hidden', async () => {
    const role = `dgt_nocreate_${rand(8)}`;
    roles.push(role);
    await adminQuery(`create role "${role}" login password 'pw-${role}'`);
    const url = `postgres://${role}:pw-${role}@127.0.0.1:5432/dgt_never_${rand(8)}`;
    const run = await runUntilExit(START, { DATABASE_URL: url, PORT: String(await freePort()), WORKER_METRICS_PORT: String(await freePort()) });
    expectRefusal(run, 'DATABASE_URL');
    expect(run.stderr).toContain('cannot create database');
    expect(run.stderr).not.toContain(`pw-${role}`);
  });
});

describe('Redis refusing', () => {
  it('npm start and the API name REDIS_URL', async () => {
    const url = `redis://127.0.0.1:${deadPort}`;
    expectRefusal(await runUntilExit(START, { REDIS_URL: url, PORT: String(await freePort()), WORKER_METRICS_PORT: String(await freePort()) }), 'REDIS_URL');
    expectRefusal(await runUntilExit(API, { REDIS_URL: url, PORT: String(await freePort()) }), 'REDIS_URL');
  });
});

describe('explainStartupFailure', () => {
  const settings = { host: '127.0.0.1', port: 3000, workerMetricsPort: 3001, databaseUrl: 'postgres://u:secret@db.example:5432/x', redisUrl: 'redis://127.0.0.1:6379' };

  it('names the variable by the address the error carries', () => {
    const refused = (port: number) => Object.assign(new Error(`connect ECONNREFUSED 10.0.0.1:${port}`), { code: 'ECONNREFUSED', address: '10.0.0.1', port });
    expect(explainStartupFailure(refused(5432), settings)?.variable).toBe('DATABASE_URL');
    expect(explainStartupFailure(refused(6379), settings)?.variable).toBe('REDIS_URL');
    expect(explainStartupFailure(refused(5432), settings)?.message).not.toContain('secret');
    const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE', syscall: 'listen', address: '127.0.0.1', port: 3001 });
    expect(explainStartupFailure(inUse, settings)?.variable).toBe('WORKER_METRICS_PORT');
  });

  it('leaves a bug a bug: an error it cannot attribute keeps its stack (undefined)', () => {
    expect(explainStartupFailure(new TypeError('x is not a function'), settings)).toBeUndefined();
    const elsewhere = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:9999'), { code: 'ECONNREFUSED', address: '10.0.0.1', port: 9999 });
    expect(explainStartupFailure(elsewhere, settings)).toBeUndefined();
    const sqlBug = Object.assign(new Error('syntax error at or near "selct"'), { code: '42601', severity: 'ERROR' });
    expect(explainStartupFailure(sqlBug, settings)).toBeUndefined();
  });
});

/** The inodes of the sockets listening on TCP `port` (IPv4 and IPv6), from /proc/net. */
function listeningInodes(port: number): Set<string> {
  const out = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A: LISTEN
      if (parseInt(f[1]!.split(':').pop()!, 16) === port) out.add(f[9]!);
    }
  }
  return out;
}

/** The inodes of the sockets process `pid` holds open. */
function socketInodes(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      return m ? [m[1]!] : [];
    } catch {
      return [];
    }
  });
}

/** Opens `bound` + `beyond` idle connections to `port`: at least `beyond` of them are closed within 1.5 s. */
async function expectClosedBeyondBound(port: number, bound: number, beyond: number): Promise<void> {
  const idle = await openIdleConnections(port, bound + beyond);
  try {
    const deadline = Date.now() + 1_500;
    while (idle.closed() < beyond && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(idle.closed()).toBeGreaterThanOrEqual(beyond);
  } finally {
    idle.destroy();
  }
}

describe('npm start logs', () => {
  it('are JSON lines when stdout is not a terminal, and it stops cleanly on SIGTERM', async () => {
    const child = spawn(NODE, [START], { cwd: root, env: baseEnv({ PORT: String(await freePort()), WORKER_METRICS_PORT: String(await freePort()) }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      // Both processes say they run: the API listens, the worker runs.
      const deadline = Date.now() + 60_000;
      while (!(/Server listening/.test(stdout) && /worker running/.test(stdout))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up\nstdout:\n${stdout}\nstderr:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))])).toBe(0);
    const lines = stdout.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown; time?: unknown };
      expect(typeof entry.level, line).toBe('number');
      expect(typeof entry.msg, line).toBe('string');
    }
    expect(lines.some((l) => (JSON.parse(l) as { name?: string }).name === 'dropgate')).toBe(true);
    expect(stderr).toBe('');
  });

  it('API_PROCESSES and WORKER_PROCESSES: two of each share the port, and SIGTERM stops every one', async () => {
    const port = await freePort();
    const metrics = await freePort();
    const apiMetrics = await freePort();
    const maxConnections = 20;
    const child = spawn(NODE, [START], {
      cwd: root,
      env: baseEnv({
        PORT: String(port), WORKER_METRICS_PORT: String(metrics), API_METRICS_PORT: String(apiMetrics), API_PROCESSES: '2', WORKER_PROCESSES: '2',
        MAX_CONNECTIONS: String(maxConnections),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const entries = () => stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { msg?: string; pid?: number; metrics?: string });
    try {
      const deadline = Date.now() + 90_000;
      while (entries().filter((e) => /Server listening/.test(e.msg ?? '')).length < 2 || entries().filter((e) => e.msg === 'worker running').length < 2) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up\nstdout:\n${stdout}\nstderr:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // Two API processes (two pids) listen on the one port; two workers, on consecutive metrics ports.
      expect(new Set(entries().filter((e) => /Server listening/.test(e.msg ?? '')).map((e) => e.pid)).size).toBe(2);
      expect(entries().filter((e) => e.msg === 'worker running').map((e) => e.metrics).sort()).toEqual([
        `http://127.0.0.1:${metrics}/metrics`, `http://127.0.0.1:${metrics + 1}/metrics`,
      ]);
      for (let i = 0; i < 4; i++) expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      for (const p of [metrics, metrics + 1]) expect((await fetch(`http://127.0.0.1:${p}/healthz`)).status).toBe(200);
      // Each API process is scraped on a port of its own (through PORT a scrape reaches either one),
      // and nothing but /metrics and /healthz is served there.
      for (const p of [apiMetrics, apiMetrics + 1]) {
        const res = await fetch(`http://127.0.0.1:${p}/metrics`);
        expect(res.status, String(p)).toBe(200);
        const text = await res.text();
        expect(text).toContain('dropgate_confirm_duration_seconds');
        expect((await fetch(`http://127.0.0.1:${p}/healthz`)).status).toBe(200);
        const other = await fetch(`http://127.0.0.1:${p}/events/x`);
        expect(other.status).toBe(404);
        expect(await other.json()).toMatchObject({ code: 'NOT_FOUND' });
      }
      // Its bound holds under the cluster too: the process accepts on its own port (a shared listen
      // is the primary's, which held the connections a process refused: attack round 15).
      await expectClosedBeyondBound(apiMetrics, METRICS_PORT_MAX_CONNECTIONS, 8);
      // MAX_CONNECTIONS holds on the shared PORT too: each process keeps 20, and the connections beyond
      // are closed at once (a process refusing one at Node's maxConnections handed it back to the
      // primary, which kept it, and its file, circling between the processes: none closed).
      await expectClosedBeyondBound(port, 2 * maxConnections, 10);
      // Each API process listens on PORT itself; npm start's own process holds no socket of it (under
      // node's cluster it accepted every connection, and a connect-and-close flood queued them there,
      // up to its open-files limit: attack round 16).
      const apiPids = [...new Set(entries().filter((e) => /Server listening/.test(e.msg ?? '')).map((e) => e.pid!))];
      const listening = listeningInodes(port);
      expect(listening.size).toBe(2);
      for (const pid of apiPids) expect(socketInodes(pid).filter((i) => listening.has(i)), `API process ${pid}`).toHaveLength(1);
      expect(socketInodes(child.pid!).filter((i) => listening.has(i))).toEqual([]);
      // And the port goes on serving.
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))])).toBe(0);
    // Every process closed gracefully and nothing listens any more.
    expect(entries().filter((e) => e.msg === 'closing').length).toBe(4);
    for (const p of [port, metrics, metrics + 1, apiMetrics, apiMetrics + 1]) {
      const probe = createServer();
      await new Promise<void>((r, j) => probe.once('error', j).listen(p, '127.0.0.1', () => r()));
      await new Promise((r) => probe.close(r));
    }
    expect(stderr).toBe('');
  });

  it('a process that dies after it ran is started again alone, and the API answers meanwhile', async () => {
    const port = await freePort();
    const child = spawn(NODE, [START], { cwd: root, env: baseEnv({ PORT: String(port), WORKER_METRICS_PORT: String(await freePort()) }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const entries = () => stdout.split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; pid?: number; restartInMs?: number; signal?: string });
    const workers = () => entries().filter((e) => e.msg === 'worker running').map((e) => e.pid!);
    try {
      await waitFor(async () => workers().length === 1 && /Server listening/.test(stdout), 60_000, `npm start to come up:\n${stdout}`);
      const [first] = workers();
      const api = entries().find((e) => /Server listening/.test(e.msg ?? ''))!.pid!;
      // Past the start-up window: this is a crash, not a process that failed to start.
      await new Promise((r) => setTimeout(r, 10_500));
      process.kill(first!, 'SIGKILL');
      await waitFor(async () => {
        expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
        return workers().length === 2;
      }, 30_000, `the worker to be started again:\n${stdout}`);
      expect(workers()[1]).not.toBe(first);
      expect(entries().find((e) => e.msg === 'worker exited (SIGKILL); starting it again')).toMatchObject({ signal: 'SIGKILL', restartInMs: 1_000 });
      // The API was not touched: the same process answers.
      expect(entries().filter((e) => /Server listening/.test(e.msg ?? '')).map((e) => e.pid)).toEqual([api]);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))])).toBe(0);
  });

  it('are readable lines (pino-pretty) on a terminal', async () => {
    // util-linux's `script` gives the command a pseudo-terminal (it is in every Debian install).
    expect(spawnSync('script', ['--version']).status, 'script (util-linux) is needed for this test').toBe(0);
    const port = await freePort();
    const env = baseEnv({ PORT: String(port), WORKER_METRICS_PORT: String(await freePort()), TERM: 'dumb' });
    const child = spawn('script', ['-qefc', `${NODE} ${START}`, '/dev/null'], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    try {
      const deadline = Date.now() + 60_000;
      // eslint-disable-next-line no-control-regex -- strips the colours pino-pretty writes to a terminal
      const plain = () => out.replace(/\u001b\[[0-9;]*m/g, '');
      while (!(/INFO.*\(dropgate-worker\).*worker running/.test(plain()) && /Server listening/.test(plain()))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start on a terminal did not come up:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(plain()).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(dropgate\): dropgate: API on/m);
      expect(plain()).not.toMatch(/^\{"level"/m);
    } finally {
      // Ctrl-C on the terminal: start.ts stops both processes.
      child.stdin.write('\u0003');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // Nothing is left listening on the API port.
    const probe = createServer();
    await new Promise<void>((r, j) => probe.once('error', j).listen(port, '127.0.0.1', () => r()));
    await new Promise((r) => probe.close(r));
  });
});
