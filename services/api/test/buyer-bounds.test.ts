/**
 * What one caller can make dropgate store (design invariant 9). A buyer id in a body is the caller's
 * word, so two bounds work together: with BUYER_TOKEN_SECRET, an order, a queue place and a
 * waiting-list entry need the storefront's signature of the buyer (a refused one stores nothing), and
 * ORDERS_PER_BUYER_MAX bounds the orders one signed buyer makes for an event, exactly, under
 * concurrency, and across a rebuild of the event's Redis state from Postgres. Without signed buyers
 * there is no such bound: anyone could spend a buyer's orders and lock them out of the sale.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSnapshot, orders as ordersRepo, withdrawOrders } from '@dropgate/db';
import { signBuyerToken } from '@dropgate/domain';
import { HoldStore, eventKeyPattern, eventKeys } from '@dropgate/redis';
import { eventId, http } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { addressKey } from '../src/lib/buyers.ts';

const SECRET = 'buyer-bounds-test-secret-0123456789';
const MOST = 5;

let signed: ApiStack;
let capped: ApiStack;
let unsigned: ApiStack;
let paced: ApiStack;
beforeAll(async () => {
  // No shedding (both cores are shared with other test files): every refusal here is the bound's.
  const calm = { MAX_EVENT_LOOP_DELAY_MS: '60000' };
  [signed, capped, unsigned, paced] = await Promise.all([
    startApiStack({ label: 'buyersigned', env: { ...calm, BUYER_TOKEN_SECRET: SECRET } }),
    startApiStack({ label: 'buyercap', env: { ...calm, BUYER_TOKEN_SECRET: SECRET, ORDERS_PER_BUYER_MAX: String(MOST) } }),
    startApiStack({ label: 'buyerword', env: { ...calm, ORDERS_PER_BUYER_MAX: String(MOST) } }),
    // One proxy in front (TRUST_PROXY 1): the client address is the X-Forwarded-For the proxy wrote.
    startApiStack({ label: 'buyerpace', env: { ...calm, ORDERS_PER_IP_PER_MINUTE: String(MOST), TRUST_PROXY: '1' } }),
  ]);
});
afterAll(async () => { await Promise.all([signed?.close(), capped?.close(), unsigned?.close(), paced?.close()]); });

async function makeEvent(stack: ApiStack, extra: Record<string, unknown> = {}, capacity = 1_000): Promise<string> {
  const id = eventId('bb');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Buyer bounds', pools: [{ id: 'ga', name: 'GA', capacity, price: 1_000 }], ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** Everything an event has in Redis and Postgres that a request could have added. */
async function stored(stack: ApiStack, id: string) {
  const keys = (await stack.redis.keys(eventKeyPattern(id))).sort();
  const orders = await stack.api.deps.db.selectFrom('orders').select(['merchant_uid', 'buyer_id']).where('event_id', '=', id).execute();
  const orderEvents = await stack.api.deps.db.selectFrom('order_events').select('merchant_uid').where('event_id', '=', id).execute();
  const waiting = await stack.redis.zcard(eventKeys(id).queueWaiting);
  const listed = await stack.redis.zcard(eventKeys(id).waitlist);
  return { keys, orders: orders.length, orderEvents: orderEvents.length, waiting, listed };
}

/** dropgate_buyer_refusals_total for one endpoint and code, from the API's /metrics. */
async function refusals(stack: ApiStack, endpoint: string, code: string): Promise<number> {
  const text = (await http(stack.url, 'GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`dropgate_buyer_refusals_total{endpoint="${endpoint}",code="${code}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('signed buyer identity (BUYER_TOKEN_SECRET)', () => {
  const NOW = () => Date.now();
  const token = (buyer: string, expiresAt = NOW() + 600_000, secret = SECRET) => signBuyerToken(secret, buyer, expiresAt);

  it('an order, a queue place and a waiting-list entry need the storefront\'s signature of their buyer; a refusal stores nothing', async () => {
    const plain = await makeEvent(signed);
    const roomed = await makeEvent(signed, { waiting_room: { mode: 'fixed', admit_per_second: 1, max_active: 1, admission_ttl_seconds: 30 } });
    const listed = await makeEvent(signed, { hold_at: 'order', reservation_ttl_seconds: 60, waitlist: { offer_ttl_seconds: 60 } }, 1);
    const before = await Promise.all([plain, roomed, listed].map((id) => stored(signed, id)));
    const counted = () => Promise.all(['orders', 'queue', 'waitlist'].map((e) => refusals(signed, e, 'BUYER_UNVERIFIED')));
    const countedBefore = await counted();

    const bad: [string, string | undefined][] = [
      ['no token', undefined],
      ['another buyer\'s', token('u-2')],
      ['expired', token('u-1', NOW() - 1)],
      ['signed with another secret', token('u-1', NOW() + 600_000, 'someone-else-s-secret-0123456789abc')],
      ['tampered', token('u-1').replace(/~(\d+)~/, (_m, exp: string) => `~${Number(exp) + 1}~`)],
      ['not a token', 'b1~u-1~1~x'],
    ];
    for (const [what, t] of bad) {
      const withToken = t === undefined ? {} : { buyer_token: t };
      for (const [path, body] of [
        [`/events/${plain}/orders`, { buyer_id: 'u-1', items: [{ pool: 'ga', quantity: 1 }] }],
        [`/events/${roomed}/queue`, { buyer_id: 'u-1' }],
        [`/events/${listed}/waitlist`, { buyer_id: 'u-1', items: [{ pool: 'ga', quantity: 1 }] }],
      ] as const) {
        const res = await http(signed.url, 'POST', path, { ...body, ...withToken });
        expect(res.status, `${what} ${path}: ${res.text}`).toBe(403);
        expect(res.body.code).toBe('BUYER_UNVERIFIED');
        expect(typeof res.body.message).toBe('string');
      }
    }
    // Nothing anywhere: no order row or history, no Redis key, no queue place, no list entry.
    expect(await Promise.all([plain, roomed, listed].map((id) => stored(signed, id)))).toEqual(before);
    // Each refusal counted, by endpoint.
    expect(await counted()).toEqual(countedBefore.map((n) => n + bad.length));

    const good = { buyer_token: token('u-1') };
    const order = await http(signed.url, 'POST', `/events/${plain}/orders`, { buyer_id: 'u-1', items: [{ pool: 'ga', quantity: 1 }], ...good });
    expect(order.status, order.text).toBe(201);
    expect(order.text).not.toContain(good.buyer_token);
    const queued = await http(signed.url, 'POST', `/events/${roomed}/queue`, { buyer_id: 'u-1', ...good });
    expect(queued.status, queued.text).toBe(201);
    // The list takes entries once its places are gone: sell the one place first.
    const taken = await http(signed.url, 'POST', `/events/${listed}/orders`, { buyer_id: 'u-3', items: [{ pool: 'ga', quantity: 1 }], buyer_token: token('u-3') });
    expect(taken.status, taken.text).toBe(201);
    const entry = await http(signed.url, 'POST', `/events/${listed}/waitlist`, { buyer_id: 'u-1', items: [{ pool: 'ga', quantity: 1 }], ...good });
    expect(entry.status, entry.text).toBe(201);
    const after = await stored(signed, plain);
    expect(after.orders).toBe(before[0]!.orders + 1);
    const row = await signed.api.deps.db.selectFrom('orders').selectAll().where('event_id', '=', plain).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(good.buyer_token.split('~')[3]);
  });

  it('an oversized or malformed token is a 400, not a 500', async () => {
    const id = await makeEvent(signed);
    for (const t of ['x'.repeat(129), 'b1 u-1', 'b1~u-1~1~ä', 12]) {
      const res = await http(signed.url, 'POST', `/events/${id}/orders`, { buyer_id: 'u-1', items: [{ pool: 'ga', quantity: 1 }], buyer_token: t });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    }
    expect((await stored(signed, id)).orders).toBe(0);
  });
});

describe('orders per buyer (ORDERS_PER_BUYER_MAX)', () => {
  const body = (buyer: string) => ({ buyer_id: buyer, items: [{ pool: 'ga', quantity: 1 }], buyer_token: signBuyerToken(SECRET, buyer, Date.now() + 600_000) });

  async function hammer(id: string, buyer: string, n: number) {
    const answers = await Promise.all(Array.from({ length: n }, () => http(capped.url, 'POST', `/events/${id}/orders`, body(buyer))));
    const statuses: Record<number, number> = {};
    for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    for (const a of answers) if (a.status !== 201) expect(a.body.code, a.text).toBe('ORDER_LIMIT');
    return statuses;
  }

  for (const holdAt of ['confirm', 'order'] as const) {
    it(`hold_at "${holdAt}": 40 concurrent orders of one buyer make exactly ${MOST}; the rest are 429 and store nothing`, async () => {
      const id = await makeEvent(capped, holdAt === 'order' ? { hold_at: 'order', reservation_ttl_seconds: 300 } : {});
      const countedBefore = await refusals(capped, 'orders', 'ORDER_LIMIT');
      expect(await hammer(id, 'greedy', 40)).toEqual({ 201: MOST, 429: 40 - MOST });
      expect(await refusals(capped, 'orders', 'ORDER_LIMIT')).toBe(countedBefore + 40 - MOST);
      const db = capped.api.deps.db;
      const rows = await db.selectFrom('orders').select(['merchant_uid', 'status']).where('event_id', '=', id).where('buyer_id', '=', 'greedy').execute();
      expect(rows).toHaveLength(MOST);
      const k = eventKeys(id);
      const orderKeys = (await capped.redis.keys(eventKeyPattern(id))).filter((key) => /:o:[^:]+$/.test(key));
      expect(orderKeys).toHaveLength(MOST);
      expect(await capped.redis.hget(k.buyerOrders, 'greedy')).toBe(String(MOST));
      // The refusals wrote nothing: the buyer's history has exactly its orders' `created` entries.
      const history = await db.selectFrom('order_events').select(['merchant_uid', 'type']).where('event_id', '=', id).where('merchant_uid', 'in', rows.map((r) => r.merchant_uid)).execute();
      expect(history.filter((h) => h.type === 'created')).toHaveLength(MOST);
      const all = await db.selectFrom('order_events').select('type').where('event_id', '=', id).execute();
      expect(all.filter((h) => h.type === 'withdrawn')).toHaveLength(0);
      if (holdAt === 'order') {
        // Only the orders made hold places.
        expect(await capped.redis.hget(k.counts, 'p:ga:held')).toBe(String(MOST));
        expect(await capped.redis.hget(k.buyers, 'greedy')).toBe(String(MOST));
      }
      // Another buyer is not affected, and the refused one stays refused.
      expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('modest'))).status).toBe(201);
      const again = await http(capped.url, 'POST', `/events/${id}/orders`, body('greedy'));
      expect(again.status, again.text).toBe(429);
      expect(again.body.code).toBe('ORDER_LIMIT');
      expect(await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('buyer_id', '=', 'greedy').execute()).toHaveLength(MOST);
    });
  }

  it('without signed buyers there is no bound to spend: a buyer id\'s orders beyond it are still taken', async () => {
    const id = await makeEvent(unsigned);
    const answers = await Promise.all(Array.from({ length: MOST * 3 }, () =>
      http(unsigned.url, 'POST', `/events/${id}/orders`, { buyer_id: 'victim', items: [{ pool: 'ga', quantity: 1 }] })));
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: MOST * 3 }, () => 201));
  });

  it('the count is rebuilt from Postgres with the event: the signed orders, not those made on a caller\'s word', async () => {
    const id = await makeEvent(capped);
    const db = capped.api.deps.db;
    // Orders under 'loyal' made before signing was switched on (as an unsigned API made them): in
    // Postgres and visible in Redis, but not verified, so they spend nothing of the signed buyer's bound.
    const store = new HoldStore(capped.redis, { maxOrdersPerBuyer: MOST });
    for (let i = 0; i < 7; i++) {
      const o = { merchantUid: `${id}.early${i}`, amount: 1_000, buyerId: 'loyal', seats: [], items: [{ pool: 'ga', quantity: 1 }], tickets: 1 };
      await ordersRepo.insertOrder(db, { ...o, eventId: id, currency: 'KRW', seats: [], items: [{ pool: 'ga', quantity: 1, unitPrice: 1_000 }] });
      expect(await store.createOrder(id, o)).toBe('created');
    }
    for (let i = 0; i < MOST; i++) expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('loyal'))).status).toBe(201);
    const verified = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('buyer_verified', '=', true).execute();
    expect(verified).toHaveLength(MOST);
    // The event's Redis state lost and rebuilt from the record (as the worker's guard does).
    const k = eventKeys(id);
    await capped.redis.del(k.buyerOrders);
    await capped.store.loadEvent((await loadSnapshot(db, id))!, 'rebuilt');
    expect(await capped.redis.hget(k.buyerOrders, 'loyal')).toBe(String(MOST));
    // A store with the API's bound refuses the next; a claim is given back once, and only a held one.
    expect(await store.claimOrder(id, 'loyal', `${id}.c0`, Date.now())).toBe('ORDER_LIMIT');
    expect(await store.claimOrder(id, 'someone-else', `${id}.c1`, Date.now())).toBe('claimed');
    expect(await store.unclaimOrder(id, `${id}.c1`)).toBe(true);
    expect(await store.unclaimOrder(id, `${id}.c1`)).toBe(false);
    expect(await store.unclaimOrder(id, `${id}.never`)).toBe(false);
    expect(await capped.redis.hexists(k.buyerOrders, 'someone-else')).toBe(0);
    expect(await capped.redis.hget(k.buyerOrders, 'loyal')).toBe(String(MOST));
  });

  it('a rebuild while orders are on their way counts them once: made, given back, or lost', async () => {
    const id = await makeEvent(capped);
    const db = capped.api.deps.db;
    const k = eventKeys(id);
    const store = new HoldStore(capped.redis, { maxOrdersPerBuyer: MOST });
    for (let i = 0; i < MOST - 2; i++) expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('window'))).status).toBe(201);
    // An order of this buyer counted and not yet in Postgres (its insert commits after the rebuild
    // read the record); a claim of an order already in the record whose settling was lost; and a claim
    // of an API process that died ten minutes ago.
    expect(await store.claimOrder(id, 'window', `${id}.inflight`, Date.now())).toBe('claimed');
    const made = (await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).executeTakeFirstOrThrow()).merchant_uid;
    await capped.redis.hset(k.buyerClaims, made, `window|${Date.now()}`);
    await capped.redis.hset(k.buyerClaims, `${id}.lost`, `window|${Date.now() - 10 * 60_000}`);
    await capped.store.loadEvent((await loadSnapshot(db, id))!, 'rebuilt');
    // The record's orders and the one on its way: MOST - 1. The other two claims are gone.
    expect(await capped.redis.hget(k.buyerOrders, 'window')).toBe(String(MOST - 1));
    expect(Object.keys(await capped.redis.hgetall(k.buyerClaims))).toEqual([`${id}.inflight`]);
    expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('window'))).status).toBe(201);
    // Redis counts the order on its way (MOST), the record does not yet (MOST - 1): the record decides.
    expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('window'))).status).toBe(201);
    expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('window'))).status).toBe(429);
    // The order on its way is not made after all: it gives back its own count, once; the record is full.
    expect(await store.unclaimOrder(id, `${id}.inflight`)).toBe(true);
    expect(await store.unclaimOrder(id, `${id}.inflight`)).toBe(false);
    const last = await http(capped.url, 'POST', `/events/${id}/orders`, body('window'));
    expect(last.status, last.text).toBe(429);
    expect(last.body.code).toBe('ORDER_LIMIT');
    const verified = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('buyer_id', '=', 'window').where('buyer_verified', '=', true).execute();
    expect(verified).toHaveLength(MOST);
    expect(await capped.redis.hlen(k.buyerClaims)).toBe(0);
  });

  it('a count Redis kept too high (a give-back lost with a connection or a process) does not refuse a buyer under the bound', async () => {
    const id = await makeEvent(capped);
    for (let i = 0; i < MOST - 1; i++) expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('returning'))).status).toBe(201);
    // A claim whose order was never made and whose give-back was lost: Redis counts MOST.
    expect(await capped.store.claimOrder(id, 'returning', `${id}.leaked`, Date.now())).toBe('claimed');
    expect(await capped.redis.hget(eventKeys(id).buyerOrders, 'returning')).toBe(String(MOST));
    // The record has MOST - 1: the buyer's last order is made, and the next is refused.
    const again = await http(capped.url, 'POST', `/events/${id}/orders`, body('returning'));
    expect(again.status, again.text).toBe(201);
    expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('returning'))).status).toBe(429);
    const verified = await capped.api.deps.db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('buyer_id', '=', 'returning').execute();
    expect(verified).toHaveLength(MOST);
  });

  it('Postgres\'s count: a withdrawn verified order gives its count back, even under a bound lowered since', async () => {
    const id = await makeEvent(capped);
    const db = capped.api.deps.db;
    const count = async () => (await db.selectFrom('buyer_order_counts').select('orders').where('event_id', '=', id).where('buyer_id', '=', 'backer').executeTakeFirst())?.orders;
    const o = (n: number, most: number) => ({
      merchantUid: `${id}.w${n}`, eventId: id, buyerId: 'backer', amount: 1_000, currency: 'KRW', seats: [], items: [{ pool: 'ga', quantity: 1, unitPrice: 1_000 }],
      buyerVerified: true, maxOrdersPerBuyer: most,
    });
    for (let n = 0; n < 3; n++) await ordersRepo.insertOrder(db, o(n, 3));
    expect(await count()).toBe(3);
    await expect(ordersRepo.insertOrder(db, o(3, 3))).rejects.toMatchObject({ code: '23514', constraint: 'buyer_order_counts__within_max_ck' });
    // The bound is lowered to 1 (ORDERS_PER_BUYER_MAX changed): a withdrawal still goes through.
    await expect(ordersRepo.insertOrder(db, o(4, 1))).rejects.toMatchObject({ code: '23514' });
    expect(await withdrawOrders(db, [{ merchantUid: `${id}.w0`, eventId: id, reason: 'test' }])).toEqual([true]);
    expect(await count()).toBe(2);
    expect(await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).execute()).toHaveLength(2);
  });

  it('Redis losing the counts (and the claims on their way) cannot let a buyer past the bound: Postgres refuses it', async () => {
    const id = await makeEvent(capped);
    const db = capped.api.deps.db;
    for (let i = 0; i < MOST - 1; i++) expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('lucky'))).status).toBe(201);
    // Redis forgets the buyer's count, as after a loss the rebuild did not see the orders' inserts.
    await capped.redis.del(eventKeys(id).buyerOrders, eventKeys(id).buyerClaims);
    const answers = await Promise.all(Array.from({ length: 10 }, () => http(capped.url, 'POST', `/events/${id}/orders`, body('lucky'))));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    for (const a of answers.filter((x) => x.status !== 201)) {
      expect(a.status, a.text).toBe(429);
      expect(a.body.code).toBe('ORDER_LIMIT');
    }
    const verified = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('buyer_id', '=', 'lucky').where('buyer_verified', '=', true).execute();
    expect(verified).toHaveLength(MOST);
    // The refusals wrote nothing: the buyer's history is its orders' `created` entries.
    const history = await db.selectFrom('order_events').select('type').where('event_id', '=', id).execute();
    expect(history.filter((h) => h.type === 'created')).toHaveLength(MOST);
    expect(history.filter((h) => h.type === 'withdrawn')).toHaveLength(0);
  });

  it('an event being rebuilt counts nothing and writes nothing (503 NOT_READY), and counts again once loaded', async () => {
    const id = await makeEvent(capped);
    const db = capped.api.deps.db;
    await capped.store.markLoading(id);
    const res = await http(capped.url, 'POST', `/events/${id}/orders`, body('patient'));
    expect(res.status, res.text).toBe(503);
    expect(res.body.code).toBe('NOT_READY');
    expect(await capped.redis.hget(eventKeys(id).buyerOrders, 'patient')).toBeNull();
    expect(await db.selectFrom('order_events').select('type').where('event_id', '=', id).execute()).toEqual([]);
    await capped.store.loadEvent((await loadSnapshot(db, id))!, 'reloaded');
    expect((await http(capped.url, 'POST', `/events/${id}/orders`, body('patient'))).status).toBe(201);
    expect(await capped.redis.hget(eventKeys(id).buyerOrders, 'patient')).toBe('1');
  });
});

describe('orders and joins per client address (ORDERS_PER_IP_PER_MINUTE)', () => {
  it('one budget per address, whatever form a proxy wrote it in; anything else shares one budget', () => {
    const same = (forms: string[]) => expect(new Set(forms.map(addressKey)).size, forms.join(' ')).toBe(1);
    same(['203.0.113.7', '203.0.113.7:1', '203.0.113.7:65535', ' 203.0.113.7 ', '::ffff:203.0.113.7']);
    same(['2001:db8::1', '2001:DB8::1', '[2001:db8::1]', '[2001:db8::1]:443', '2001:db8::2']);
    expect(addressKey('203.0.113.7')).not.toBe(addressKey('203.0.113.8'));
    expect(addressKey('2001:db8::1')).not.toBe(addressKey('2001:db8:0:1::1'));
    same(['001.1.1.1', 'garbage', '', '1.1.1.1:port', '[1.1.1.1]x', 'unknown']);
    expect(addressKey('garbage')).not.toBe(addressKey('1.1.1.1'));
  });

  const from = (address: string) => ({ headers: { 'x-forwarded-for': address } });

  it('one address gets its budget a minute for orders and for joins, concurrently; past it 429 with Retry-After, nothing stored; other addresses unaffected', async () => {
    const id = await makeEvent(paced, { hold_at: 'order', reservation_ttl_seconds: 300, waitlist: { offer_ttl_seconds: 60 } });
    const before = await stored(paced, id);
    const countedBefore = await refusals(paced, 'orders', 'RATE_LIMITED');
    // 3 times the budget at once, each order under a new buyer id (what a script does), from one address.
    const answers = await Promise.all(Array.from({ length: MOST * 3 }, (_, i) =>
      http(paced.url, 'POST', `/events/${id}/orders`, { buyer_id: `script-${i}`, items: [{ pool: 'ga', quantity: 1 }] }, from('203.0.113.7'))));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(MOST);
    const refused = answers.filter((a) => a.status !== 201);
    expect(refused).toHaveLength(MOST * 2);
    for (const r of refused) {
      expect(r.status, r.text).toBe(429);
      expect(r.body.code).toBe('RATE_LIMITED');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect((await stored(paced, id)).orders).toBe(before.orders + MOST);
    expect(await refusals(paced, 'orders', 'RATE_LIMITED')).toBe(countedBefore + MOST * 2);
    // Waiting-list joins have a budget of their own, bounded the same way.
    const joins = await Promise.all(Array.from({ length: MOST * 2 }, (_, i) =>
      http(paced.url, 'POST', `/events/${id}/waitlist`, { buyer_id: `listed-${i}`, items: [{ pool: 'ga', quantity: 1 }] }, from('203.0.113.7'))));
    expect(joins.filter((j) => j.status === 201)).toHaveLength(MOST);
    expect(joins.filter((j) => j.status === 429 && j.body.code === 'RATE_LIMITED')).toHaveLength(MOST);
    expect((await stored(paced, id)).listed).toBe(MOST);
    expect(await refusals(paced, 'waitlist', 'RATE_LIMITED')).toBe(MOST);
    // Another address (another buyer behind another connection) orders as usual.
    const other = await http(paced.url, 'POST', `/events/${id}/orders`, { buyer_id: 'someone', items: [{ pool: 'ga', quantity: 1 }] }, from('198.51.100.20'));
    expect(other.status, other.text).toBe(201);
  });

  it('without it set, nothing is limited per address', async () => {
    const id = await makeEvent(unsigned);
    const answers = await Promise.all(Array.from({ length: MOST * 3 }, (_, i) =>
      http(unsigned.url, 'POST', `/events/${id}/orders`, { buyer_id: `many-${i}`, items: [{ pool: 'ga', quantity: 1 }] })));
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: MOST * 3 }, () => 201));
  });
});
