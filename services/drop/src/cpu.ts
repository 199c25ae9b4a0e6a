/**
 * Where a drop's CPU went: each part's CPU seconds over the drop, read from /proc (Linux) for the
 * processes the drop started and the local Postgres, and from INFO cpu for Redis. A rehearsal on a
 * small machine mostly measures how the cores are shared; this says which part took them.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { primaries, type RedisClient } from '@dropgate/redis';

/** CPU seconds by part. In-process parts (the default drop) count in `drop`; null: not measurable here. */
export interface CpuSeconds {
  /** This process: the drop's driver, and whatever runs in-process (buyers, simulator, API, worker). */
  drop: number;
  buyers: number;
  simulator: number;
  api: number;
  worker: number;
  /** The whole Redis server (every primary of a cluster), other clients' work included. */
  redis: number | null;
  /** Every process of the local Postgres server, other databases' work included; null when not local. */
  postgres: number | null;
}

/** What the drop started in processes of its own (the buyer processes report their own CPU). */
export interface CpuSources {
  redis: RedisClient;
  simulator: number | null;
  /** `npm start` (scripts/start.ts): its API and worker processes are found below it. */
  stack: number | null;
}

const TICKS = 100; // Linux USER_HZ

interface Proc { pid: number; comm: string; ppid: number; cpu: number; cpuWithReaped: number }

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ');
    const own = (Number(f[11]) + Number(f[12])) / TICKS;
    return { pid, comm: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(f[1]), cpu: own, cpuWithReaped: own + (Number(f[13]) + Number(f[14])) / TICKS };
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function allPids(): number[] {
  try {
    return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  } catch {
    return [];
  }
}

/** The API and worker processes below `npm start`, by their entry points. */
function stackCpu(root: number, procs: readonly Proc[]): { api: number; worker: number } {
  const children = new Map<number, Proc[]>();
  for (const p of procs) {
    const siblings = children.get(p.ppid);
    if (siblings) siblings.push(p);
    else children.set(p.ppid, [p]);
  }
  const out = { api: 0, worker: 0 };
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      const cmd = cmdline(child.pid);
      if (cmd.includes('services/api/')) out.api += child.cpu;
      else if (cmd.includes('services/worker/')) out.worker += child.cpu;
      walk(child.pid);
    }
  };
  walk(root);
  return out;
}

/** CPU seconds of process `pid` so far, with those of its children it has reaped; 0 when gone. */
export function processCpu(pid: number | null | undefined): number {
  return pid === null || pid === undefined ? 0 : readProc(pid)?.cpuWithReaped ?? 0;
}

/** CPU seconds so far of every process of the local Postgres servers; null when none runs here. */
export function localPostgresCpu(): number | null {
  const servers = postgresCpu(allPids().map(readProc).filter((p): p is Proc => p !== null));
  return servers === null ? null : Object.values(servers).reduce((a, b) => a + b, 0);
}

/**
 * CPU seconds so far of each local Postgres server, by its postmaster's pid (a postgres process whose
 * parent is not one): its own, its living processes' and those of its processes that ended (the
 * postmaster reaps them). Kept apart so that a server that starts or stops between two samples (a
 * test's private Postgres) is left out of the difference instead of taking its CPU with it.
 */
function postgresCpu(procs: readonly Proc[]): Record<number, number> | null {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const isPostgres = (p: Proc | undefined) => p !== undefined && p.comm === 'postgres';
  const servers: Record<number, number> = {};
  let found = false;
  for (const p of procs) {
    if (!isPostgres(p)) continue;
    found = true;
    let root = p;
    while (isPostgres(byPid.get(root.ppid))) root = byPid.get(root.ppid)!;
    servers[root.pid] = (servers[root.pid] ?? 0) + p.cpuWithReaped;
  }
  return found ? servers : null;
}

/** One INFO section of every primary (of a cluster, or the one Redis); null when unreadable. */
async function primaryInfos(redis: RedisClient, section: string): Promise<string[] | null> {
  try {
    const infos: string[] = [];
    for (const node of primaries(redis)) infos.push(String(await node.info(section)));
    return infos;
  } catch {
    return null;
  }
}

/** CPU seconds so far of the Redis server (every primary of a cluster), from INFO cpu; null when unreadable. */
export async function redisCpu(redis: RedisClient): Promise<number | null> {
  const infos = await primaryInfos(redis, 'cpu');
  if (infos === null) return null;
  let total = 0;
  for (const info of infos) {
    const field = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
    total += field('used_cpu_sys') + field('used_cpu_user');
  }
  return total;
}

/** Calls and µs in each command so far (INFO commandstats), summed over the primaries; null when unreadable. */
export async function redisCommandStats(redis: RedisClient): Promise<Map<string, { calls: number; usec: number }> | null> {
  const infos = await primaryInfos(redis, 'commandstats');
  if (infos === null) return null;
  const out = new Map<string, { calls: number; usec: number }>();
  for (const info of infos) {
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      const seen = out.get(m[1]!) ?? { calls: 0, usec: 0 };
      out.set(m[1]!, { calls: seen.calls + Number(m[2]), usec: seen.usec + Number(m[3]) });
    }
  }
  return out;
}

/**
 * What Redis spent between two `redisCommandStats` readings, per `unit` (an outcome, a request):
 * the `top` commands by time, as "name calls×, µs" (Lua scripts' own commands are counted too, and
 * inside their EVALSHA's time).
 */
export function commandsPer(before: Map<string, { calls: number; usec: number }>, after: Map<string, { calls: number; usec: number }>, units: number, top = 8): string {
  const rows = [...after].map(([cmd, a]) => {
    const b = before.get(cmd) ?? { calls: 0, usec: 0 };
    return { cmd, calls: (a.calls - b.calls) / units, usec: (a.usec - b.usec) / units };
  }).filter((r) => r.calls > 0).sort((x, y) => y.usec - x.usec).slice(0, top);
  return rows.map((r) => `${r.cmd} ${r.calls.toFixed(2)}× ${r.usec.toFixed(1)} µs`).join(', ');
}

/** CPU seconds used so far by each part but the buyer processes (they report their own); Postgres by server. */
export type CpuSample = Omit<CpuSeconds, 'buyers' | 'postgres'> & { postgres: Record<number, number> | null };

export async function sampleCpu(sources: CpuSources): Promise<CpuSample> {
  const procs = allPids().map(readProc).filter((p): p is Proc => p !== null);
  const own = process.cpuUsage();
  const byPid = (pid: number | null) => (pid === null ? 0 : procs.find((p) => p.pid === pid)?.cpu ?? 0);
  return {
    drop: (own.user + own.system) / 1e6,
    simulator: byPid(sources.simulator),
    ...(sources.stack === null ? { api: 0, worker: 0 } : stackCpu(sources.stack, procs)),
    redis: await redisCpu(sources.redis),
    postgres: postgresCpu(procs),
  };
}

/**
 * What each part used between two samples, with the CPU the buyer processes reported (they exit
 * before the drop is at rest).
 */
export function cpuUsed(start: CpuSample, end: CpuSample, buyers: number): CpuSeconds {
  const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.max(0, b - a));
  return {
    drop: Math.max(0, end.drop - start.drop),
    buyers,
    simulator: Math.max(0, end.simulator - start.simulator),
    api: Math.max(0, end.api - start.api),
    worker: Math.max(0, end.worker - start.worker),
    redis: diff(start.redis, end.redis),
    postgres: postgresUsed(start.postgres, end.postgres),
  };
}

/** What the Postgres servers present at both samples used between them (see postgresCpu). */
function postgresUsed(start: Record<number, number> | null, end: Record<number, number> | null): number | null {
  if (start === null || end === null) return null;
  let used = 0;
  for (const [pid, now] of Object.entries(end)) {
    const was = start[Number(pid)];
    if (was !== undefined) used += Math.max(0, now - was);
  }
  return used;
}
