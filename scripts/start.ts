/**
 * `npm start`: creates the database if missing, applies migrations, then runs the API and the worker
 * as separate processes (so worker load never delays a confirm). A process that dies once it has run
 * (RESTART_AFTER_UPTIME_MS) is started again, alone, after a pause that doubles while it keeps dying (a
 * worker that crashed stopped every API with it: attack round 19); one that fails to start stops them
 * all, as a wrong setting would fail again. `API_PROCESSES` API processes share `PORT` (each listens on
 * it with SO_REUSEPORT, and the kernel spreads the connections); `WORKER_PROCESSES` workers each serve
 * `/metrics` on `WORKER_METRICS_PORT` + their index.
 * SIGINT/SIGTERM is passed to every process, each closes gracefully, and this one exits when all have.
 *
 * Before starting anything it checks what an operator can get wrong (Postgres, Redis, both ports)
 * and stops with one line naming the variable to change. Logs are JSON lines, as the services write
 * them; on a terminal they go through pino-pretty instead, so a person can read them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import PinoPretty, { type PrettyStream } from 'pino-pretty';
import { StartupError, assertPortFree, assertRedisReachable, compileCacheEnv, exitOnStartupFailure, loadConfigOrExit } from '@dropgate/config';
import { openDatabase } from '@dropgate/db';
import { createRedis } from '@dropgate/redis';

/**
 * A pino-pretty stream to the terminal, one per source so lines of two processes never mix; it
 * writes synchronously so nothing is lost when this process exits.
 */
const pretty = (): PrettyStream => PinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: 1, sync: true });
const tty = process.stdout.isTTY === true;
const log = tty ? pino({ name: 'dropgate' }, pretty()) : pino({ name: 'dropgate' });

// The API and worker processes keep the compiled code of what they load (Node's compile cache, in
// the system's temporary directory unless NODE_COMPILE_CACHE names another): a restart, or a second
// process of either, loads its code on about a third less CPU.
Object.assign(process.env, compileCacheEnv());

const config = loadConfigOrExit();
const who = 'dropgate';
/** Worker `i`'s metrics port: consecutive ports from WORKER_METRICS_PORT (0: each picks a free one). */
const workerMetricsPort = (i: number) => (config.workerMetricsPort === 0 ? 0 : config.workerMetricsPort + i);

try {
  const db = await openDatabase(config.databaseUrl);
  await db.destroy();
} catch (error) {
  exitOnStartupFailure(who, error, config, 'DATABASE_URL');
}
try {
  await assertRedisReachable(createRedis(config, { failFast: true, name: 'dropgate-start' }), config);
  await assertPortFree(config.host, config.port, 'PORT');
  for (let i = 0; i < config.workerProcesses; i++) await assertPortFree(config.host, workerMetricsPort(i), 'WORKER_METRICS_PORT');
  if (config.apiMetricsPort > 0) {
    // The processes' own ports must not land on each other's (each is free now, but not twice).
    const taken = new Set([config.port, ...Array.from({ length: config.workerProcesses }, (_, i) => workerMetricsPort(i))]);
    for (let i = 0; i < config.apiProcesses; i++) {
      const port = config.apiMetricsPort + i;
      if (taken.has(port)) throw new StartupError('API_METRICS_PORT', `API_METRICS_PORT + ${i} is port ${port}, which PORT or WORKER_METRICS_PORT already uses: set API_METRICS_PORT to a free range of ${config.apiProcesses} ports`);
      await assertPortFree(config.host, port, 'API_METRICS_PORT');
    }
  }
} catch (error) {
  exitOnStartupFailure(who, error, config);
}

if (config.apiProcesses > 1 && config.apiMetricsPort === 0) {
  log.warn(`API_PROCESSES=${config.apiProcesses} share PORT, so a scrape of /metrics there reaches one of them at a time and its counters jump: set API_METRICS_PORT and scrape each API process on API_METRICS_PORT + i`);
}
if (!config.adminToken) {
  log.warn('ADMIN_TOKEN is not set, so the admin API answers 401 to everyone. To create events, start with: ADMIN_TOKEN=$(openssl rand -hex 24) npm start');
}

const children: ChildProcess[] = [];
let stopping = false;
/** A process that ran this long before it died is started again; one that died sooner failed to start. */
const RESTART_AFTER_UPTIME_MS = 10_000;
/** The pause before a restart: 1 s, doubled while the process keeps dying within a minute, up to 30 s. */
const RESTART_PAUSE_MS = [1_000, 30_000] as const;
function run(name: string, script: string, env: NodeJS.ProcessEnv = process.env, pauseMs = 0): void {
  const startedAt = Date.now();
  const child = spawn(process.execPath, [script], { stdio: ['inherit', tty ? 'pipe' : 'inherit', 'inherit'], env });
  child.stdout?.pipe(pretty());
  children.push(child);
  child.on('exit', (code, signal) => {
    const at = children.indexOf(child);
    if (at >= 0) children.splice(at, 1);
    if (stopping) return;
    const ranMs = Date.now() - startedAt;
    if (code !== 2 && ranMs >= RESTART_AFTER_UPTIME_MS) {
      const pause = ranMs > 60_000 || pauseMs === 0 ? RESTART_PAUSE_MS[0] : Math.min(2 * pauseMs, RESTART_PAUSE_MS[1]);
      log.error({ code, signal, restartInMs: pause }, `${name} exited (${signal ?? code}); starting it again`);
      setTimeout(() => { if (!stopping) run(name, script, env, pause); }, pause);
      return;
    }
    // Status 2: the child refused to start and printed one line naming the variable; say nothing more.
    if (code !== 2) log.error({ code, signal }, `${name} exited (${signal ?? code}) as it started; stopping`);
    stop(code ?? 1);
  });
}
function stop(code: number): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  // Each child exits within SHUTDOWN_TIMEOUT_MS by itself; a little more before leaving one behind.
  setTimeout(() => process.exit(code), config.shutdownTimeoutMs + 2_000).unref();
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r))))).then(() => process.exit(code));
}
process.once('SIGINT', () => stop(0));
process.once('SIGTERM', () => stop(0));

if (config.apiProcesses === 1) {
  run('api', 'services/api/src/server.ts');
} else {
  // Several API processes on one port: each listens on it itself (SO_REUSEPORT), and the kernel spreads
  // the connections over them. Nothing passes through this process: under node's cluster module it
  // accepted every connection and handed each to a process in turn, and a connect-and-close flood
  // queued connections here up to its open-files limit, and confirms waited there, unseen by their
  // budget (attack round 16).
  for (let i = 0; i < config.apiProcesses; i++) run(`api ${i + 1}`, 'services/api/src/server.ts', { ...process.env, DROPGATE_API_INDEX: String(i) });
}
for (let i = 0; i < config.workerProcesses; i++) {
  const name = config.workerProcesses === 1 ? 'worker' : `worker ${i + 1}`;
  run(name, 'services/worker/src/main.ts', { ...process.env, WORKER_METRICS_PORT: String(workerMetricsPort(i)) });
}
const workerPorts = config.workerProcesses === 1 ? String(config.workerMetricsPort) : `${workerMetricsPort(0)}-${workerMetricsPort(config.workerProcesses - 1)}`;
const apiMetrics = config.apiMetricsPort === 0 ? '' : `, metrics on port ${config.apiProcesses === 1 ? config.apiMetricsPort : `${config.apiMetricsPort}-${config.apiMetricsPort + config.apiProcesses - 1}`}`;
log.info(`dropgate: API on http://${config.host}:${config.port} (${config.apiProcesses} process${config.apiProcesses === 1 ? '' : 'es'}${apiMetrics}), ${config.workerProcesses} worker${config.workerProcesses === 1 ? '' : 's'} (metrics on port ${workerPorts})${config.redisClusterNodes ? `, Redis Cluster ${config.redisClusterNodes.join(',')}` : ''}`);
