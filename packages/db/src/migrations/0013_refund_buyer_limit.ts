/**
 * Frozen. A refund reason of its own for a payment whose places, taken again without a live hold (paid
 * without a confirm, or after its hold ended), would put the buyer past the event's `max_per_buyer`:
 * `refund_buyer_limit`, from any open status to `refunded`. It was refunded as `seats_gone` (attack
 * round 26B), which reports read as holds too short for buyers.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    insert into order_transitions (cause, from_status, to_status) values
      ('refund_buyer_limit', 'pending', 'refunded'), ('refund_buyer_limit', 'held', 'refunded'),
      ('refund_buyer_limit', 'released', 'refunded'), ('refund_buyer_limit', 'expired', 'refunded')
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from order_transitions where cause = 'refund_buyer_limit'`.execute(db);
}
