/**
 * The hand-off relay: placeHold writes one stream entry per approved payment (atomically with the
 * hold); the relay turns each into a BullMQ `holds` job (new holds) and a `verify` job, with
 * deterministic ids, then acknowledges the entry.
 * Consumer groups make it safe with several workers; entries a dead worker read but never queued are
 * claimed again once idle for JOB_LOCK_MS. At-least-once; duplicates collapse on the job id.
 */
import { jobIds, type PaymentOutcomeJob, type PersistHoldJob } from '@dropgate/jobs';
import type { WorkerContext } from '../context.ts';

const BATCH = 500;

export async function relayHandoffs(ctx: WorkerContext, consumer: string, eventIds: readonly string[]): Promise<number> {
  let moved = 0;
  for (const eventId of eventIds) {
    for (;;) {
      const batch = await ctx.store.readHandoffs(eventId, consumer, BATCH, ctx.config.jobLockMs);
      if (batch.length === 0) break;
      // A new hold is recorded; every approved payment (a new hold's, or one riding on a live hold) is
      // verified with PortOne at once. A reservation (hold_at "order") or its extension has no payment
      // yet (imp ''): recorded only.
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
      moved += batch.length;
      if (batch.length < BATCH) break;
    }
  }
  return moved;
}
