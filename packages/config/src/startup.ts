/**
 * Start-up failures an operator fixes by changing one variable: a port already in use, Postgres or
 * Redis unreachable or refusing, a database that cannot be created. {@link explainStartupFailure}
 * turns such an error into one line naming the variable, and {@link exitOnStartupFailure} prints it
 * and exits with status 2, as an invalid variable does: nobody should read a stack trace to learn
 * that port 3000 is taken. Errors it does not recognise are bugs and keep their stack.
 *
 * The errors are recognised by shape (node's `code`/`syscall`/`port`, Postgres's SQLSTATE), not by
 * class, so this package needs neither pg nor ioredis.
 */
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the process was started with, for the variables a start-up failure can name (a `Config` fits). */
export interface StartupSettings {
  readonly host: string;
  readonly port: number;
  readonly workerMetricsPort: number;
  readonly apiMetricsPort?: number;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly simPort?: number;
}

/** A start-up failure that names the variable to change. */
export class StartupError extends Error {
  readonly variable: string;
  /** True when waiting may fix it (the service is not up yet); false when only a change will. */
  readonly transient: boolean;
  constructor(variable: string, message: string, opts: { transient?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'StartupError';
    this.variable = variable;
    this.transient = opts.transient ?? false;
  }
}

type ErrorLike = Error & { code?: unknown; syscall?: unknown; port?: unknown; address?: unknown; hostname?: unknown; severity?: unknown; errors?: unknown };

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE']);
const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
};

/** `url` without its password, fit for a log line. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

function urlPort(url: string, fallback: number): number {
  try {
    const parsed = new URL(url);
    return parsed.port ? Number(parsed.port) : fallback;
  } catch {
    return -1;
  }
}

function urlHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return '';
  }
}

/** The network error inside `error`: node reports a failed dual-stack connect as an AggregateError. */
function networkCause(error: ErrorLike): ErrorLike {
  if (Array.isArray(error.errors) && error.errors[0] instanceof Error) return error.errors[0] as ErrorLike;
  return error;
}

function databaseName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || '(none)';
  } catch {
    return '(unparsable)';
  }
}

function portVariable(port: unknown, settings: StartupSettings): string | undefined {
  if (typeof port !== 'number' || port === 0) return undefined;
  if (port === settings.port) return 'PORT';
  if (port === settings.workerMetricsPort) return 'WORKER_METRICS_PORT';
  if (settings.apiMetricsPort && port >= settings.apiMetricsPort && port < settings.apiMetricsPort + 64) return 'API_METRICS_PORT';
  if (settings.simPort !== undefined && port === settings.simPort) return 'SIM_PORT';
  return undefined;
}

/** Why listening on `host`:`error.port` failed, naming `variable` (or HOST, for an address not ours). */
function listenFailure(error: ErrorLike, host: string, variable: string): StartupError | undefined {
  const port = String(error.port);
  const where = `${typeof error.address === 'string' ? error.address : host}:${port}`;
  if (error.code === 'EADDRINUSE') return new StartupError(variable, `port ${port} is already in use (${where}): stop what listens there or set ${variable} to a free port`, { cause: error });
  if (error.code === 'EACCES') return new StartupError(variable, `port ${port} needs privileges this process does not have (${where}): set ${variable} to a port above 1023`, { cause: error });
  if (error.code === 'EADDRNOTAVAIL') return new StartupError('HOST', `cannot listen on ${where}: ${host} is not an address of this machine; set HOST (127.0.0.1 or 0.0.0.0)`, { cause: error });
  return undefined;
}

/**
 * One line naming the variable to change for a start-up failure, or undefined when `error` is not one
 * (a bug: keep its stack). `hint` says which dependency the failing step talked to, for errors that
 * do not say so themselves (a pg connection timeout carries no address).
 */
export function explainStartupFailure(error: unknown, settings: StartupSettings, hint?: 'DATABASE_URL' | 'REDIS_URL'): StartupError | undefined {
  if (error instanceof StartupError) return error;
  if (!(error instanceof Error)) return undefined;
  const e = error as ErrorLike;
  const db = redactUrl(settings.databaseUrl);
  const redis = redactUrl(settings.redisUrl);

  if (e.syscall === 'listen' && typeof e.code === 'string') {
    const variable = portVariable(e.port, settings);
    if (variable) return listenFailure(e, settings.host, variable);
  }

  // Postgres answered, with an SQLSTATE (five characters; pg's errors carry a severity too).
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string') {
    const name = databaseName(settings.databaseUrl);
    if (e.code === '42501' && /create database/i.test(e.message)) {
      return new StartupError('DATABASE_URL', `cannot create database "${name}" at ${db}: ${e.message}; create it once (createdb ${name}) or set DATABASE_URL to a user that may`, { cause: error });
    }
    if (e.code.startsWith('28')) return new StartupError('DATABASE_URL', `Postgres at ${db} refused the login: ${e.message}; set DATABASE_URL with a user (and password) it accepts`, { cause: error });
    if (e.code === '3D000') return new StartupError('DATABASE_URL', `Postgres at ${db}: ${e.message}; create it or set DATABASE_URL`, { cause: error });
    if (e.code.startsWith('57P') || e.code.startsWith('53')) {
      return new StartupError('DATABASE_URL', `Postgres at ${db} cannot take this connection yet: ${e.message}; wait for it or set DATABASE_URL`, { cause: error, transient: true });
    }
    return undefined;
  }

  // Redis answered, but refused us (a password missing or wrong, or a protected instance).
  if (/^(NOAUTH|WRONGPASS|DENIED|ERR AUTH|ERR invalid password)/.test(e.message)) {
    return new StartupError('REDIS_URL', `Redis at ${redis} refused the connection: ${e.message}; set REDIS_URL with the right user and password`, { cause: error });
  }

  // Nothing answered: find out whom we were talking to from the address in the error.
  const net = networkCause(e);
  const code = typeof e.code === 'string' ? e.code : typeof net.code === 'string' ? net.code : undefined;
  const timedOut = /timeout|timed out/i.test(e.message);
  if ((code && UNREACHABLE.has(code)) || timedOut) {
    const candidates: Array<'DATABASE_URL' | 'REDIS_URL'> = [];
    const host = typeof net.hostname === 'string' ? net.hostname : undefined;
    if (typeof net.port === 'number') {
      if (net.port === urlPort(settings.databaseUrl, 5432)) candidates.push('DATABASE_URL');
      if (net.port === urlPort(settings.redisUrl, 6379)) candidates.push('REDIS_URL');
    } else if (host) {
      if (host === urlHost(settings.databaseUrl)) candidates.push('DATABASE_URL');
      if (host === urlHost(settings.redisUrl)) candidates.push('REDIS_URL');
    }
    const variable = candidates.length === 1 ? candidates[0] : hint && (candidates.length === 0 || candidates.includes(hint)) ? hint : undefined;
    if (!variable) return undefined;
    const reason = (code && REASONS[code]) ?? (timedOut ? 'timed out' : e.message);
    const what = variable === 'DATABASE_URL' ? `Postgres at ${db}` : `Redis at ${redis}`;
    return new StartupError(variable, `cannot reach ${what} (${reason}): start it, or set ${variable}`, { cause: error, transient: true });
  }
  return undefined;
}

/**
 * For entry points: prints `who: <one line naming the variable>` and exits with status 2 when
 * `error` is a start-up failure; otherwise prints it with its stack (a bug) and exits with status 1.
 */
export function exitOnStartupFailure(who: string, error: unknown, settings: StartupSettings, hint?: 'DATABASE_URL' | 'REDIS_URL'): never {
  const failure = explainStartupFailure(error, settings, hint);
  if (failure) {
    console.error(`${who}: ${failure.message}`);
    process.exit(2);
  }
  console.error(`${who}: start-up failed:`, error);
  process.exit(1);
}

/**
 * Resolves once `client` (an ioredis client) is ready; rejects with a {@link StartupError} naming
 * REDIS_URL at its first error or after `timeoutMs`. Disconnects the client either way.
 */
export async function assertRedisReachable(
  client: { status: string; once(event: string, listener: (arg?: unknown) => void): unknown; removeAllListeners(event: string): unknown; disconnect(): void },
  settings: StartupSettings,
  timeoutMs = 5_000,
): Promise<void> {
  try {
    if (client.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
      client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
      client.once('error', (error) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      });
    });
  } catch (error) {
    throw explainStartupFailure(error, settings, 'REDIS_URL') ?? error;
  } finally {
    client.removeAllListeners('ready');
    client.disconnect();
  }
}

/**
 * Rejects with a {@link StartupError} naming `variable` when `port` on `host` is taken. For a
 * listener that would otherwise crash the process on EADDRINUSE (an 'error' event nobody handles).
 * Port 0 (any free port) is always free.
 */
export async function assertPortFree(host: string, port: number, variable: string): Promise<void> {
  if (port === 0) return;
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, exclusive: true }, resolve);
    });
  } catch (error) {
    throw listenFailure(error as ErrorLike, host, variable) ?? error;
  } finally {
    await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  }
}

/**
 * Closes gracefully on SIGINT/SIGTERM and exits 0, but never waits forever: a close that has not
 * finished after `timeoutMs` (a job stuck on a dependency that is gone, a socket that never drains)
 * exits 1 with one line saying so. A later signal changes nothing (Ctrl-C on a terminal reaches
 * each process of `npm start` twice: from the terminal and from start.ts). A supervisor's stop, or
 * `npm start`'s, then always ends.
 */
export function closeOnSignals(
  who: string, close: () => Promise<unknown>,
  opts: { timeoutMs?: number; log?: (message: string, fields: { signal?: string; timeoutMs?: number }) => void } = {},
): void {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const log = opts.log ?? ((m: string) => console.error(`${who}: ${m}`));
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    log('closing', { signal });
    setTimeout(() => {
      log(`did not close within ${timeoutMs} ms (SHUTDOWN_TIMEOUT_MS); exiting`, { timeoutMs });
      process.exit(1);
    }, timeoutMs).unref();
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        log(`closing failed: ${error instanceof Error ? error.message : String(error)}`, {});
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * The environment that gives a Node process dropgate starts Node's compile cache: the directory in
 * `NODE_COMPILE_CACHE`, else `node-compile-cache` in the system's temporary directory. A process that
 * loads the stack again (a restarted worker, a second API process, a test's child) then spends about
 * a third less CPU loading its code.
 */
export function compileCacheEnv(env: NodeJS.ProcessEnv = process.env): { NODE_COMPILE_CACHE: string } {
  return { NODE_COMPILE_CACHE: env['NODE_COMPILE_CACHE'] || join(tmpdir(), 'node-compile-cache') };
}
