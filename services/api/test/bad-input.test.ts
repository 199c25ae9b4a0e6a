/**
 * Invariant 7: bad input gets a 4xx with a clear code and message, and changes nothing. Table-driven,
 * per endpoint; after every case the database and Redis are compared with a snapshot taken before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, TEST_ADMIN_TOKEN } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';
import { sql } from 'kysely';
import { connect } from 'node:net';
import { toHttpError } from '../src/plugins/errors.plugin.ts';

let stack: ApiStack;
let id: string;
let merchantUid: string;

beforeAll(async () => {
  stack = await startApiStack({ label: 'badinput' });
  id = eventId('bad');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Bad input', max_per_buyer: 4,
    seat_blocks: [{ section: 'A', rows: 1, seats_per_row: 5, price: 1000 }],
    pools: [
      { id: 'ga', name: 'GA', capacity: 10, price: 500 }, { id: 'free', name: 'Free', capacity: 10, price: 0 },
      { id: 'vip1', name: 'VIP 1', capacity: 100, price: 100_000_000 }, { id: 'vip2', name: 'VIP 2', capacity: 100, price: 100_000_000 },
    ],
  }, { admin: true });
  expect(res.status).toBe(201);
  const order = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'b1', seats: ['A-1-1'] });
  merchantUid = order.body.merchant_uid;
});
afterAll(async () => { await stack?.close(); });

async function snapshot() {
  const db = stack.api.deps.db;
  const count = async (table: 'events' | 'orders' | 'seats' | 'pools' | 'holds' | 'order_events') =>
    Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  return {
    events: await count('events'), orders: await count('orders'), seats: await count('seats'), pools: await count('pools'),
    holds: await count('holds'), log: await count('order_events'),
    availability: (await http(stack.url, 'GET', `/events/${id}`)).body.availability,
    order: await stack.store.orderState(id, merchantUid),
  };
}

interface Case {
  name: string;
  method: string;
  path: string | (() => string);
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  admin?: boolean;
  status: number;
  code: string;
}

const big = 'x'.repeat(70 * 1024);
const validEvent = () => ({ id: eventId('new'), name: 'N', pools: [{ id: 'p', name: 'P', capacity: 1, price: 1 }] });

const cases: Case[] = [
  // POST /admin/events
  { name: 'admin without a token', method: 'POST', path: '/admin/events', body: validEvent(), status: 401, code: 'UNAUTHORIZED' },
  { name: 'admin with a wrong token', method: 'POST', path: '/admin/events', body: validEvent(), headers: { authorization: 'Bearer nope-nope-nope-nope' }, status: 401, code: 'UNAUTHORIZED' },
  { name: 'event malformed JSON', method: 'POST', path: '/admin/events', raw: '{"id": "x",', headers: { 'content-type': 'application/json' }, admin: true, status: 400, code: 'INVALID_JSON' },
  { name: 'event empty body', method: 'POST', path: '/admin/events', raw: '', headers: { 'content-type': 'application/json' }, admin: true, status: 400, code: 'INVALID_JSON' },
  { name: 'event as text/plain', method: 'POST', path: '/admin/events', raw: 'hello', headers: { 'content-type': 'text/plain' }, admin: true, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'event marked gzip (attack round 20B)', method: 'POST', path: '/admin/events', raw: JSON.stringify(validEvent()), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, admin: true, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'confirm marked br', method: 'POST', path: '/portone/v1/confirm', raw: '{"imp_uid":"imp_1","merchant_uid":"a.AAAAAAAAAAA","amount":1}', headers: { 'content-type': 'application/json', 'content-encoding': 'br' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'V2 confirm marked gzip', method: 'POST', path: '/portone/v2/confirm', raw: '{}', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'event missing name', method: 'POST', path: '/admin/events', body: { id: 'x-missing', pools: [{ id: 'p', name: 'P', capacity: 1, price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event unknown field', method: 'POST', path: '/admin/events', body: { ...validEvent(), colour: 'red' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event bad id', method: 'POST', path: '/admin/events', body: { ...validEvent(), id: 'Has Spaces' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event capacity as string', method: 'POST', path: '/admin/events', body: { ...validEvent(), pools: [{ id: 'p', name: 'P', capacity: '5', price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event negative price', method: 'POST', path: '/admin/events', body: { ...validEvent(), pools: [{ id: 'p', name: 'P', capacity: 5, price: -1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event absurd capacity', method: 'POST', path: '/admin/events', body: { ...validEvent(), pools: [{ id: 'p', name: 'P', capacity: 1e12, price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event hold ttl too short', method: 'POST', path: '/admin/events', body: { ...validEvent(), hold_ttl_seconds: 1 }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event hold ttl fractional', method: 'POST', path: '/admin/events', body: { ...validEvent(), hold_ttl_seconds: 30.5 }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event bad date', method: 'POST', path: '/admin/events', body: { ...validEvent(), sale_opens_at: 'tomorrow' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event opens at a leap second', method: 'POST', path: '/admin/events', body: { ...validEvent(), sale_opens_at: '2027-06-30T23:59:60Z' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event closes at a leap second', method: 'POST', path: '/admin/events', body: { ...validEvent(), sale_closes_at: '2030-12-31T23:59:60Z' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event opens in year 0000', method: 'POST', path: '/admin/events', body: { ...validEvent(), sale_opens_at: '0000-01-01T00:00:00Z' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event closes in year 9999+', method: 'POST', path: '/admin/events', body: { ...validEvent(), sale_closes_at: '+010000-01-01T00:00:00Z' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event closes before it opens', method: 'POST', path: '/admin/events', body: { ...validEvent(), sale_opens_at: '2030-01-02T00:00:00Z', sale_closes_at: '2030-01-01T00:00:00Z' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event without inventory', method: 'POST', path: '/admin/events', body: { id: eventId('empty'), name: 'E' }, admin: true, status: 400, code: 'NO_INVENTORY' },
  { name: 'event duplicate seat', method: 'POST', path: '/admin/events', body: { id: eventId('dup'), name: 'D', seats: [{ id: 'S-1-1', section: 'S', row: '1', number: '1', price: 1 }], seat_blocks: [{ section: 'S', rows: 1, seats_per_row: 1, price: 1 }] }, admin: true, status: 400, code: 'DUPLICATE_SEAT' },
  { name: 'event duplicate pool', method: 'POST', path: '/admin/events', body: { id: eventId('dupp'), name: 'D', pools: [{ id: 'p', name: 'P', capacity: 1, price: 1 }, { id: 'p', name: 'Q', capacity: 1, price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event too many seats', method: 'POST', path: '/admin/events', body: { id: eventId('huge'), name: 'H', seat_blocks: [{ section: 'H', rows: 1000, seats_per_row: 1000, price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event id exists', method: 'POST', path: '/admin/events', body: null, admin: true, status: 409, code: 'EVENT_EXISTS' },
  // Control characters (Postgres refuses NUL in text): refused by the schema, before anything is stored.
  { name: 'event name with NUL', method: 'POST', path: '/admin/events', body: { ...validEvent(), name: 'Bad\u0000name' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'event name with a line feed', method: 'POST', path: '/admin/events', body: { ...validEvent(), name: 'Two\nlines' }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'pool name with NUL', method: 'POST', path: '/admin/events', body: { ...validEvent(), pools: [{ id: 'p', name: 'P\u0000', capacity: 1, price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seat section with NUL', method: 'POST', path: '/admin/events', body: { id: eventId('nul'), name: 'N', seats: [{ id: 'S-1', section: 'S\u0000', row: '1', number: '1', price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seat row with NUL', method: 'POST', path: '/admin/events', body: { id: eventId('nul'), name: 'N', seats: [{ id: 'S-1', section: 'S', row: '\u0000', number: '1', price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seat number with a C1 control', method: 'POST', path: '/admin/events', body: { id: eventId('nul'), name: 'N', seats: [{ id: 'S-1', section: 'S', row: '1', number: '1\u0085', price: 1 }] }, admin: true, status: 400, code: 'VALIDATION_FAILED' },
  // GET /events/:id and seats
  { name: 'unknown event', method: 'GET', path: '/events/no-such-event', status: 404, code: 'EVENT_NOT_FOUND' },
  { name: 'invalid event id', method: 'GET', path: '/events/NOT_VALID!', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seats of unknown event', method: 'GET', path: '/events/no-such-event/seats', status: 404, code: 'EVENT_NOT_FOUND' },
  { name: 'seats bad status', method: 'GET', path: () => `/events/${id}/seats?status=free`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seats limit zero', method: 'GET', path: () => `/events/${id}/seats?limit=0`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seats limit absurd', method: 'GET', path: () => `/events/${id}/seats?limit=100000`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seats unknown query', method: 'GET', path: () => `/events/${id}/seats?sort=desc`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'seats cursor with NUL', method: 'GET', path: () => `/events/${id}/seats?status=held&cursor=A%00`, status: 400, code: 'VALIDATION_FAILED' },
  // POST /events/:id/orders
  { name: 'order malformed JSON', method: 'POST', path: () => `/events/${id}/orders`, raw: '{"buyer_id":', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'order for unknown event', method: 'POST', path: '/events/no-such-event/orders', body: { buyer_id: 'b', seats: ['A-1-2'] }, status: 404, code: 'EVENT_NOT_FOUND' },
  { name: 'order missing buyer', method: 'POST', path: () => `/events/${id}/orders`, body: { seats: ['A-1-2'] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order with nothing', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order empty seats', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', seats: [] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order costing nothing (PortOne takes no payment of 0)', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'free', quantity: 2 }] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order costing more than a payment carries', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'vip1', quantity: 100 }, { pool: 'vip2', quantity: 1 }] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order unknown field', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', seats: ['A-1-2'], discount: 100 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order unknown seat', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', seats: ['Z-9-9'] }, status: 404, code: 'SEAT_NOT_FOUND' },
  { name: 'order unknown pool', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'vip', quantity: 1 }] }, status: 404, code: 'POOL_NOT_FOUND' },
  { name: 'order negative quantity', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'ga', quantity: -1 }] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order absurd quantity', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'ga', quantity: 1_000_000 }] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order quantity as string', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'ga', quantity: '2' }] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order seat with NUL', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', seats: ['A-1-2\u0000'] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order pool with NUL', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'ga\u0000', quantity: 1 }] }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'order seat twice', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', seats: ['A-1-2', 'A-1-2'] }, status: 400, code: 'DUPLICATE_SEAT' },
  { name: 'order over buyer limit', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', items: [{ pool: 'ga', quantity: 5 }] }, status: 403, code: 'BUYER_LIMIT' },
  { name: 'order oversized body', method: 'POST', path: () => `/events/${id}/orders`, body: { buyer_id: 'b', seats: [big] }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
  // GET /orders/:merchant_uid
  { name: 'unknown order', method: 'GET', path: () => `/orders/${id}.AAAAAAAAAAA`, admin: true, status: 404, code: 'ORDER_NOT_FOUND' },
  { name: 'order without its token', method: 'GET', path: () => `/orders/${merchantUid}`, status: 401, code: 'UNAUTHORIZED' },
  { name: 'order with a wrong token', method: 'GET', path: () => `/orders/${merchantUid}`, headers: { authorization: 'Bearer wrong-token-wrong-token' }, status: 404, code: 'ORDER_NOT_FOUND' },
  { name: 'malformed merchant_uid', method: 'GET', path: '/orders/definitely-not-one', status: 400, code: 'VALIDATION_FAILED' },
  // POST /portone/v1/confirm
  { name: 'confirm malformed JSON', method: 'POST', path: '/portone/v1/confirm', raw: '{"imp_uid":', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'confirm missing imp_uid', method: 'POST', path: '/portone/v1/confirm', body: () => ({ merchant_uid: merchantUid, amount: 1000 }), status: 400, code: 'VALIDATION_FAILED' },
  { name: 'confirm amount as string', method: 'POST', path: '/portone/v1/confirm', body: () => ({ imp_uid: impUid(), merchant_uid: merchantUid, amount: '1000' }), status: 400, code: 'VALIDATION_FAILED' },
  { name: 'confirm negative amount', method: 'POST', path: '/portone/v1/confirm', body: () => ({ imp_uid: impUid(), merchant_uid: merchantUid, amount: -5 }), status: 400, code: 'VALIDATION_FAILED' },
  { name: 'confirm imp_uid with spaces', method: 'POST', path: '/portone/v1/confirm', body: () => ({ imp_uid: 'imp 1', merchant_uid: merchantUid, amount: 1000 }), status: 400, code: 'VALIDATION_FAILED' },
  { name: 'confirm oversized body', method: 'POST', path: '/portone/v1/confirm', body: () => ({ imp_uid: impUid(), merchant_uid: merchantUid, amount: 1000, pad: big }), status: 413, code: 'PAYLOAD_TOO_LARGE' },
  { name: 'confirm wrong amount', method: 'POST', path: '/portone/v1/confirm', body: () => ({ imp_uid: impUid(), merchant_uid: merchantUid, amount: 999 }), status: 409, code: 'AMOUNT_MISMATCH' },
  // POST /portone/v1/webhook
  { name: 'webhook malformed JSON', method: 'POST', path: '/portone/v1/webhook', raw: '{', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'webhook missing status', method: 'POST', path: '/portone/v1/webhook', body: () => ({ imp_uid: impUid(), merchant_uid: merchantUid }), status: 400, code: 'VALIDATION_FAILED' },
  { name: 'webhook unknown order', method: 'POST', path: '/portone/v1/webhook', body: { imp_uid: 'imp_1', merchant_uid: 'no-such-event.AAAAAAAAAAA', status: 'paid' }, status: 404, code: 'ORDER_NOT_FOUND' },
  { name: 'webhook form missing imp_uid', method: 'POST', path: '/portone/v1/webhook', raw: 'merchant_uid=x&status=paid', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'webhook oversized', method: 'POST', path: '/portone/v1/webhook', body: () => ({ imp_uid: 'imp_1', merchant_uid: merchantUid, status: 'paid', pad: big }), status: 413, code: 'PAYLOAD_TOO_LARGE' },
  // anything else
  { name: 'unknown route', method: 'GET', path: '/nope', status: 404, code: 'NOT_FOUND' },
];

describe('bad input changes nothing', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = await snapshot();
    const path = typeof c.path === 'function' ? c.path() : c.path;
    let body = typeof c.body === 'function' ? (c.body as () => unknown)() : c.body;
    if (c.code === 'EVENT_EXISTS') body = { id, name: 'Again', pools: [{ id: 'p', name: 'P', capacity: 1, price: 1 }] };
    const headers = { ...(c.headers ?? {}), ...(c.admin ? { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } : {}) };
    const res = await http(stack.url, c.method, path, body, { headers, ...(c.raw !== undefined ? { raw: c.raw } : {}) });
    expect(res.status, res.text).toBe(c.status);
    expect(res.body.code).toBe(c.code);
    expect(typeof (res.body.message ?? res.body.reason ?? res.body.errorMessage)).toBe('string');
    expect(res.text).not.toMatch(/\bat \S+\.(ts|js):\d+/); // no stack trace
    if (path.startsWith('/portone/v1/confirm')) expect(typeof res.body.reason).toBe('string');
    // V2's confirm answers PortOne's shape: the buyer is shown errorMessage.
    if (path.startsWith('/portone/v2/confirm')) expect(typeof res.body.errorMessage).toBe('string');
    expect(await snapshot()).toEqual(before);
  });
});

describe('control characters', () => {
  it('are refused with a message that says so, naming the field', async () => {
    const res = await http(stack.url, 'POST', '/admin/events', { id: eventId('nul'), name: 'Bad\u0000name', pools: [{ id: 'p', name: 'P', capacity: 1, price: 1 }] }, { admin: true });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ code: 'VALIDATION_FAILED', message: 'body/name must not contain control characters (such as NUL, tab or line feed)' });
    const seat = await http(stack.url, 'POST', '/admin/events', { id: eventId('nul'), name: 'N', seats: [{ id: 'S-1', section: 'S\u0000', row: '1', number: '1', price: 1 }] }, { admin: true });
    expect(seat.body.message).toBe('body/seats/0/section must be one word without commas, whitespace or control characters (such as NUL)');
  });

  it('that reach Postgres anyway are answered 400, not 500 (second guard)', async () => {
    const db = stack.api.deps.db;
    const refusals: unknown[] = [];
    await sql`select ${'a\u0000b'}::text`.execute(db).catch((e: unknown) => refusals.push(e));
    await sql`select ${'{"a": "\\u0000"}'}::jsonb`.execute(db).catch((e: unknown) => refusals.push(e));
    expect(refusals.map((e) => (e as { code?: string }).code)).toEqual(['22021', '22P05']);
    for (const e of refusals) expect(toHttpError(e)).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
  });

  it('a client dropping its upload is the request\'s failure (400), not a dependency\'s (503); a Redis connection reset still is (attack round 23A)', () => {
    // What Node raises on a request whose client went away mid-body: fastify marks it 400.
    const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET', statusCode: 400 });
    expect(toHttpError(aborted)).toMatchObject({ statusCode: 400, code: 'BAD_REQUEST' });
    const redisReset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(toHttpError(redisReset)).toMatchObject({ statusCode: 503, code: 'NOT_READY' });
  });

  it('a statement Postgres cancels (a statement timeout, an operator\'s cancel) is a 503 NOT_READY, not a 500', async () => {
    const db = stack.api.deps.db;
    let cancelled: unknown = null;
    await db.connection().execute(async (conn) => {
      await sql`set statement_timeout = 20`.execute(conn);
      await sql`select pg_sleep(2)`.execute(conn).catch((e: unknown) => { cancelled = e; });
      await sql`reset statement_timeout`.execute(conn);
    });
    expect((cancelled as { code?: string }).code).toBe('57014');
    expect(toHttpError(cancelled)).toMatchObject({ statusCode: 503, code: 'NOT_READY' });
  });
});

describe('what the router and Node refuse before a route runs', () => {
  /** Sends `head` as it is on a raw connection; @returns what came back before the server closed it. */
  const rawRequest = (head: string) => new Promise<string>((resolve, reject) => {
    const url = new URL(stack.url);
    const socket = connect(Number(url.port), url.hostname, () => socket.write(head));
    let received = '';
    socket.on('data', (d: Buffer) => { received += d.toString('utf8'); });
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
  const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as unknown;

  it('answers {code, message}: a path parameter over 100 characters 414, a malformed URL component 400, headers too large 431', async () => {
    const long = await http(stack.url, 'GET', `/events/${'x'.repeat(101)}`);
    expect(long.status).toBe(414);
    expect(long.body).toEqual({ code: 'URI_TOO_LONG', message: expect.any(String) });
    const badUrl = await http(stack.url, 'GET', '/events/%E0%A4%A');
    expect(badUrl.status).toBe(400);
    expect(badUrl.body).toEqual({ code: 'BAD_URL', message: expect.any(String) });
    const big = await rawRequest(`GET /healthz HTTP/1.1\r\nHost: x\r\nx-pad: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    expect(bodyOf(big)).toEqual({ code: 'HEADERS_TOO_LARGE', message: expect.any(String) });
    const garbage = await rawRequest('NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    expect(bodyOf(garbage)).toEqual({ code: 'BAD_REQUEST', message: expect.any(String) });
    // The server goes on answering.
    expect((await http(stack.url, 'GET', `/events/${id}`)).status).toBe(200);
  });

  it('answers {code, message} to an HTTP/1.1 request without Host (400) and to an Expect it does not support (417), making nothing', async () => {
    const before = await snapshot();
    const order = JSON.stringify({ buyer_id: 'b-raw', seats: ['A-1-2'] });
    const post = (headers: string) =>
      rawRequest(`POST /events/${id}/orders HTTP/1.1\r\n${headers}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(order)}\r\n\r\n${order}`);
    const noHost = await post('');
    expect(noHost).toMatch(/^HTTP\/1\.1 400 /);
    expect(bodyOf(noHost)).toEqual({ code: 'BAD_REQUEST', message: expect.stringContaining('Host') });
    // A confirm without Host: the same 400, with the reason PortOne shows the buyer (it went out 503
    // NOT_READY: the refusal failed its schema without one).
    const confirm = JSON.stringify({ imp_uid: 'imp_nohost', merchant_uid: 'a.AAAAAAAAAAA', amount: 1 });
    const noHostConfirm = await rawRequest(`POST /portone/v1/confirm HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(confirm)}\r\n\r\n${confirm}`);
    expect(noHostConfirm).toMatch(/^HTTP\/1\.1 400 /);
    expect(bodyOf(noHostConfirm)).toEqual({ code: 'BAD_REQUEST', reason: expect.any(String), message: expect.stringContaining('Host') });
    const expectation = await post('Host: x\r\nExpect: 200-ok\r\n');
    expect(expectation).toMatch(/^HTTP\/1\.1 417 /);
    expect(bodyOf(expectation)).toEqual({ code: 'EXPECTATION_FAILED', message: expect.any(String) });
    expect(await snapshot()).toEqual(before);
    // HTTP/1.0 needs no Host: the same order is made.
    const old = await rawRequest(`POST /events/${id}/orders HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(order)}\r\n\r\n${order}`);
    expect(old).toMatch(/^HTTP\/1\.1 201 /);
    expect((await snapshot()).orders).toBe(before.orders + 1);
  });
});
