/**
 * Frozen. An order's live holds, found through an index of live holds by order. Recording a hold
 * (superseding the order's earlier live ones), ending a hold and committing a batch of paid orders all
 * look for `merchant_uid = $1 and status = 'live'`. With only `holds__merchant_uid_ix` and the partial
 * `holds__live_expires_at_ix` (every live hold, for the sweep), Postgres, whose statistics lag behind
 * a table that grows by thousands of holds a minute at a drop, chose to AND both bitmaps: it read every
 * live hold of every event for each hold recorded (3 ms with 33,000 live holds, growing with the drop).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index holds__live_merchant_uid_ix on holds (merchant_uid) where status = 'live'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index holds__live_merchant_uid_ix`.execute(db);
}
