/**
 * Test databases are copies of one migrated template: each starts with every migration applied, owns
 * its rows, and leaves the template as it was (nobody may connect to the template itself: copying
 * needs it idle).
 */
import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createDb, migrateToLatest, migrationsFingerprint } from '@dropgate/db';
import { STALE_TEMPLATE_MS, TEMPLATE_USED_AT, createTestDatabase, dropStaleTemplates, migratedTemplate, rand, withAdmin as admin } from '../src/index.ts';

const exists = (name: string) => admin(async (c) => (await c.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1);

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

  it('keep the templates of other migrations a day after their last use (another checkout may be copying one), then drop them', async () => {
    const current = await migratedTemplate();
    const now = Date.now();
    const fresh = `dgt_template_zz_fresh_${rand(8)}`;
    const old = `dgt_template_zz_old_${rand(8)}`;
    const unknown = `dgt_template_zz_unknown_${rand(8)}`;
    await admin(async (c) => {
      for (const name of [fresh, old, unknown]) await c.query(`create database "${name}"`);
      await c.query(`comment on database "${fresh}" is '${TEMPLATE_USED_AT}${now - STALE_TEMPLATE_MS + 3_600_000}'`);
      await c.query(`comment on database "${old}" is '${TEMPLATE_USED_AT}${now - STALE_TEMPLATE_MS - 3_600_000}'`);
    });
    try {
      const dropped = await dropStaleTemplates(current, now);
      expect(dropped).not.toContain(fresh);
      expect(dropped).not.toContain(current);
      // Gone, whichever process's sweep dropped them (test files run side by side).
      expect(await exists(old)).toBe(false);
      expect(await exists(unknown)).toBe(false);
      expect(await exists(fresh)).toBe(true);
      expect(await exists(current)).toBe(true);
      // The template of these migrations says when it was last used, so other checkouts keep it a day from then.
      const note = await admin(async (c) => (await c.query<{ note: string | null }>(`select shobj_description(oid, 'pg_database') as note from pg_database where datname = $1`, [current])).rows[0]!.note);
      expect(note).toMatch(new RegExp(`^${TEMPLATE_USED_AT}\\d+$`));
    } finally {
      await admin(async (c) => {
        for (const name of [fresh, old, unknown]) await c.query(`drop database if exists "${name}" with (force)`);
      });
    }
  });

  it('copy a template dropped under them (by an older checkout, which dropped every other template) after building it again', async () => {
    const name = await migratedTemplate();
    await admin(async (c) => {
      await c.query(`alter database "${name}" with is_template false`);
      await c.query(`drop database "${name}" with (force)`);
    });
    const db = await createTestDatabase('tpl_again');
    try {
      expect((await applied(db.url)).migrations.length).toBeGreaterThan(0);
      expect(await exists(name)).toBe(true);
    } finally {
      await db.drop();
    }
  });
});
