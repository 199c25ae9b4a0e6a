/**
 * Test databases are copies of one migrated template: each starts with every migration applied, owns
 * its rows, and leaves the template as it was (nobody may connect to the template itself: copying
 * needs it idle).
 */
import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createDb, migrateToLatest, migrationsFingerprint } from '@dropgate/db';
import { createTestDatabase, migratedTemplate } from '../src/index.ts';

async function applied(url: string): Promise<{ migrations: string[]; events: number }> {
  const db = createDb(url, { max: 1 });
  try {
    const migrations = (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db)).rows.map((r) => r.name);
    const events = Number((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n);
    return { migrations, events };
  } finally {
    await db.destroy();
  }
}

describe('test databases', () => {
  it('start migrated, as copies of the template named after the migrations, and own their rows', async () => {
    const name = await migratedTemplate();
    expect(name).toBe(`dgt_template_${migrationsFingerprint()}`);
    const [a, b] = await Promise.all([createTestDatabase('tpl_a'), createTestDatabase('tpl_b')]);
    try {
      const db = createDb(a.url, { max: 1 });
      try {
        // Already at the latest migration: nothing left to apply.
        expect((await migrateToLatest(db)).results).toEqual([]);
        await sql`insert into events (id, name, sale_opens_at, hold_ttl_seconds, currency) values ('tpl-ev', 'T', now(), 60, 'KRW')`.execute(db);
      } finally {
        await db.destroy();
      }
      const inA = await applied(a.url);
      const inB = await applied(b.url);
      expect(inA.migrations.length).toBeGreaterThan(0);
      expect(inB.migrations).toEqual(inA.migrations);
      expect(inA.events).toBe(1);
      expect(inB.events).toBe(0);
      // The template is as it was: a copy made after the insert has no event either.
      const c = await createTestDatabase('tpl_c');
      try {
        expect((await applied(c.url)).events).toBe(0);
      } finally {
        await c.drop();
      }
    } finally {
      await Promise.all([a.drop(), b.drop()]);
    }
  });
});
