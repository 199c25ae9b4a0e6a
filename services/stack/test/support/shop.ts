/**
 * What the lifecycle and integrity tests do to a running stack: create a small event, order, read an
 * order and the availability, and wait for an order, a hold or the queues.
 */
import { expect } from 'vitest';
import { http, eventId, newOrder, waitFor } from '@dropgate/testkit';
import type { TestStack } from '@dropgate/stack';

export interface EventShape {
  ttl?: number;
  seats?: number;
  pool?: number;
  /** hold_at "order": each order reserves its places for this many seconds. */
  reservation?: number;
}

/** Helpers bound to the stack `current()` returns (it is started in a beforeAll). */
export function shop(current: () => TestStack, opts: { prefix: string; section: string }) {
  const stack = () => current();
  const detail = async (muid: string) => (await http(stack().url, 'GET', `/orders/${muid}`, undefined, { admin: true })).body;
  /** Until no job is waiting or running (delayed ones, such as the late-payment watch, may stay). */
  const queuesIdle = () => waitFor(async () => {
    for (const q of Object.values(stack().api.deps.queues)) {
      const c = await q.getJobCounts('waiting', 'active', 'prioritized');
      if ((c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0) > 0) return false;
    }
    return true;
  }, 20_000, 'the queues to be idle');
  return {
    confirmUrl: () => `${stack().url}/portone/v1/confirm`,
    noticeUrl: () => `${stack().url}/portone/v1/webhook`,
    /** A new event: `seats` seats in one row of `section` at ₩10,000 and/or a pool `ga` at ₩5,000. */
    async event(shape: EventShape = {}): Promise<string> {
      const id = eventId(opts.prefix);
      const body: Record<string, unknown> = { id, name: opts.prefix, hold_ttl_seconds: shape.ttl ?? 300 };
      if (shape.seats) body.seat_blocks = [{ section: opts.section, rows: 1, seats_per_row: shape.seats, price: 10_000 }];
      if (shape.pool) body.pools = [{ id: 'ga', name: 'GA', capacity: shape.pool, price: 5_000 }];
      if (shape.reservation) Object.assign(body, { hold_at: 'order', reservation_ttl_seconds: shape.reservation });
      const res = await http(stack().url, 'POST', '/admin/events', body, { admin: true });
      expect(res.status, res.text).toBe(201);
      return id;
    },
    order: (id: string, body: Record<string, unknown>) => newOrder(stack().url, id, body),
    /** The order as its reader sees it (read with the admin token). */
    detail,
    availability: async (id: string) => (await http(stack().url, 'GET', `/events/${id}`)).body.availability,
    orderIs: (muid: string, status: string, timeoutMs = 20_000) =>
      waitFor(async () => { const d = await detail(muid); return d.status === status ? d : null; }, timeoutMs, `order ${muid} to be ${status}`),
    /** Until the order's status in Redis is `status` (e.g. the buyer is in the payment window: held). */
    redisStatusIs: (id: string, muid: string, status: string, timeoutMs = 10_000) =>
      waitFor(async () => (await stack().store.orderState(id, muid))?.status === status, timeoutMs, `order ${muid} to be ${status} in Redis`),
    /**
     * Until the order's hold is recorded live in Postgres and, with `impUid`, that payment verified
     * (recorded): the relay does both after the confirm, outside the queues `queuesIdle` watches.
     */
    recorded: (muid: string, impUid?: string, timeoutMs = 20_000) => waitFor(async () => {
      const db = stack().api.deps.db;
      const live = await db.selectFrom('holds').select('status').where('merchant_uid', '=', muid).where('status', '=', 'live').executeTakeFirst();
      if (!live) return false;
      return impUid === undefined || (await db.selectFrom('payments').select('imp_uid').where('imp_uid', '=', impUid).executeTakeFirst()) !== undefined;
    }, timeoutMs, `the hold of ${muid} recorded${impUid ? ` and ${impUid} verified` : ''}`),
    /** Until no job is waiting or running (delayed ones, such as the late-payment watch, may stay). */
    queuesIdle,
    /**
     * Until the relay is done with every hold handed off on event `id` (recorded, or its recording
     * queued as a job), no verification waits for a retry, and the queues are idle: the relay works
     * outside the queues, and on a loaded machine it may record a hold after the order's paid webhook
     * was settled, its verify job retrying (delayed) while the recording holds the order's lock.
     */
    async relayedAndIdle(id: string, timeoutMs = 20_000) {
      await waitFor(async () => (await stack().store.handoffsLeft(id)) === 0, timeoutMs, `the relay to be done with event ${id}`);
      await waitFor(async () => (await stack().api.deps.queues.payments.getJobs(['delayed'])).every((j) => j.name !== 'verify'), timeoutMs, 'the verifications to be done');
      await queuesIdle();
    },
    /**
     * Three ledger sweeps reading PortOne's lists up to now (no settle delay), each one's jobs done
     * before the next: what they queued. For a stack started with `timers: false`.
     */
    async ledgerSweeps(): Promise<string[]> {
      const queued: string[] = [];
      for (let i = 0; i < 3; i++) {
        for (const s of await stack().worker!.sweepLedger({ settleDelayMs: 0 })) queued.push(...s.queued);
        await queuesIdle();
      }
      return queued;
    },
  };
}
