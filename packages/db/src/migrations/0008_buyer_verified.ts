/**
 * Frozen. Whether an order's buyer was verified (a buyer token the storefront signed, with
 * BUYER_TOKEN_SECRET set): only such orders count against ORDERS_PER_BUYER_MAX, so orders made on a
 * caller's word (before signing was switched on, or waiting-list offers dropgate makes) never spend a
 * signed buyer's bound. A rebuild of an event's Redis state counts these. Never updated.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table orders add column buyer_verified boolean not null default false`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table orders drop column buyer_verified`.execute(db);
}
