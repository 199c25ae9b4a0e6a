/**
 * Invariant 1 (no oversell) under real concurrency: thousands of overlapping orders confirmed at once
 * over HTTP against real Redis; then the worker drains and Postgres agrees with Redis hold for hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, http, impUid, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { REFUSAL_REASONS, RefusalCodes } from '@dropgate/domain';

let stack: TestStack;
beforeAll(async () => { stack = await startStack({ label: 'race' }); });
afterAll(async () => { await stack?.close(); });

async function post(path: string, body: unknown) {
  return http(stack.url, 'POST', path, body);
}

async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i]!); }
  }));
  return out;
}

// A deterministic pseudo-random sequence, so a failure can be replayed.
function rng(seed: number) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe('sold-out race', () => {
  it('approves exactly the inventory, never a seat twice, never a pool over capacity', async () => {
    const id = eventId('race');
    const res = await fetch(new URL('/admin/events', stack.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.config.adminToken}` },
      body: JSON.stringify({
        id, name: 'Race', seat_blocks: [{ section: 'R', rows: 10, seats_per_row: 10, price: 1000 }],
        pools: [{ id: 'gen', name: 'General', capacity: 500, price: 500 }],
      }),
    });
    expect(res.status).toBe(201);
    const seatIds = Array.from({ length: 100 }, (_, i) => `R-${Math.floor(i / 10) + 1}-${(i % 10) + 1}`);
    const random = rng(42);
    type Spec = { buyer_id: string; seats?: string[]; items?: { pool: string; quantity: number }[] };
    const specs: Spec[] = [];
    // One single-seat order per seat and 600 single places: the inventory must end fully held.
    seatIds.forEach((s, i) => specs.push({ buyer_id: `single-${i}`, seats: [s] }));
    for (let i = 0; i < 600; i++) specs.push({ buyer_id: `one-${i}`, items: [{ pool: 'gen', quantity: 1 }] });
    // And thousands of overlapping multi-seat, multi-place and mixed orders.
    for (let i = 0; i < 2300; i++) {
      const n = 1 + Math.floor(random() * 4);
      const kind = random();
      const seats = new Set<string>();
      while (seats.size < n) seats.add(seatIds[Math.floor(random() * 100)]!);
      if (kind < 0.45) specs.push({ buyer_id: `m-${i}`, seats: [...seats] });
      else if (kind < 0.9) specs.push({ buyer_id: `m-${i}`, items: [{ pool: 'gen', quantity: n }] });
      else specs.push({ buyer_id: `m-${i}`, seats: [...seats].slice(0, 2), items: [{ pool: 'gen', quantity: n }] });
    }
    const orders = await pool(specs, 32, async (spec) => {
      const r = await post(`/events/${id}/orders`, spec);
      expect(r.status).toBe(201);
      return { spec, muid: r.body.merchant_uid as string, amount: r.body.amount as number };
    });
    // Shuffle so single orders are spread through the race.
    for (let i = orders.length - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [orders[i], orders[j]] = [orders[j]!, orders[i]!]; }

    const answers = await pool(orders, 200, async (o) => ({ o, res: await post('/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.muid, amount: o.amount }) }));

    const approved = answers.filter((a) => a.res.status === 200);
    const refused = answers.filter((a) => a.res.status !== 200);
    const seatOwner = new Map<string, string>();
    let poolHeld = 0;
    for (const a of approved) {
      expect(a.res.body.approved).toBe(true);
      expect(Number.isNaN(Date.parse(a.res.body.hold_expires_at))).toBe(false);
      for (const s of a.o.spec.seats ?? []) {
        expect(seatOwner.has(s), `seat ${s} approved twice`).toBe(false);
        seatOwner.set(s, a.o.muid);
      }
      poolHeld += (a.o.spec.items ?? []).reduce((n, i) => n + i.quantity, 0);
    }
    expect(seatOwner.size).toBe(100);
    expect(poolHeld).toBe(500);
    for (const r of refused) {
      expect(r.res.status).toBe(409);
      expect(RefusalCodes).toContain(r.res.body.code);
      expect(r.res.body.code).toBe('SOLD_OUT');
      expect(r.res.body.reason).toBe(REFUSAL_REASONS.SOLD_OUT);
      // Every refusal was justified: a seat of it is held by someone else, or the pool could not fit it.
      const seatTaken = (r.o.spec.seats ?? []).some((s) => seatOwner.get(s) !== r.o.muid);
      const poolFull = (r.o.spec.items ?? []).some((i) => poolHeld + i.quantity > 500);
      expect(seatTaken || poolFull).toBe(true);
    }
    expect(approved.length + refused.length).toBe(orders.length);

    const evRes = await http(stack.url, 'GET', `/events/${id}`);
    expect(evRes.status, evRes.text).toBe(200);
    const ev = evRes.body;
    expect(ev.availability.seats).toEqual({ total: 100, available: 0, held: 100, sold: 0 });
    expect(ev.availability.pools).toEqual([{ id: 'gen', capacity: 500, available: 0, held: 500, sold: 0 }]);

    // After the worker drains, Postgres and Redis agree hold for hold.
    const redisHolds = await stack.store.liveHolds(id);
    expect(redisHolds.size).toBe(approved.length);
    const db = stack.api.deps.db;
    const pgHolds = await waitFor(async () => {
      const rows = await db.selectFrom('holds').select(['merchant_uid', 'expires_at', 'status']).where('event_id', '=', id).execute();
      return rows.length === approved.length ? rows : null;
    }, 60_000, 'the worker to record every hold');
    for (const h of pgHolds) {
      expect(h.status).toBe('live');
      expect(redisHolds.get(h.merchant_uid)).toBe(h.expires_at.getTime());
    }
    const heldOrders = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('status', '=', 'held').execute();
    expect(new Set(heldOrders.map((o) => o.merchant_uid))).toEqual(new Set(approved.map((a) => a.o.muid)));
  });
});
