/**
 * Connections: every connection dropgate opens runs without JIT compilation (a batch statement's
 * estimated cost once made Postgres compile for 650 ms a statement that runs in 10 ms), keeping any
 * server options the URL gives.
 */
import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createDb, pgConnection } from '@dropgate/db';

const PG = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';

describe('connections', () => {
  it('turn JIT off and keep the URL\'s own server options', async () => {
    const url = new URL(PG);
    url.pathname = '/postgres';
    url.searchParams.set('options', '-c work_mem=5MB');
    const options = new URL(String(pgConnection(url.toString()).connectionString)).searchParams.get('options');
    expect(options).toBe('-c work_mem=5MB -c jit=off');
    const db = createDb(url.toString(), { max: 1 });
    try {
      const row = (await sql<{ jit: string; work_mem: string }>`select current_setting('jit') as jit, current_setting('work_mem') as work_mem`.execute(db)).rows[0];
      expect(row).toEqual({ jit: 'off', work_mem: '5MB' });
    } finally {
      await db.destroy();
    }
  });
});
