/** A test's environment leaves nothing behind when its configuration is wrong. */
import { expect, it } from 'vitest';
import pg from 'pg';
import { pgConnection } from '@dropgate/db';
import { testEnvironment } from '@dropgate/testkit';

it('drops the database it made when the configuration is refused', async () => {
  const label = `cfgerr_${process.pid}`;
  await expect(testEnvironment({ label, env: { READ_CACHE_MS: '99999' } })).rejects.toThrow(/READ_CACHE_MS/);
  const admin = new pg.Client(pgConnection(process.env['TEST_DATABASE_URL'] ?? 'postgres://127.0.0.1:5432/postgres'));
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    const left = await admin.query('select datname from pg_database where datname like $1', [`dgt_${label}_%`]);
    expect(left.rows).toEqual([]);
  } finally {
    await admin.end();
  }
});
