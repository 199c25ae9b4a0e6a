/**
 * Frozen. Every order remembers which PortOne API its payments go through (`v1` iamport, `v2`
 * api.portone.io): chosen when the order is created, it decides where the order's amount is
 * pre-registered and which API the Redis-loss reconciliation asks for the order's payment. Orders made
 * before this migration are V1's.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table orders add column portone_api text not null default 'v1'
      constraint orders__portone_api_ck check (portone_api in ('v1', 'v2'))
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table orders drop column portone_api`.execute(db);
}
