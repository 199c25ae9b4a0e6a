/**
 * A small drop for tests: orders created through the API and paid through the PortOne simulator, and
 * the invariants of design.md checked over Postgres, Redis and the simulator's ledger.
 */
import { expect } from 'vitest';
import { checkInvariants } from '@dropgate/invariants';
import type { Simulator, PaymentOutcome, PaymentWindowResult } from '@dropgate/portone-sim';
import type { Db } from '@dropgate/db';
import type { HoldStore } from '@dropgate/redis';
import { http, waitFor } from '@dropgate/testkit';

export interface DropSpec {
  api: string;
  sim: Simulator;
  eventId: string;
  orders: number;
  seats: number;
  pool: number;
  shares: { failed: number; abandoned: number; late: number };
  concurrency?: number;
  /** Called after each payment window with its index, so a test can break things mid-drop. */
  onProgress?: (done: number) => Promise<void> | void;
}

export interface DropResult {
  payments: PaymentWindowResult[];
  confirmCodes: Record<string, number>;
}

let seed = 99;
const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);

export async function createDropEvent(api: string, id: string, seats: number, pool: number, ttl: number, adminToken: string): Promise<void> {
  const res = await http(api, 'POST', '/admin/events', {
    id, name: 'Test drop', hold_ttl_seconds: ttl,
    seat_blocks: [{ section: 'D', rows: 1, seats_per_row: seats, price: 10_000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: pool, price: 3_000 }],
  }, { headers: { authorization: `Bearer ${adminToken}` } });
  expect(res.status, res.text).toBe(201);
}

export async function runDrop(spec: DropSpec): Promise<DropResult> {
  const payments: PaymentWindowResult[] = [];
  const confirmCodes: Record<string, number> = {};
  let next = 0;
  let done = 0;
  await Promise.all(Array.from({ length: spec.concurrency ?? 16 }, async () => {
    while (next < spec.orders) {
      const i = next++;
      const body = i % 2
        ? { buyer_id: `buyer-${i}`, seats: Array.from(new Set([1 + Math.floor(random() * spec.seats), 1 + Math.floor(random() * spec.seats)])).map((n) => `D-1-${n}`) }
        : { buyer_id: `buyer-${i}`, items: [{ pool: 'ga', quantity: 1 + Math.floor(random() * 3) }] };
      const o = await http(spec.api, 'POST', `/events/${spec.eventId}/orders`, body);
      if (o.status !== 201) {
        confirmCodes[`order_${o.body?.code}`] = (confirmCodes[`order_${o.body?.code}`] ?? 0) + 1;
        continue;
      }
      const r = random();
      const outcome: PaymentOutcome = r < spec.shares.failed ? 'failed' : r < spec.shares.failed + spec.shares.abandoned ? 'abandoned' : 'paid';
      const late = outcome === 'paid' && random() < spec.shares.late;
      const paid = await spec.sim.pay({
        merchant_uid: o.body.merchant_uid, amount: o.body.amount,
        confirm_url: `${spec.api}/portone/v1/confirm`, notice_url: `${spec.api}/portone/v1/webhook`,
        outcome, ...(late ? { buyer_delay_ms: 6_500 } : {}),
      });
      payments.push(paid);
      const code = paid.confirm?.status === 200 ? 'APPROVED' : String((paid.confirm?.body as { code?: string } | null)?.code ?? paid.confirm?.status ?? 'none');
      confirmCodes[code] = (confirmCodes[code] ?? 0) + 1;
      done++;
      await spec.onProgress?.(done);
    }
  }));
  return { payments, confirmCodes };
}

/** Waits until no order of the event is held, in Postgres and in Redis. */
export async function waitSettled(db: Db, store: HoldStore, sim: Simulator, eventId: string, apiUrl: string, timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  await sim.settled();
  await waitFor(async () => {
    const held = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', eventId).where('status', '=', 'held').limit(1).execute();
    const live = await db.selectFrom('holds').select('hold_id').where('event_id', '=', eventId).where('status', '=', 'live').limit(1).execute();
    const redisHolds = await store.liveHolds(eventId).catch(() => new Map([['unknown', 0]]));
    return held.length === 0 && live.length === 0 && redisHolds.size === 0;
  }, timeoutMs, 'every hold to end');
  // Late webhooks and refunds may still be in flight: wait until the paid ledger is fully accounted.
  await waitFor(async () => (await invariantViolations(db, store, sim, eventId, apiUrl)).length === 0 || null, timeoutMs, 'the invariants to hold')
    .catch(async () => undefined);
  return Date.now() - started;
}

/**
 * Every broken invariant, as readable sentences (empty when all hold): the same checks `npm run drop`
 * runs (no oversell; money and tickets match; every hold ended; Redis and Postgres agree).
 */
export async function invariantViolations(db: Db, store: HoldStore, sim: Simulator, eventId: string, apiUrl: string): Promise<string[]> {
  const report = await checkInvariants({ eventId, db, redis: store.redis, apiUrl, ledger: sim.ledger() });
  return report.results.flatMap((r) => r.violations.map((v) => `${r.id}. ${v}`));
}
