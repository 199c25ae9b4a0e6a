/**
 * Waiting for a scenario to come to rest, by conditions (never by a fixed sleep): nothing left to
 * happen for its event at the simulator (webhooks, retries, delayed outcomes), in the queues
 * (waiting, active, delayed jobs: retries, expiries, late-payment watches), in Postgres (held orders,
 * live holds, refunds in progress) or in Redis (live holds, held places, an event not loaded). The
 * worker's own sweep ends the holds; this only watches.
 */
import { HoldStore } from '@dropgate/redis';
import { ORPHAN_SETTLE_MS, onlyOrphansLeft, orphanWork } from '@dropgate/invariants';
import type { ChaosStack } from './stack.ts';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children'] as const;

/** What is still going on for `eventId` (empty when nothing is). */
export async function pendingWork(stack: ChaosStack, eventId: string): Promise<string[]> {
  const pending: string[] = [];
  const sim = stack.sim.pending(`${eventId}.`);
  if (sim > 0) pending.push(`${plural(sim, 'webhook or delayed outcome')} at the simulator`);

  const [held, live, refunding] = await Promise.all([
    stack.db.selectFrom('orders').select('merchant_uid').where('event_id', '=', eventId).where('status', '=', 'held').execute(),
    stack.db.selectFrom('holds').select('hold_id').where('event_id', '=', eventId).where('status', '=', 'live').execute(),
    stack.db.selectFrom('refunds').select('imp_uid').where('event_id', '=', eventId).where('status', '=', 'requested').execute(),
  ]);
  if (held.length > 0) pending.push(`${plural(held.length, 'order')} held`);
  if (live.length > 0) pending.push(`${plural(live.length, 'live hold row')}`);
  if (refunding.length > 0) pending.push(`${plural(refunding.length, 'refund')} in progress`);

  const inv = (await new HoldStore(stack.redis).inventories([eventId])).get(eventId) ?? null;
  const state = inv?.state ?? null;
  if (state !== 'ready') pending.push(`event ${state ?? 'missing'} in Redis`);
  const holds = inv?.liveHolds ?? 0;
  if (holds > 0) pending.push(`${plural(holds, 'hold')} live in Redis`);
  const heldPlaces = inv ? (inv.seats?.held ?? 0) + [...inv.pools.values()].reduce((n, p) => n + p.held, 0) : 0;
  if (heldPlaces > 0) pending.push(`${plural(heldPlaces, 'place')} held in Redis`);
  // Orphans (see ORPHAN_SETTLE_MS): pending in Postgres, never received by Redis.
  pending.push(...await orphanWork(stack.db, stack.redis, eventId));

  for (const [name, queue] of Object.entries(stack.queues)) {
    const jobs = await queue.getJobs([...PENDING_STATES], 0, -1);
    const mine = jobs.filter((j) => (j?.data as { eventId?: string } | undefined)?.eventId === eventId);
    if (mine.length === 0) continue;
    // Which jobs, in which state, after how many attempts and why: what a diagnosis needs.
    const detail = await Promise.all(mine.slice(0, 4).map(async (j) => {
      const state = await j.getState().catch(() => 'unknown');
      const why = j.failedReason ? `, last error: ${j.failedReason.slice(0, 160)}` : '';
      return `${j.id} ${state}, ${j.attemptsMade} attempts${why}`;
    }));
    pending.push(`${plural(mine.length, `${name} job`)} not finished (${detail.join('; ')}${mine.length > 4 ? '; …' : ''})`);
  }
  return pending;
}

export interface SettleOutcome {
  settled: boolean;
  /** What was still going on at the deadline (empty when settled). */
  pending: string[];
  ms: number;
}

/**
 * Polls until nothing is pending for `eventId` for `quietMs` in a row, or `timeoutMs` passes. A
 * dependency being down (a Postgres restart) makes a poll "cannot tell", not an error.
 */
export async function waitSettled(stack: ChaosStack, eventId: string, opts: { timeoutMs: number; quietMs?: number }): Promise<SettleOutcome> {
  const started = performance.now();
  const quietMs = opts.quietMs ?? 600;
  let quietSince: number | null = null;
  let orphansOnly = false;
  for (;;) {
    await stack.ensureRunning().catch(() => undefined);
    const last = await pendingWork(stack, eventId).catch((error: Error) => [`cannot tell (${error.message})`]);
    const now = performance.now();
    if (last.length === 0) {
      quietSince ??= now;
      if (now - quietSince >= quietMs) return { settled: true, pending: [], ms: now - started };
    } else quietSince = null;
    // Only orphans left: the worker withdraws them in its own time (see ORPHAN_SETTLE_MS); the
    // longer wait stays granted once they are gone (the quiet time after them).
    if (onlyOrphansLeft(last)) orphansOnly = true;
    if (now - started > (orphansOnly ? Math.max(opts.timeoutMs, ORPHAN_SETTLE_MS) : opts.timeoutMs)) return { settled: false, pending: last, ms: now - started };
    await new Promise((r) => setTimeout(r, 150));
  }
}
