/**
 * The database tests' shared setup: a database of their own (from the migrated template), opened with
 * a pool of `max` connections and handed to `opened` before the file's tests, closed and dropped after.
 */
import { afterAll, beforeAll } from 'vitest';
import { openDatabase, type Db } from '@dropgate/db';
import { createTestDatabase, type TestDatabase } from '@dropgate/testkit';

export function useTestDatabase(label: string, max: number, opened: (db: Db) => void): void {
  let tdb: TestDatabase | undefined;
  let db: Db | undefined;
  beforeAll(async () => {
    tdb = await createTestDatabase(label);
    db = await openDatabase(tdb.url, { max });
    opened(db);
  });
  afterAll(async () => {
    await db?.destroy();
    await tdb?.drop();
  });
}
