/**
 * Orphans: an order the API inserted in Postgres and then died (SIGKILL) before handing to Redis stays
 * pending in Postgres and unknown to Redis until the worker withdraws it: its pass runs every 10 s for
 * orders older than 60 s (services/worker maintenance.processor.ts). Until then the checks would call
 * Redis and Postgres apart, so whatever waits for an event to come to rest (`npm run drop`, `npm run
 * chaos`) counts them as work still to happen, and gives them up to ORPHAN_SETTLE_MS.
 */
import type { Db } from '@dropgate/db';
import { HoldStore, type RedisClient } from '@dropgate/redis';

/** How long waiting for orphans to be withdrawn may take, from the start of the wait. */
export const ORPHAN_SETTLE_MS = 90_000;

/** Part of every orphan report, so a caller can tell that only orphans are left (onlyOrphansLeft). */
const ORPHAN_NOTE = 'the worker withdraws an orphan once it is 60 s old';

/**
 * The event's orphans as pending work: one line naming a few of them, or nothing. Nothing while the
 * event's Redis state is not ready (every order would look unknown to it then).
 */
export async function orphanWork(db: Db, redis: RedisClient, eventId: string): Promise<string[]> {
  const store = new HoldStore(redis);
  if ((await store.eventState(eventId)) !== 'ready') return [];
  const pending = (await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', eventId).where('status', '=', 'pending').execute())
    .map((o) => o.merchant_uid);
  if (pending.length === 0) return [];
  const statuses = await store.orderStatuses(eventId, pending);
  const orphans = pending.filter((m) => (statuses.get(m) ?? null) === null);
  if (orphans.length === 0) return [];
  return [`${orphans.length} order${orphans.length === 1 ? '' : 's'} pending in Postgres that Redis never received (${orphans.slice(0, 3).join(', ')}; ${ORPHAN_NOTE})`];
}

/** Whether the pending work reported is orphans only (see ORPHAN_SETTLE_MS). */
export function onlyOrphansLeft(pending: readonly string[]): boolean {
  return pending.length > 0 && pending.every((p) => p.includes(ORPHAN_NOTE));
}
