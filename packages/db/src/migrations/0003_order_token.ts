/**
 * Frozen. Order tokens: an order is read with the bearer token its buyer received when it was
 * created. Only the token's SHA-256 is stored (32 bytes), so the record cannot be turned into access.
 * Orders created before this migration have none and are read with the admin token only.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table orders add column order_token_hash bytea
      constraint orders__order_token_hash_ck check (order_token_hash is null or octet_length(order_token_hash) = 32);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table orders drop column if exists order_token_hash;
  `.execute(db);
}
