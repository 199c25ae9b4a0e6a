/**
 * The waiting lists' entries in Postgres (migration 0012): written when a buyer joins, read when a
 * rebuild puts a list Redis lost back. Joins of one API process share statements and commits
 * (group-commit.ts): at a sell-out many buyers join the list at once.
 */
import { sql } from 'kysely';
import type { PoolItem } from '@dropgate/domain';
import type { Db } from '../database.ts';
import { GroupCommit, perHandle } from './group-commit.ts';

export interface WaitlistEntryRecord {
  eventId: string;
  buyerId: string;
  /** The arrival number Redis gave the entry. */
  seq: number;
  seats: readonly string[];
  items: readonly PoolItem[];
}

/** Most entries one statement writes. */
const BATCH_MAX = 256;

async function insertEntries(db: Db, entries: readonly WaitlistEntryRecord[]): Promise<void[]> {
  // One entry per buyer and event: a buyer who joins again keeps the entry (and the arrival) they have.
  await sql`
    insert into waitlist_entries (event_id, buyer_id, seq, seats, items)
    select e.event_id, e.buyer_id, e.seq, array(select jsonb_array_elements_text(e.seats)), e.items
    from jsonb_to_recordset(${JSON.stringify(entries.map((e) => ({ event_id: e.eventId, buyer_id: e.buyerId, seq: e.seq, seats: e.seats, items: e.items })))}::jsonb)
      as e(event_id text, buyer_id text, seq bigint, seats jsonb, items jsonb)
    on conflict (event_id, buyer_id) do nothing
  `.execute(db);
  return entries.map(() => undefined);
}

const writers = perHandle((db: Db) => new GroupCommit<WaitlistEntryRecord, void>((items) => insertEntries(db, items), {
  maxBatch: BATCH_MAX,
  // The same buyer twice in one statement would be refused (on conflict cannot touch a row twice).
  key: (e) => `${e.eventId}\u0000${e.buyerId}`,
}));

/** Records an entry (nothing when the buyer has one already); resolves once committed. */
export function recordEntry(db: Db, entry: WaitlistEntryRecord): Promise<void> {
  return writers(db).submit(entry);
}

/** The entries of an event's list in arrival order, each with the offer made for it (if any). */
export async function listEntries(db: Db, eventId: string): Promise<{ buyerId: string; seq: number; seats: string[]; items: PoolItem[]; offer: string | null }[]> {
  const rows = await db
    .selectFrom('waitlist_entries as w')
    .select((eb) => [
      'w.buyer_id', 'w.seq', 'w.seats', 'w.items',
      eb.selectFrom('orders as o')
        .select('o.merchant_uid')
        .whereRef('o.event_id', '=', 'w.event_id')
        .whereRef('o.buyer_id', '=', 'w.buyer_id')
        .where('o.waitlist_offer', '=', true)
        .orderBy('o.created_at', 'desc')
        .limit(1)
        .as('offer'),
    ])
    .where('w.event_id', '=', eventId)
    .orderBy('w.seq')
    .execute();
  return rows.map((r) => ({ buyerId: r.buyer_id, seq: r.seq, seats: r.seats, items: r.items, offer: r.offer }));
}
