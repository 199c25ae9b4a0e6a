/**
 * How many client connections an API process keeps open at most (MAX_CONNECTIONS; the ones beyond are
 * closed as they come: limitConnections). Each takes a file descriptor: one client holding 20,000 idle
 * connections used up the process's open-files limit, and the next file anything opened (the
 * load-shedding check reads the process's memory use through /proc) threw EMFILE and ended the
 * process. Left at 0, it is four fifths of the soft open-files limit, which leaves the rest for
 * Postgres, Redis and files; 10,000 where the limit cannot be read.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

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
 * Keeps `server` at `max` client connections at most: a connection beyond them is closed as it comes,
 * and the connections that sit idle (kept alive after an answer, or never sent a request) are closed
 * too, at most once a second: whoever holds the allowed connections open without using them cannot
 * keep everyone else out, and the next connection gets in (clients' own idle ones reconnect).
 *
 * The process accepts the connection and closes it, instead of Node's `maxConnections`: under node's
 * cluster (npm start with API_PROCESSES > 1) the primary accepts on the shared port and hands each
 * connection to a process, and one a process refuses at its `maxConnections` goes back to the primary,
 * which hands it to the next process, and the next, holding its file all along: a flood of idle
 * connections took the primary to its open-files limit and the public port stopped answering.
 */
export function limitConnections(server: Server, max: number): void {
  let open = 0;
  let idleClosedAt = 0;
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      socket.destroy();
      const now = Date.now();
      if (now - idleClosedAt >= 1_000) {
        idleClosedAt = now;
        server.closeIdleConnections();
      }
      return;
    }
    open++;
    socket.once('close', () => { open--; });
  });
}
