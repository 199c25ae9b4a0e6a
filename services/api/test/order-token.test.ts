/**
 * An order is read only by whoever holds its order token (returned once, at creation) or the admin
 * token. Postgres keeps only the token's SHA-256. A wrong token learns nothing, not even whether the
 * order exists: it gets the same 404 as an order that does not.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { http, eventId, TEST_ADMIN_TOKEN } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { newOrderToken } from '../src/lib/secrets.ts';

let stack: ApiStack;
let id: string;

beforeAll(async () => {
  stack = await startApiStack({ label: 'ordertoken' });
  id = eventId('tok');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Order tokens', pools: [{ id: 'ga', name: 'GA', capacity: 100, price: 500 }],
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
});
afterAll(async () => { await stack?.close(); });

async function create(buyer: string) {
  const res = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity: 1 }] });
  expect(res.status, res.text).toBe(201);
  return res.body as { merchant_uid: string; order_token: string };
}

const read = (muid: string, authorization?: string) =>
  http(stack.url, 'GET', `/orders/${muid}`, undefined, { headers: authorization === undefined ? {} : { authorization } });

describe('order tokens', () => {
  it('are returned at creation (256 random bits, base64url), and Postgres keeps only their SHA-256', async () => {
    const a = await create('buyer-a');
    const b = await create('buyer-a');
    expect(a.order_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b.order_token).not.toBe(a.order_token);
    const row = await stack.api.deps.db.selectFrom('orders').selectAll().where('merchant_uid', '=', a.merchant_uid).executeTakeFirstOrThrow();
    expect(row.order_token_hash).toEqual(createHash('sha256').update(a.order_token).digest());
    expect(JSON.stringify(row)).not.toContain(a.order_token);
  });

  it('never repeat: tokens drawn across many refills of the random pool are all different', () => {
    const tokens = Array.from({ length: 5_000 }, () => newOrderToken());
    expect(new Set(tokens.map((t) => t.token)).size).toBe(tokens.length);
    for (const t of tokens.slice(0, 200)) {
      expect(Buffer.from(t.token, 'base64url')).toHaveLength(32);
      expect(t.hash.equals(createHash('sha256').update(t.token).digest())).toBe(true);
    }
  });

  it('read the order with the order token or the admin token, privately', async () => {
    const o = await create('buyer-b');
    for (const auth of [`Bearer ${o.order_token}`, `Bearer ${TEST_ADMIN_TOKEN}`]) {
      const res = await read(o.merchant_uid, auth);
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ merchant_uid: o.merchant_uid, buyer_id: 'buyer-b', status: 'pending' });
      expect(res.body).not.toHaveProperty('order_token');
    }
    const res = await read(o.merchant_uid, `Bearer ${o.order_token}`);
    expect(res.status).toBe(200);
    const raw = await fetch(new URL(`/orders/${o.merchant_uid}`, stack.url), { headers: { authorization: `Bearer ${o.order_token}` } });
    expect(raw.headers.get('cache-control')).toBe('no-store');
  });

  it('are required: no token (or not a bearer one) is 401', async () => {
    const o = await create('buyer-c');
    for (const auth of [undefined, '', 'Bearer', 'Bearer ', `Basic ${o.order_token}`, o.order_token]) {
      const res = await read(o.merchant_uid, auth);
      expect(res.status, `${auth}: ${res.text}`).toBe(401);
      expect(res.body.code).toBe('UNAUTHORIZED');
      expect(res.text).not.toContain('buyer-c');
    }
    // The scheme is case-insensitive (RFC 9110).
    for (const scheme of ['bearer', 'BEARER']) expect((await read(o.merchant_uid, `${scheme} ${o.order_token}`)).status, scheme).toBe(200);
  });

  it('a wrong token gets the same 404 as an order that does not exist', async () => {
    const o = await create('buyer-d');
    const other = await create('buyer-d');
    const missing = `${id}.AAAAAAAAAAA`;
    const answers = [
      await read(o.merchant_uid, `Bearer ${other.order_token}`),
      await read(o.merchant_uid, `Bearer ${o.order_token.slice(0, -1)}${o.order_token.endsWith('A') ? 'B' : 'A'}`),
      await read(o.merchant_uid, 'Bearer not-even-close'),
      await read(o.merchant_uid, `Bearer ${createHash('sha256').update(o.order_token).digest('base64url')}`),
      await read(missing, `Bearer ${o.order_token}`),
      // An order of an event that does not exist: answered from the catalog, before Postgres.
      await read('nosuch-event.AAAAAAAAAAA', `Bearer ${o.order_token}`),
    ];
    for (const res of answers) {
      expect(res.status, res.text).toBe(404);
      expect(res.body).toEqual({ code: 'ORDER_NOT_FOUND', message: 'no order matches this merchant_uid and token' });
    }
    const admin = await read(missing, `Bearer ${TEST_ADMIN_TOKEN}`);
    expect(admin.status).toBe(404);
    expect(admin.body.code).toBe('ORDER_NOT_FOUND');
  });

  it('an order without a token (made before tokens existed) is read with the admin token only', async () => {
    const o = await create('buyer-e');
    await sql`update orders set order_token_hash = null where merchant_uid = ${o.merchant_uid}`.execute(stack.api.deps.db);
    expect((await read(o.merchant_uid, `Bearer ${o.order_token}`)).status).toBe(404);
    expect((await read(o.merchant_uid, `Bearer ${TEST_ADMIN_TOKEN}`)).status).toBe(200);
  });

  it('the admin token is read as order and metrics tokens are: the scheme in any case, nothing but the token after it', async () => {
    const admin = (authorization: string, n: number) => http(stack.url, 'POST', '/admin/events', {
      id: `${id}-adm${n}`, name: 'Admin scheme', pools: [{ id: 'ga', name: 'GA', capacity: 1, price: 500 }],
    }, { headers: { authorization } });
    for (const [n, scheme] of ['bearer', 'BEARER', 'Bearer'].entries()) expect((await admin(`${scheme} ${TEST_ADMIN_TOKEN}`, n)).status, scheme).toBe(201);
    for (const [n, auth] of [`Basic ${TEST_ADMIN_TOKEN}`, `Bearer ${TEST_ADMIN_TOKEN} extra`, `Bearer ${TEST_ADMIN_TOKEN}x`, TEST_ADMIN_TOKEN, 'Bearer '].entries()) {
      const res = await admin(auth, 10 + n);
      expect(res.status, auth).toBe(401);
      expect(res.body).toMatchObject({ code: 'UNAUTHORIZED' });
    }
  });
});

