/**
 * One signed buyer's parallel orders against ORDERS_PER_BUYER_MAX while the event sells out (attack
 * round 26B, which found it holding): never more than the most, and Redis's count never ahead of the
 * record's. The API on real Redis and Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, waitFor } from '@dropgate/testkit';
import { signBuyerToken } from '@dropgate/domain';
import { eventKeys } from '@dropgate/redis';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

const SECRET = 'orders-race-secret-0123456789abcdefgh';
const MOST = 5;
let stack: ApiStack;
beforeAll(async () => {
  stack = await startApiStack({ label: 'ordersrace', env: { MAX_EVENT_LOOP_DELAY_MS: '60000', BUYER_TOKEN_SECRET: SECRET, ORDERS_PER_BUYER_MAX: String(MOST) } });
});
afterAll(async () => { await stack?.close(); });

const tok = (b: string) => signBuyerToken(SECRET, b, Date.now() + 3_600_000);

describe('ORDERS_PER_BUYER_MAX with sell-outs racing', () => {
  for (const holdAt of ['order', 'confirm'] as const) {
    it(`hold_at ${holdAt}: 60 parallel orders of one buyer (most sold out) leave Redis's count equal to the record's, and at most ${MOST} orders`, async () => {
      const id = eventId('or');
      const res = await http(stack.url, 'POST', '/admin/events', {
        id, name: 'Signed', pools: [{ id: 'ga', name: 'GA', capacity: 2, price: 1_000 }],
        ...(holdAt === 'order' ? { hold_at: 'order', reservation_ttl_seconds: 60 } : {}),
      }, { admin: true });
      expect(res.status, res.text).toBe(201);
      const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => http(stack.url, 'POST', `/events/${id}/orders`, {
        buyer_id: 'solo', buyer_token: tok('solo'), items: [{ pool: 'ga', quantity: 1 + (i % 2) }],
      })));
      const byStatus: Record<string, number> = {};
      for (const r of rs) byStatus[`${r.status} ${r.body?.code ?? ''}`] = (byStatus[`${r.status} ${r.body?.code ?? ''}`] ?? 0) + 1;
      expect(rs.filter((r) => r.status >= 500).map((r) => r.text)).toEqual([]);
      const made = rs.filter((r) => r.status === 201).length;
      expect(made, JSON.stringify(byStatus)).toBeLessThanOrEqual(MOST);
      const db = stack.api.deps.db;
      // Every claim settled (a refused order's claim is given back after its answer).
      await waitFor(async () => (await stack.redis.hlen(eventKeys(id).buyerClaims)) === 0, 10_000, 'the claims settled');
      const rows = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute();
      const pg = await db.selectFrom('buyer_order_counts').select('orders').where('event_id', '=', id).where('buyer_id', '=', 'solo').executeTakeFirst();
      const redisCount = Number(await stack.redis.hget(eventKeys(id).buyerOrders, 'solo') ?? '0');
      const claims = await stack.redis.hlen(eventKeys(id).buyerClaims);
      expect({ rows: rows.length, pg: pg?.orders ?? 0, claims }, JSON.stringify(byStatus)).toEqual({ rows: made, pg: made, claims: 0 });
      // Redis may run behind the record (the record decides then), never ahead of it for long.
      expect(redisCount, JSON.stringify(byStatus)).toBeLessThanOrEqual(made);
    });
  }
});
