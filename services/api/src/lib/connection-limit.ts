/**
 * How many client connections an API process keeps open at most (MAX_CONNECTIONS; see limitConnections
 * for what happens at the bound). Each takes a file descriptor: one client holding 20,000 idle
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
 * made for it by closing the oldest connection that has no request under way: one that sent nothing
 * yet, or part of a request's head, or sits kept alive after an answer (or sent part of its next
 * request's head); failing that, the oldest whose request's body has not all come; and the new one is
 * kept. Only when every connection has a whole request being answered is the new one closed. So a
 * client that sends its request as it connects is served however many connections a flood holds
 * open without using them (attack rounds 16 and 17: silent connections, half heads after a first
 * answer, idle kept-alive ones reopened as they closed, each kept every other client out; Node's
 * closeIdleConnections never closes a connection whose next request has begun, and a head that never
 * ends lasts until REQUEST_TIMEOUT_MS). A request whose body is on its way goes only after every
 * connection with no request under way, so a flood of those does not cut it off.
 *
 * The process accepts the connection and then decides, instead of using Node's `maxConnections`, which
 * only refuses the new one (and under node's cluster handed it back to the primary, which kept it).
 */
export function limitConnections(server: Server, max: number): void {
  // Oldest first (a Map keeps insertion order): connections with no request under way, and those
  // whose request's body is still coming. A connection whose request is being answered is in neither.
  const unused = new Map<Socket, true>();
  const receiving = new Map<Socket, true>();
  /** Connections closed to make room: already taken off the count. */
  const evicted = new WeakSet<Socket>();
  let open = 0;
  const oldest = (m: Map<Socket, true>): Socket | undefined => m.keys().next().value;
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      const victim = oldest(unused) ?? oldest(receiving);
      if (victim === undefined) {
        socket.destroy();
        return;
      }
      unused.delete(victim);
      receiving.delete(victim);
      evicted.add(victim);
      open--;
      victim.destroy();
    }
    open++;
    unused.set(socket, true);
    socket.once('close', () => {
      unused.delete(socket);
      receiving.delete(socket);
      if (!evicted.has(socket)) open--;
    });
  });
  /** Requests of a connection not answered yet (more than one when a client pipelines them). */
  const answering = new WeakMap<Socket, number>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    unused.delete(socket);
    answering.set(socket, (answering.get(socket) ?? 0) + 1);
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
      // A body to come: once it has all come, the request is being answered.
      receiving.set(socket, true);
      req.once('end', () => { receiving.delete(socket); });
    }
    // Answered (or its connection gone): once no request of it is left, the connection waits for its
    // next one (or closes). A pipelined request behind this one keeps it in use (attack round 18).
    res.once('close', () => {
      const left = (answering.get(socket) ?? 1) - 1;
      answering.set(socket, left);
      if (left > 0) return;
      receiving.delete(socket);
      if (!socket.destroyed) unused.set(socket, true);
    });
  });
}
