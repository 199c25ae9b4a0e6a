/**
 * Frozen. Whether an order is a waiting-list offer (made by dropgate for the list's buyer and reserved
 * for the list's `offer_ttl_seconds`): an offer cannot be extended, so a buyer on the list cannot turn
 * a short offer into several reservation TTLs. Never updated.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table orders add column waitlist_offer boolean not null default false`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table orders drop column waitlist_offer`.execute(db);
}
