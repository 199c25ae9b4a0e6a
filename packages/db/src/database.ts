/**
 * Connection set-up: a kysely instance over a pg pool, creating the database if it is missing and
 * applying migrations.
 */
import { Kysely, PostgresDialect } from 'kysely';
import { Migrator, type MigrationResultSet } from 'kysely/migration';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Database } from './schema.ts';
import { migrations } from './migrations/index.ts';

// bigint (int8) columns hold amounts in KRW and counts: they fit in a JS number.
pg.types.setTypeParser(20, (value: string) => Number(value));

export type Db = Kysely<Database>;

/**
 * pg connection settings for `url`. A URL without a user name (the default
 * `postgres://127.0.0.1:5432/dropgate`) connects as the operating-system user, as psql does; pg itself
 * would only look at $USER, which services and CI often do not set.
 */
export function pgConnection(url: string): pg.ClientConfig {
  const parsed = new URL(url);
  if (!parsed.username) parsed.username = encodeURIComponent(userInfo().username);
  // No JIT compilation: dropgate's statements are short, and a batch's estimated cost (a
  // generate_series guessed at 1,000 rows) once made Postgres spend 650 ms compiling a 10 ms
  // statement. Added to any server options the URL gives.
  parsed.searchParams.set('options', [parsed.searchParams.get('options'), '-c jit=off'].filter(Boolean).join(' '));
  return { connectionString: parsed.toString() };
}

export interface DatabaseOptions {
  /** Pool size; the API needs few connections (Postgres is never on the confirm path). */
  max?: number;
  /** Fail a query that waits longer than this for a connection or runs longer than this (ms). */
  statementTimeoutMs?: number;
}

/**
 * The mark that makes a statement a named prepared statement: a text that starts with
 * `/* prepared: <label> *\/` (see `preparedStatementName`). For the batched statements of the hot
 * paths (an order, a hold, a payment, a paid commit): their texts are fixed (every batch passes
 * arrays), and parsing and planning one of them cost Postgres more than writing a batch of ten (a
 * hold batch of 10: 1,250-1,450 µs of Postgres CPU a statement unnamed, 600-850 named; measured
 * 2026-12-01).
 */
export const PREPARED_MARK = '/* prepared: ';

/** Prepared statement texts per process at most: a text that varies by mistake cannot fill the server's memory. */
const MAX_PREPARED_TEXTS = 64;
const preparedNames = new Map<string, string>();

/**
 * The statement name for `text` when it carries the prepared mark: its label and a hash of the whole
 * text, so two texts never share a name (pg refuses that) and each connection parses a text once.
 * Null for any other text, or once MAX_PREPARED_TEXTS texts have names (it then runs unnamed).
 */
export function preparedStatementName(text: string): string | null {
  if (!text.startsWith(PREPARED_MARK)) return null;
  let name = preparedNames.get(text);
  if (name === undefined) {
    if (preparedNames.size >= MAX_PREPARED_TEXTS) return null;
    const label = text.slice(PREPARED_MARK.length, text.indexOf(' */')).replace(/[^a-z0-9_]/gi, '');
    name = `dg_${label}_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
    preparedNames.set(text, name);
  }
  return name;
}

/** Runs the marked statements of `client` (as kysely sends them: text and values) as named ones. */
function namePreparedStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const [text, values] = args;
    if (typeof text === 'string' && args.length <= 2 && (values === undefined || Array.isArray(values))) {
      const name = preparedStatementName(text);
      if (name !== null) return query({ name, text, values });
    }
    return query(...args);
  }) as typeof client.query;
}

export function createDb(url: string, opts: DatabaseOptions = {}): Db {
  const pool = new pg.Pool({
    ...pgConnection(url),
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
  });
  // Postgres restarting (57P01 "terminating connection due to administrator command") or a dropped
  // socket makes pg emit 'error' on the client; with no listener that kills the process. The pool
  // reports idle clients' errors on itself; a checked-out client emits its own, so each new client
  // gets a listener too. The query in flight still fails (and is answered 503); the pool discards the
  // broken client and the next query connects afresh.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    namePreparedStatements(client);
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** Creates the database named in `url` when it does not exist yet (connecting to `postgres`). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = maintenanceUrl(url);
  // A host that never answers fails in seconds (a start-up names DATABASE_URL), not after the OS's
  // TCP timeout.
  const client = new pg.Client({ ...pgConnection(admin), connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined); // a restart mid-check fails the query, not the process
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`create database ${quotedName(name)}`);
      } catch (error) {
        // Two processes starting at once: the other one created it.
        if ((error as { code?: string }).code !== '42P04') throw error;
      }
    }
  } finally {
    await client.end();
  }
}

/**
 * Drops the database named in `url` if it exists, with whatever sessions it still has (the benches'
 * resets, a test database at the end of its file); connects to the server's maintenance database.
 */
export async function dropDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  if (!name) throw new Error('the URL names no database to drop');
  const client = new pg.Client(pgConnection(maintenanceUrl(url)));
  client.on('error', () => undefined); // fail the query, not the process
  await client.connect();
  try {
    await client.query(`drop database if exists ${quotedName(name)} with (force)`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The database `url` names (its path, decoded); '' when it names none. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** A database name as an SQL identifier (double-quoted, its quotes doubled). */
function quotedName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The server's maintenance database (`postgres`) at the address of `url`: where others are created and dropped. */
export function maintenanceUrl(url: string): string {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  return admin.toString();
}

/**
 * A fingerprint of the migrations' source (every file of `migrations/`, names and contents): a
 * database migrated by one version of them can stand in for a fresh, migrated one (the tests' template
 * database) only while this stays the same.
 */
export function migrationsFingerprint(): string {
  const dir = new URL('./migrations/', import.meta.url);
  const hash = createHash('sha256');
  for (const file of readdirSync(dir).sort()) hash.update(file).update('\0').update(readFileSync(new URL(file, dir))).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** Applies every pending migration. Throws (with the failing migration's name) instead of half-applying. */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${String((result.error as Error).message ?? result.error)}`);
  }
  return result;
}

/** Creates the database if needed, connects and migrates. */
export async function openDatabase(url: string, opts: DatabaseOptions = {}): Promise<Db> {
  await ensureDatabase(url);
  const db = createDb(url, opts);
  await migrateToLatest(db);
  return db;
}
