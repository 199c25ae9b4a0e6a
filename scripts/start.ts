/**
 * `npm start`: creates the database if missing, applies migrations, then runs the API and the worker
 * as two processes (so worker load never delays a confirm), restarting neither: if one exits, both stop.
 *
 * Before starting anything it checks what an operator can get wrong (Postgres, Redis, both ports)
 * and stops with one line naming the variable to change. Logs are JSON lines, as the services write
 * them; on a terminal they go through pino-pretty instead, so a person can read them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import PinoPretty, { type PrettyStream } from 'pino-pretty';
import { assertPortFree, assertRedisReachable, exitOnStartupFailure, loadConfigOrExit } from '@dropgate/config';
import { openDatabase } from '@dropgate/db';
import { createRedis } from '@dropgate/redis';

/**
 * A pino-pretty stream to the terminal, one per source so lines of two processes never mix; it
 * writes synchronously so nothing is lost when this process exits.
 */
const pretty = (): PrettyStream => PinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: 1, sync: true });
const tty = process.stdout.isTTY === true;
const log = tty ? pino({ name: 'dropgate' }, pretty()) : pino({ name: 'dropgate' });

const config = loadConfigOrExit();
const who = 'dropgate';

try {
  const db = await openDatabase(config.databaseUrl);
  await db.destroy();
} catch (error) {
  exitOnStartupFailure(who, error, config, 'DATABASE_URL');
}
try {
  await assertRedisReachable(createRedis(config.redisUrl, { failFast: true, name: 'dropgate-start' }), config);
  await assertPortFree(config.host, config.port, 'PORT');
  await assertPortFree(config.host, config.workerMetricsPort, 'WORKER_METRICS_PORT');
} catch (error) {
  exitOnStartupFailure(who, error, config);
}

if (!config.adminToken) {
  log.warn('ADMIN_TOKEN is not set, so the admin API answers 401 to everyone. To create events, start with: ADMIN_TOKEN=$(openssl rand -hex 24) npm start');
}

const children: ChildProcess[] = [];
let stopping = false;
function run(name: string, script: string): void {
  const child = spawn(process.execPath, [script], { stdio: ['inherit', tty ? 'pipe' : 'inherit', 'inherit'], env: process.env });
  child.stdout?.pipe(pretty());
  children.push(child);
  child.on('exit', (code, signal) => {
    if (stopping) return;
    // Status 2: the child refused to start and printed one line naming the variable; say nothing more.
    if (code !== 2) log.error({ code, signal }, `${name} exited (${signal ?? code}); stopping`);
    stop(code ?? 1);
  });
}
function stop(code: number): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 5_000).unref();
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))))).then(() => process.exit(code));
}
process.once('SIGINT', () => stop(0));
process.once('SIGTERM', () => stop(0));

run('api', 'services/api/src/server.ts');
run('worker', 'services/worker/src/main.ts');
log.info(`dropgate: API on http://${config.host}:${config.port}, worker metrics on http://${config.host}:${config.workerMetricsPort}/metrics`);
