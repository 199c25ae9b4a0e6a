/**
 * Waiting for a drop to come to rest: every hold ended (no order held in Postgres, no live hold row,
 * nothing held in Redis), no refund half done, the in-process worker's queues empty, and every paid
 * payment in the simulator's ledger settled (its order paid with it, or refunded).
 */
import { sql } from 'kysely';
import { HoldStore } from '@dropgate/redis';
import type { DropTarget } from './target.ts';
import { ORPHAN_SETTLE_MS, ledgerOf, onlyOrphansLeft, orphanWork } from '@dropgate/invariants';

export interface SettleStatus {
  settled: boolean;
  /** What is still going on, e.g. `12 orders held`. Empty when settled. */
  pending: string[];
  /** Live holds in Redis (for the in-process sweep). */
  liveHolds: number;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Holds, refunds and queues: cheap, checked every tick. */
async function holdStatus(target: DropTarget, eventId: string): Promise<SettleStatus> {
  const pending: string[] = [];
  const row = await sql<{ held: string; live: string; refunding: string }>`
    select
      (select count(*) from orders where event_id = ${eventId} and status = 'held') as held,
      (select count(*) from holds where event_id = ${eventId} and status = 'live') as live,
      (select count(*) from refunds where event_id = ${eventId} and status = 'requested') as refunding
  `.execute(target.db);
  const r = row.rows[0]!;
  if (Number(r.held) > 0) pending.push(`${plural(Number(r.held), 'order')} held`);
  if (Number(r.live) > 0) pending.push(`${plural(Number(r.live), 'live hold row')}`);
  if (Number(r.refunding) > 0) pending.push(`${plural(Number(r.refunding), 'refund')} in progress`);
  const inv = (await new HoldStore(target.redis).inventories([eventId])).get(eventId) ?? null;
  const liveHolds = inv?.liveHolds ?? 0;
  const heldPlaces = inv ? (inv.seats?.held ?? 0) + [...inv.pools.values()].reduce((n, p) => n + p.held, 0) : 0;
  if (liveHolds > 0) pending.push(`${plural(liveHolds, 'hold')} live in Redis`);
  else if (heldPlaces > 0) pending.push(`${plural(heldPlaces, 'place')} held in Redis`);
  if (target.pendingJobs) {
    for (const [where, n] of Object.entries(await target.pendingJobs())) pending.push(`${plural(n, 'job')} ${where}`);
  }
  return { settled: pending.length === 0, pending, liveHolds };
}

/** Every paid payment of the event is either its order's paid payment or refunded. */
async function paymentsStatus(target: DropTarget, eventId: string): Promise<string[]> {
  const ledger = ledgerOf(await target.sim.ledger(), eventId);
  const [orders, refunds, ticketed] = await Promise.all([
    target.db.selectFrom('orders').select(['merchant_uid', 'paid_imp_uid']).where('event_id', '=', eventId).where('status', '=', 'paid').execute(),
    target.db.selectFrom('refunds').select('imp_uid').where('event_id', '=', eventId).where('status', '=', 'done').execute(),
    target.db.selectFrom('tickets').select('imp_uid').distinct().where('event_id', '=', eventId).execute(),
  ]);
  const paidWith = new Set(orders.map((o) => o.paid_imp_uid));
  const refunded = new Set(refunds.map((r) => r.imp_uid));
  const withTickets = new Set(ticketed.map((t) => t.imp_uid));
  let unsettled = 0;
  let stillTicketed = 0;
  for (const p of ledger.payments) {
    if (p.status === 'paid' && p.cancel_amount === 0 && !paidWith.has(p.imp_uid) && !refunded.has(p.imp_uid)) unsettled++;
    if (p.status === 'cancelled' && withTickets.has(p.imp_uid)) stillTicketed++;
  }
  const pending: string[] = [];
  if (unsettled > 0) pending.push(`${plural(unsettled, 'paid payment')} not settled`);
  if (stillTicketed > 0) pending.push(`${plural(stillTicketed, 'cancelled payment')} still ticketed`);
  return pending;
}

/** Orders pending in Postgres that Redis never received (see ORPHAN_SETTLE_MS), as pending work. */
export function orphanStatus(target: DropTarget, eventId: string): Promise<string[]> {
  return orphanWork(target.db, target.redis, eventId);
}

export async function settleStatus(target: DropTarget, eventId: string): Promise<SettleStatus> {
  const holds = await holdStatus(target, eventId);
  if (!holds.settled) return holds;
  const pending = await paymentsStatus(target, eventId);
  if (pending.length === 0) pending.push(...await orphanStatus(target, eventId));
  return { settled: pending.length === 0, pending, liveHolds: 0 };
}

/**
 * Polls until the drop is at rest or `timeoutMs` passes. Not before `notBefore` (performance.now()):
 * the simulator may still have work scheduled that no state shows yet (a payment the PG turns paid
 * later, a delayed or held-back webhook). With an in-process worker, sweeps whenever holds are live, so
 * abandoned holds end right after their TTL.
 */
export async function waitSettled(
  target: DropTarget, eventId: string, opts: { timeoutMs: number; notBefore: number }, onStatus: (s: SettleStatus) => void,
): Promise<SettleStatus> {
  const started = performance.now();
  let deadline = started + opts.timeoutMs;
  let lastSweep = 0;
  for (;;) {
    let status: SettleStatus;
    try {
      status = await settleStatus(target, eventId);
    } catch (error) {
      // A dependency hiccup is not the end of the drop: report it and look again.
      status = { settled: false, pending: [`cannot tell (${(error as Error).message})`], liveHolds: 0 };
    }
    const early = opts.notBefore - performance.now();
    if (status.settled && early > 0) {
      status = { settled: false, pending: [`late payments and webhooks may still come (${(early / 1000).toFixed(1)} s)`], liveHolds: 0 };
    }
    if (status.settled && target.sim.settled) {
      // Webhooks still on their way (duplicates, delays) must find nothing left to change: let them
      // land, then look again.
      const settled = target.sim.settled;
      await Promise.race([settled(), new Promise((r) => setTimeout(r, 1_500))]);
      status = await settleStatus(target, eventId).catch((error: Error) => ({ settled: false, pending: [`cannot tell (${error.message})`], liveHolds: 0 }));
    }
    onStatus(status);
    // Only orphans left: the worker withdraws them in its own time, so they get that long.
    if (onlyOrphansLeft(status.pending)) deadline = Math.max(deadline, started + ORPHAN_SETTLE_MS);
    if (status.settled || performance.now() > deadline) return status;
    if (target.sweep && status.liveHolds > 0 && performance.now() - lastSweep > 1_000) {
      lastSweep = performance.now();
      await target.sweep().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
