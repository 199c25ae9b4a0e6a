/**
 * How many client connections an API process keeps open at most (MAX_CONNECTIONS; the ones beyond are
 * closed as they come: limitConnections). Each takes a file descriptor: one client holding 20,000 idle
 * connections used up the process's open-files limit, and the next file anything opened (the
 * load-shedding check reads the process's memory use through /proc) threw EMFILE and ended the
 * process. Left at 0, it is four fifths of the soft open-files limit, which leaves the rest for
 * Postgres, Redis and files; 10,000 where the limit cannot be read.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
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
 * Keeps `server` at `max` client connections at most. When a connection comes at the bound, room is
 * made for it: the oldest connection that has not delivered a whole request goes (one that connected
 * and sent nothing, or part of a request's head, or a head whose body has not all come), and the new
 * one stays. A client that sends its request as it connects is served, however many connections a
 * flood holds open without finishing a request (attack round 16: 100 silent connections, reopened as
 * they were closed, kept every other client out; Node's closeIdleConnections never closes them, and
 * they lasted until REQUEST_TIMEOUT_MS). Only when every connection has a whole request under way, or
 * sits kept alive after an answer, is the new one closed; then the kept-alive ones are closed too, at
 * most once a second, so the next connection gets in (clients' own idle ones reconnect).
 *
 * The process accepts the connection and then decides, instead of using Node's `maxConnections`, which
 * only refuses the new one (and under node's cluster handed it back to the primary, which kept it).
 */
export function limitConnections(server: Server, max: number): void {
  /** Open connections that have not delivered a whole request, oldest first (a Map keeps insertion order). */
  const unfinished = new Map<Socket, true>();
  /** Connections closed to make room: already taken off the count. */
  const evicted = new WeakSet<Socket>();
  let open = 0;
  let idleClosedAt = 0;
  const finished = (socket: Socket) => { unfinished.delete(socket); };
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      const oldest = unfinished.keys().next();
      if (oldest.done) {
        socket.destroy();
        const now = Date.now();
        if (now - idleClosedAt >= 1_000) {
          idleClosedAt = now;
          server.closeIdleConnections();
        }
        return;
      }
      unfinished.delete(oldest.value);
      evicted.add(oldest.value);
      open--;
      oldest.value.destroy();
    }
    open++;
    unfinished.set(socket, true);
    socket.once('close', () => {
      unfinished.delete(socket);
      if (!evicted.has(socket)) open--;
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) {
      // No body: the request is whole with its head.
      unfinished.delete(socket);
      return;
    }
    // A body to come: the request is whole once it has all come (or the answer went without it).
    // Moved to the back: it made progress.
    unfinished.delete(socket);
    unfinished.set(socket, true);
    req.once('end', () => finished(socket));
    res.once('finish', () => finished(socket));
  });
}
