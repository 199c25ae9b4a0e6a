/**
 * `npm start`: creates the database if missing, applies migrations, then runs the API and the worker
 * as two processes (so worker load never delays a confirm), restarting neither: if one exits, both stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { loadConfigOrExit } from '@dropgate/config';
import { openDatabase } from '@dropgate/db';

const config = loadConfigOrExit();

try {
  const db = await openDatabase(config.databaseUrl);
  await db.destroy();
} catch (error) {
  console.error(`cannot prepare the database at ${config.databaseUrl}: ${(error as Error).message}`);
  process.exit(1);
}

if (!config.adminToken) {
  console.warn('ADMIN_TOKEN is not set, so the admin API answers 401 to everyone. To create events, start with:\n  ADMIN_TOKEN=$(openssl rand -hex 24) npm start');
}

const children: ChildProcess[] = [];
let stopping = false;
function run(name: string, script: string): void {
  const child = spawn(process.execPath, [script], { stdio: 'inherit', env: process.env });
  children.push(child);
  child.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(`${name} exited (${signal ?? code}); stopping`);
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
console.log(`dropgate: API on http://${config.host}:${config.port}, worker metrics on http://${config.host}:${config.workerMetricsPort}/metrics`);
