/**
 * The event catalog (lib/catalog.ts) against a real Postgres: requests naming events that do not exist
 * (anyone can send them, to every public route and webhook) must not cost a Postgres query each. The
 * pool below counts the connections Kysely takes, one per query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { events as eventsRepo, pgConnection, type Database, type Db } from '@dropgate/db';
import { createTestDatabase, eventId, rand, waitFor, type TestDatabase } from '@dropgate/testkit';
import { EventCatalog, MISS_REFRESH_MS } from '../src/lib/catalog.ts';

let database: TestDatabase;
let pool: pg.Pool;
let db: Db;
let queries = 0;
beforeAll(async () => {
  database = await createTestDatabase('catalog');
  pool = new pg.Pool({ ...pgConnection(database.url), max: 4 });
  // As the project's own pools: a session Postgres ends (57P01: a database dropped with force, a restart)
  // fails its query, never the process.
  pool.on('error', () => undefined);
  pool.on('acquire', () => { queries++; });
  db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
});
afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

async function insertEvent(id: string): Promise<void> {
  await eventsRepo.insertEvent(db, {
    id, name: id, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1000 }], seats: [],
  });
}

describe('the event catalog', () => {
  it('answers made-up events without a query each: misses share one refresh of the known ids at most every MISS_REFRESH_MS', async () => {
    const known = eventId('cat');
    await insertEvent(known);
    const catalog = new EventCatalog(db);
    await catalog.start(60_000);
    expect((await catalog.get(known))?.id).toBe(known);
    const before = queries;
    const started = performance.now();
    // 2,000 requests naming made-up events, 200 at a time.
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 200 }, () => catalog.get(`nosuch-${rand(10)}`)));
      expect(answers.every((a) => a === null)).toBe(true);
      // `exists` (the webhooks' and order reads' question) shares the same refresh.
      const exist = await Promise.all(Array.from({ length: 200 }, () => catalog.exists(`nosuch-${rand(10)}`)));
      expect(exist.every((e) => e === false)).toBe(true);
    }
    expect(await catalog.exists(known)).toBe(true);
    const windows = Math.ceil((performance.now() - started) / MISS_REFRESH_MS) + 1;
    expect(queries - before).toBeGreaterThanOrEqual(1);
    expect(queries - before).toBeLessThanOrEqual(windows);
    // An event made meanwhile by another process is found at the next refresh.
    const later = eventId('cat');
    await insertEvent(later);
    expect(await waitFor(async () => catalog.exists(later), 5_000, 'the new event to be known')).toBe(true);
    const found = await waitFor(async () => catalog.get(later), 5_000, 'the new event to be found');
    expect(found.id).toBe(later);
    catalog.stop();
  });
});
