/**
 * How many client connections an API process keeps open at most (MAX_CONNECTIONS; Node refuses the
 * ones beyond by closing them at once). Each takes a file descriptor: one client holding 20,000 idle
 * connections used up the process's open-files limit, and the next file anything opened (the
 * load-shedding check reads the process's memory use through /proc) threw EMFILE and ended the
 * process. Left at 0, it is four fifths of the soft open-files limit, which leaves the rest for
 * Postgres, Redis and files; 10,000 where the limit cannot be read.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';

/** What is left for everything that is not a client connection, at the least. */
const RESERVED_FILES = 64;
const FALLBACK = 10_000;

/** The soft limit on open files of this process, or null when it cannot be read (not Linux). */
export function openFilesLimit(limits = '/proc/self/limits'): number | null {
  try {
    const line = readFileSync(limits, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : null;
  } catch {
    return null;
  }
}

export function connectionLimit(configured: number, filesLimit: number | null = openFilesLimit()): number {
  if (configured > 0) return configured;
  if (filesLimit === null) return FALLBACK;
  return Math.max(1, Math.min(Math.floor(filesLimit * 0.8), filesLimit - RESERVED_FILES));
}

/**
 * When `server` refuses a connection at its `maxConnections`, it closes the connections that sit idle
 * (kept alive after an answer, or never sent a request), at most once a second: whoever holds the
 * allowed connections open without using them cannot keep everyone else out, and the next connection
 * gets in (clients' own idle ones reconnect).
 */
export function closeIdleWhenFull(server: Server): void {
  let idleClosedAt = 0;
  server.on('drop', () => {
    const now = Date.now();
    if (now - idleClosedAt < 1_000) return;
    idleClosedAt = now;
    server.closeIdleConnections();
  });
}
