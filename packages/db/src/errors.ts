/**
 * Postgres errors that are not the caller's fault nor a bug, classified in one place so the API can
 * answer them as what they are: text Postgres cannot store (400) or Postgres unreachable (503).
 */
interface PgLikeError { code?: unknown; message?: unknown }

/**
 * SQLSTATEs of text Postgres cannot store: 22021 (character_not_in_repertoire, e.g. a NUL byte in a
 * text parameter) and 22P05 (untranslatable_character, e.g. `\u0000` in jsonb).
 */
const UNSTORABLE_TEXT = new Set(['22021', '22P05']);

/** True when Postgres refused a value because of characters it cannot store (NUL in text). */
export function isUnstorableTextError(error: unknown): boolean {
  const code = (error as PgLikeError | null)?.code;
  return typeof code === 'string' && UNSTORABLE_TEXT.has(code);
}

/**
 * 57P01 admin_shutdown (the server is stopping, e.g. `pg_ctl stop -m fast`), 57P02 crash_shutdown,
 * 57P03 cannot_connect_now (starting up or shutting down), 53300 too_many_connections; and class 08,
 * connection exceptions.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
/** Socket errors of a connection to a server that is down or restarting. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** What pg and pg-pool throw, as plain Errors, when the connection is gone or cannot be made. */
const PG_CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Cannot use a pool after calling end on the pool',
];

/**
 * True when `error` says Postgres is unreachable or restarting (not that the query was wrong): the
 * request may succeed a moment later. The pool replaces broken connections by itself.
 */
export function isDatabaseUnavailableError(error: unknown): boolean {
  const e = error as PgLikeError | null;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code) || SOCKET_CODES.has(code)) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return PG_CONNECTION_MESSAGES.some((m) => message.startsWith(m));
}
