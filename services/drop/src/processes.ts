/**
 * Parts of a drop's stack in child processes of their own: the PortOne simulator (`npm run sim`,
 * `--sim-process`) and the API and worker (`npm start`, `--stack-process`), so that each has an event
 * loop (and a core, when there is one) of its own, as in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { compileCacheEnv } from '@dropgate/config';

/** A child process the drop started, and the URL it serves. */
export interface ChildService {
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, then waits for it (and, for `npm start`, its own children) to exit. */
  close(): Promise<void>;
}

const SIM_MAIN = fileURLToPath(new URL('./main.ts', import.meta.resolve('@dropgate/portone-sim')));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const START = fileURLToPath(new URL('../../../scripts/start.ts', import.meta.url));

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Children still running; whatever way this process ends, they are told to stop. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

function closer(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited(child);
  };
}

/** Last lines of a child's stderr, for a start-up failure's message. */
function tail(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    text = (text + chunk.toString()).slice(-2_000);
  });
  return () => text.trim().split('\n').slice(-3).join(' / ');
}

/**
 * Starts `npm run sim` on a free port with `env` (its V2 secret, store and API secret) and resolves
 * once it has said where it listens.
 */
export async function startSimProcess(env: Record<string, string | undefined>): Promise<ChildService> {
  const child = track(spawn(process.execPath, [SIM_MAIN], {
    env: { ...compileCacheEnv(), ...env, SIM_PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const stderr = tail(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the simulator process exited (${code}) before it listened: ${stderr()}`)));
  }).catch(async (error: unknown) => {
    await closer(child)();
    throw error;
  });
  // Drained, so a full pipe never stalls it.
  child.stdout!.resume();
  return { url, pid: child.pid!, close: closer(child) };
}

/**
 * Starts `npm start` (scripts/start.ts) with `env` on a free port and resolves once `/readyz` answers
 * 200. `env` carries everything the API and the worker read (DATABASE_URL, ADMIN_TOKEN, QUEUE_PREFIX,
 * API_PROCESSES, WORKER_PROCESSES, ...); PORT is chosen here.
 */
export async function startStackProcess(env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<ChildService> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // From the repository's root, where npm start runs (it starts the services by their paths).
  const child = track(spawn(process.execPath, [START], { cwd: ROOT, env: { ...env, HOST: '127.0.0.1', PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] }));
  const stderr = tail(child);
  const close = closer(child);
  let gone: string | null = null;
  child.once('exit', (code, signal) => (gone = `npm start exited (${signal ?? code}) before it was ready: ${stderr()}`));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (gone !== null) throw new Error(gone);
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) {
      await close();
      throw new Error(`npm start did not become ready at ${url}/readyz within ${timeoutMs / 1000} s: ${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, pid: child.pid!, close };
}
