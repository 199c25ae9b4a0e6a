/**
 * Redis errors that mean "Redis is unreachable or not serving right now", classified in one place so
 * the API answers them as 503 NOT_READY (retry shortly) instead of a 500.
 */

/**
 * Replies of a Redis that is up but cannot serve: loading its data set, busy in a script, failing over,
 * a replica refusing writes, out of memory (maxmemory reached, writes refused until it is freed), or a
 * cluster slot on the move (a redirect the client did not follow: `ASK`, `MOVED`).
 */
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|OOM|ASK|MOVED)\b/;
/** What ioredis throws, as plain Errors, when the connection is down (the API's clients fail fast). */
const CONNECTION_MESSAGES = [
  "Stream isn't writeable",
  'Connection is closed',
  'Command timed out',
  'Reached the max retries per request limit',
  'None of startup nodes is available',
  'Failed to refresh slots cache',
  'Too many Cluster redirections',
];
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** True when `error` says Redis is unreachable or restarting: the request may succeed a moment later. */
export function isRedisUnavailableError(error: unknown): boolean {
  const e = error as { name?: unknown; message?: unknown; code?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'MaxRetriesPerRequestError' || e.name === 'ClusterAllFailedError') return true;
  if (typeof e.code === 'string' && SOCKET_CODES.has(e.code)) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return UNAVAILABLE_REPLIES.test(message) || CONNECTION_MESSAGES.some((m) => message.startsWith(m));
}
