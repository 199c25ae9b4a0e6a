/**
 * The hand-off relay: placeHold writes one stream entry per approved payment (atomically with the
 * hold); the relay turns each into a BullMQ `holds` job (new holds) and a `verify` job, with
 * deterministic ids, then acknowledges the entry.
 * Consumer groups make it safe with several workers; entries a dead worker read but never queued are
 * claimed again once idle for JOB_LOCK_MS. At-least-once; duplicates collapse on the job id.
 */
import { jobIds, type PaymentOutcomeJob, type PersistHoldJob } from '@dropgate/jobs';
import type { Handoff } from '@dropgate/redis';
import type { WorkerContext } from '../context.ts';

const BATCH = 500;

/** How often each event's stream is searched for entries a dead consumer left (at most). */
const RECLAIM_EVERY_MS = 1_000;

export type HandoffRelay = (eventIds: readonly string[]) => Promise<number>;

/**
 * The relay of one consumer. A pass reads the new entries of every active event at once (one
 * XREADGROUP on a single Redis, one per event sent together on a cluster), so an idle pass costs one
 * command however many events are active; events with entries are relayed side by side. Entries
 * another consumer read and never queued become reclaimable after JOB_LOCK_MS idle: each event's
 * stream is searched for them once a second (or twice per JOB_LOCK_MS when that is shorter), not at
 * every pass.
 */
export function createHandoffRelay(ctx: WorkerContext, consumer: string): HandoffRelay {
  const reclaimedAt = new Map<string, number>();
  const reclaimEveryMs = Math.min(RECLAIM_EVERY_MS, Math.floor(ctx.config.jobLockMs / 2));
  return async (eventIds) => {
    const now = Date.now();
    const due = eventIds.filter((id) => (reclaimedAt.get(id) ?? 0) <= now - reclaimEveryMs);
    for (const id of due) reclaimedAt.set(id, now);
    const reclaimed = await Promise.all(due.map(async (id) => queueHandoffs(ctx, id, await ctx.store.reclaimHandoffs(id, consumer, BATCH, ctx.config.jobLockMs))));
    // An event whose read failed (its shard failing over) does not hold back the others' entries.
    let failed: unknown = null;
    const fresh = await ctx.store.readNewHandoffs(eventIds, consumer, BATCH, (_eventId, error) => { failed ??= error; });
    const relayed = await Promise.all([...fresh].map(async ([eventId, first]) => {
      let moved = 0;
      for (let batch = first; ;) {
        moved += await queueHandoffs(ctx, eventId, batch);
        if (batch.length < BATCH) return moved;
        batch = (await ctx.store.readNewHandoffs([eventId], consumer, BATCH)).get(eventId) ?? [];
      }
    }));
    if (failed !== null) throw failed;
    return [...reclaimed, ...relayed].reduce((a, b) => a + b, 0);
  };
}

/**
 * Queues an event's hand-offs, then acknowledges them. A new hold is recorded; every approved payment
 * (a new hold's, or one riding on a live hold) is verified with PortOne at once. A reservation
 * (hold_at "order") or its extension has no payment yet (imp ''): recorded only.
 */
async function queueHandoffs(ctx: WorkerContext, eventId: string, batch: readonly Handoff[]): Promise<number> {
  if (batch.length === 0) return 0;
  await ctx.queues.holds.addBulk(batch.filter((h) => !h.ride).map((h) => {
    const data: PersistHoldJob = { eventId, merchantUid: h.merchantUid, impUid: h.impUid, seq: h.seq, expiresAt: h.expiresAt, heldAt: h.heldAt };
    return { name: 'persist', data, opts: { jobId: jobIds.persistHold(h.merchantUid, h.seq) } };
  }));
  await ctx.queues.payments.addBulk(batch.filter((h) => h.impUid !== '').map((h) => {
    const data: PaymentOutcomeJob = {
      eventId, merchantUid: h.merchantUid, impUid: h.impUid, hint: null, source: 'verify', receivedAt: h.heldAt, seq: h.seq,
    };
    return { name: 'verify', data, opts: { jobId: jobIds.verifyPayment(h.merchantUid, h.seq, h.impUid) } };
  }));
  await ctx.store.ackHandoffs(eventId, batch.map((h) => h.id));
  return batch.length;
}
