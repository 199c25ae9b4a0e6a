/**
 * Frozen. A cause for the record to follow Redis when a hold ended there but the order's change was
 * lost (Postgres restarted between the two): `hold_reconciled`, pending | held -> released. The
 * expiry's reconciliation uses it; `hold_expired` still covers a hold that ran out.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    insert into order_transitions (cause, from_status, to_status) values
      ('hold_reconciled', 'pending', 'released'), ('hold_reconciled', 'held', 'released')
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from order_transitions where cause = 'hold_reconciled'`.execute(db);
}
